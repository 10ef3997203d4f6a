"""R4-R6 and R8, judged by the contracts on a real chain (anvil and Hardhat node): the
platform's share, the banks' capital limits, and their capital attestations.

How every rule is probed at its boundary: tests/contract_rules_support.py.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from ledger.chain.deployment import fund
from ledger.domain import CoLoan, CreditLine, LineStatus, Role
from ledger.keys import dev_account
from ledger.localnet.consortium import LocalConsortium, new_id
from ledger.provenance import sign
from tests.contract_rules_support import (
    MAX_AGE,
    attest,
    grant,
    mine_at,
    originate,
    refused,
    set_next_timestamp,
)

# ---------------------------------------------------------------------------------- R4


@pytest.mark.parametrize(
    ("principal", "minimum"),
    [(1_000_000, 300_000), (1_000_001, 300_001)],  # 30% of 1,000,001 is 300,000.3: round up
)
def test_platform_share_boundary_on_loans(cx, principal, minimum):
    low = cx.loan(principal, [(cx.platform, minimum - 1), (cx.lenders[0], principal - minimum + 1)])
    with refused(
        "PlatformShareTooLow",
        id=low.loan_id,
        platformAmount=minimum - 1,
        total=principal,
        minBps=3_000,
    ):
        cx.plat.originate(low, cx.sign(low))

    at = cx.loan(principal, [(cx.platform, minimum), (cx.lenders[0], principal - minimum)])
    originate(cx, at)


def test_platform_share_boundary_on_lines(cx):
    low = cx.line(1_000_000, [(cx.platform, 299_999), (cx.lenders[0], 700_001)])
    with refused(
        "PlatformShareTooLow", id=low.line_id, platformAmount=299_999, total=1_000_000, minBps=3_000
    ):
        cx.plat.grant_line(low, cx.sign(low))

    at = cx.line(1_000_000, [(cx.platform, 300_000), (cx.lenders[0], 700_000)])
    grant(cx, at)
    assert cx.plat.line_state(at.line_id)["status"] == LineStatus.ACTIVE


def test_platform_tranche_missing(cx):
    loan = cx.loan(1_000_000, [(cx.lenders[0], 500_000), (cx.lenders[1], 500_000)])
    with refused("PlatformTrancheMissing", platform=cx.platform.address):
        cx.plat.originate(loan, cx.sign(loan))
    line = cx.line(1_000_000, [(cx.lenders[0], 500_000), (cx.lenders[1], 500_000)])
    with refused("PlatformTrancheMissing", platform=cx.platform.address):
        cx.plat.grant_line(line, cx.sign(line))


# ---------------------------------------------------------------------------------- R5, R6


def test_partner_concentration_limit(cx):
    lender, p = cx.lenders[0], cx.platform
    # 25% of 4,000,003 is 1,000,000.75: the limit rounds down to 1,000,000
    attest(cx, lender, 4_000_003, 10**13)
    usage = cx.plat.lender_usage(lender.address, p.address)
    assert (usage["with_partner"], usage["partner_limit"]) == (0, 1_000_000)

    over = cx.loan(2_000_001, [(p, 1_000_000), (lender, 1_000_001)])
    with refused(
        "PartnerConcentrationExceeded",
        lender=lender.address,
        partner=p.address,
        outstanding=0,
        requested=1_000_001,
        limit=1_000_000,
    ):
        cx.plat.originate(over, cx.sign(over))

    at = cx.loan(2_000_000, [(p, 1_000_000), (lender, 1_000_000)])
    originate(cx, at)
    usage = cx.plat.lender_usage(lender.address, p.address)
    assert (usage["with_partner"], usage["total"]) == (1_000_000, 1_000_000)

    one_more = cx.loan(10, [(p, 9), (lender, 1)])
    with refused(
        "PartnerConcentrationExceeded",
        lender=lender.address,
        partner=p.address,
        outstanding=1_000_000,
        requested=1,
        limit=1_000_000,
    ):
        cx.plat.originate(one_more, cx.sign(one_more))

    # repaying 2 fen of the 50/50 loan repays 1 fen of the bank's tranche: room for exactly 1
    cx.plat.repay(at, new_id("repayment", cx.platform.address), 2)
    assert cx.plat.lender_usage(lender.address, p.address)["with_partner"] == 999_999
    originate(cx, one_more)
    assert cx.plat.lender_usage(lender.address, p.address)["with_partner"] == 1_000_000


def test_joint_loan_share_limit(cx):
    lender, p = cx.lenders[0], cx.platform
    # 50% of 2,000,001 is 1,000,000.5: the limit rounds down to 1,000,000
    attest(cx, lender, 10**12, 2_000_001)
    assert cx.plat.lender_usage(lender.address, p.address)["total_limit"] == 1_000_000

    over = cx.loan(2_000_001, [(p, 1_000_000), (lender, 1_000_001)])
    with refused(
        "JointLoanShareExceeded",
        lender=lender.address,
        outstanding=0,
        requested=1_000_001,
        limit=1_000_000,
    ):
        cx.plat.originate(over, cx.sign(over))

    originate(cx, cx.loan(2_000_000, [(p, 1_000_000), (lender, 1_000_000)]))
    one_more = cx.loan(10, [(p, 9), (lender, 1)])
    with refused(
        "JointLoanShareExceeded",
        lender=lender.address,
        outstanding=1_000_000,
        requested=1,
        limit=1_000_000,
    ):
        cx.plat.originate(one_more, cx.sign(one_more))
    # another bank is not affected by this bank's limit
    originate(cx, cx.loan(10, [(p, 9), (cx.lenders[1], 1)]))


def _second_platform(cx: LocalConsortium) -> LocalAccount:
    p2 = dev_account("platform", 1)
    fund(cx.rpc_url, [p2.address])
    cx.gov.admit_member(p2.address, Role.PLATFORM, "Platform 2 (test)")
    return p2


def _sign_with(
    record: CoLoan | CreditLine, cx: LocalConsortium, *extra: LocalAccount
) -> list[bytes]:
    accounts = cx.accounts() | {a.address: a for a in extra}
    return [sign(accounts[s].key, cx.plat.domain, record) for s in record.signers]


def test_partner_limit_is_per_partner_joint_limit_is_across_partners(cx):
    lender, p1 = cx.lenders[0], cx.platform
    p2 = _second_platform(cx)
    # R5 limit 1,000,000 per partner; R6 limit 1,500,000 over all partners
    attest(cx, lender, 4_000_000, 3_000_000)
    originate(cx, cx.loan(2_000_000, [(p1, 1_000_000), (lender, 1_000_000)]))

    over = cx.loan(1_000_001, [(p2, 500_000), (lender, 500_001)], platform=p2)
    with refused(
        "JointLoanShareExceeded",
        lender=lender.address,
        outstanding=1_000_000,
        requested=500_001,
        limit=1_500_000,
    ):
        cx.client(p2).originate(over, _sign_with(over, cx, p2))

    at = cx.loan(1_000_000, [(p2, 500_000), (lender, 500_000)], platform=p2)
    cx.client(p2).originate(at, _sign_with(at, cx, p2))
    u1 = cx.plat.lender_usage(lender.address, p1.address)
    u2 = cx.plat.lender_usage(lender.address, p2.address)
    assert (u1["with_partner"], u2["with_partner"], u2["total"]) == (1_000_000, 500_000, 1_500_000)


# ---------------------------------------------------------------------------------- R8


def test_stale_attestation_blocks_only_that_bank_until_it_attests_again(cx):
    p, l0, l1 = cx.platform, cx.lenders[0], cx.lenders[1]
    until = cx.plat.member(l0.address)["attested_until"]
    assert until > cx.now()
    # lender 1 attests again, so only lender 0 goes stale at `until`
    cx.client(l1).attest_capital(10**12, 10**13, cx.now() + MAX_AGE - 1)
    assert cx.plat.member(l1.address)["attested_until"] > until
    deadline = until + 86_400

    set_next_timestamp(cx, until)  # exactly at validUntil: still fresh
    on_time = cx.loan(1_000_000, deadline=deadline)
    block = originate(cx, on_time)
    assert cx.gov.w3.eth.get_block(block)["timestamp"] == until

    mine_at(cx, until + 1)
    late = cx.loan(1_000_000, deadline=deadline)
    with refused("StaleAttestation", lender=l0.address, attestedUntil=until, nowTs=until + 1):
        cx.plat.originate(late, cx.sign(late))
    line = cx.line(1_000_000, deadline=deadline)
    with refused("StaleAttestation", lender=l0.address, attestedUntil=until, nowTs=until + 1):
        cx.plat.grant_line(line, cx.sign(line))
    # a loan without the stale bank goes through
    originate(cx, cx.loan(1_000_000, [(p, 500_000), (l1, 500_000)], deadline=deadline))

    cx.client(l0).attest_capital(10**12, 10**13, cx.now() + 86_400)
    originate(cx, late)


def test_never_attested_lender_is_stale(cx):
    newcomer = dev_account("lender", 7)
    fund(cx.rpc_url, [newcomer.address])
    cx.gov.admit_member(newcomer.address, Role.LENDER, "Bank N (test)")
    loan = cx.loan(1_000_000, [(cx.platform, 500_000), (newcomer.address, 500_000)])
    with refused("StaleAttestation", lender=newcomer.address, attestedUntil=0, nowTs=cx.now()):
        cx.plat.originate(loan, _sign_with(loan, cx, newcomer))


def test_attestation_validity_bounded_by_policy_max_age(cx):
    lender = cx.client(cx.lenders[0])
    now = cx.now()
    with refused("InvalidAttestation", validUntil=now + MAX_AGE + 1, nowTs=now, maxAge=MAX_AGE):
        lender.attest_capital(1, 1, now + MAX_AGE + 1)
    with refused("InvalidAttestation", validUntil=now, nowTs=now, maxAge=MAX_AGE):
        lender.attest_capital(1, 1, now)

    ts = now + 5
    set_next_timestamp(cx, ts)  # exactly maxAge ahead of the block it lands in: accepted
    lender.transact(lender.registry, "attestCapital", 7, 8, ts + MAX_AGE, gas=200_000)
    m = cx.plat.member(cx.lenders[0].address)
    assert (m["tier1_capital"], m["total_loan_balance"], m["attested_at"], m["attested_until"]) == (
        7,
        8,
        ts,
        ts + MAX_AGE,
    )


@pytest.mark.parametrize("who", ["platform", "auditor", "governor", "suspended lender"])
def test_only_an_active_lender_attests(cx, who):
    if who == "suspended lender":
        account = cx.lenders[2]
        cx.gov.suspend_member(account.address)
    else:
        account = getattr(cx, who)
    with refused("NotActiveLender", account=account.address):
        cx.client(account).attest_capital(10**12, 10**13, cx.now() + 86_400)
