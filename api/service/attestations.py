"""Capital attestations sent from a member's own node: a lender's tier-1 capital and loan
balance (R5 and R6 bases), a guarantor's net assets (R10's base). The period is pre-checked
with the registry's rule (R8: after now, at most the policy's maximum age ahead), so a refused
attestation is a problem naming `valid_until` with the contract's numbers and nothing is sent;
the registry judges again."""

from __future__ import annotations

from typing import Any

from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from api.service.guarantees import refuse, send
from ledger.domain import Policy


def check_period(chain: ConsortiumView, valid_until: int) -> Policy:
    """The policy in force, once `valid_until` passes R8 as the registry judges it now."""
    _block, now = chain.now()
    policy = chain.policy()
    max_age = policy.max_attestation_age
    if valid_until <= now or valid_until - now > max_age:
        raise refuse("InvalidAttestation", "valid_until", "within_max_attestation_age",
                     validUntil=valid_until, nowTs=now, maxAge=max_age)  # fmt: skip
    return policy


def attest_capital(
    ctx: MemberContext, chain: ConsortiumView, tier1: int, balance: int, valid_until: int
) -> dict[str, Any]:
    """A lender's tier-1 capital and total loan balance until `valid_until`."""
    check_period(chain, valid_until)
    receipt = send(ctx, "attestation", ctx.client.attest_capital, tier1, balance, valid_until)
    return {"lender": ctx.address, "tier1_capital": tier1, "total_loan_balance": balance,
            "valid_until": valid_until, "tx_hash": receipt.tx_hash if receipt else None,
            "block_number": receipt.block_number if receipt else 0}  # fmt: skip


def attest_net_assets(
    ctx: MemberContext, chain: ConsortiumView, net_assets: int, valid_until: int
) -> dict[str, Any]:
    """A guarantor's net assets until `valid_until`, with the cap R10 then gives it."""
    policy = check_period(chain, valid_until)
    receipt = send(ctx, "attestation", ctx.client.attest_capital, net_assets, 0, valid_until)
    return {"guarantor": ctx.address, "net_assets": net_assets, "valid_until": valid_until,
            "cap": net_assets * policy.max_guarantee_multiple,
            "tx_hash": receipt.tx_hash if receipt else None,
            "block_number": receipt.block_number if receipt else 0}  # fmt: skip
