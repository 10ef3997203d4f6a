"""Guarantees at the nodes (LoanServicing): the guarantor's node offers to cover a loan and
records its compensatory payment (代偿) on default; the platform's node accepts the offer and
records recoveries on a written-off loan. Each write is pre-checked here with the contract's own
rule and numbers (R10 on the guarantor's attested net assets, the offer, the loan's status): a
refusal is a 4xx problem naming it and nothing is sent; the contract judges again."""

from __future__ import annotations

from typing import Any

from api.problems import Problem, from_revert, rule_problem
from api.schemas.common import chain_id_of
from api.service import idem, reads
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from ledger.chain.errors import ContractRevert
from ledger.domain import CoLoan, LoanStatus, MemberStatus, Role, to_hex
from ledger.schedule import BPS

ZERO = "0x0000000000000000000000000000000000000000"
_OPEN = (LoanStatus.ACTIVE, LoanStatus.OVERDUE)


def refuse(code: str, field: str, rule: str, **values: Any) -> Problem:
    """The pre-check's refusal with the contract's code and numbers, naming the field."""
    p = rule_problem(code, values, "the pre-check")
    p.extra["errors"] = [{"field": field, "rule": rule, "message": p.detail}]
    return p


def _loan(chain: ConsortiumView, loan_id: str, me: str) -> CoLoan:
    rec = chain.find_loan(chain_id_of(loan_id, me))
    if rec is None:
        raise reads.not_found(loan_id)
    return rec.loan


def send(ctx: MemberContext, kind: str, fn: Any, *args: Any) -> Any:
    """`fn(*args)` from the node's key, counted; a contract refusal as its problem."""
    try:
        receipt = fn(*args)
    except ContractRevert as exc:
        ctx.metrics.rejected(kind, exc.code, exc.rule, "contract")
        raise from_revert(exc) from None
    ctx.metrics.submitted(kind)
    return receipt


def _status(chain: ConsortiumView, loan: CoLoan, allowed: tuple[LoanStatus, ...]) -> int:
    outstanding, status = chain.loan_state(loan.loan_id)
    if status not in allowed:
        raise refuse("WrongLoanStatus", "loan_id", "loan_status", loanId=loan.loan_id,
                      status=int(status))  # fmt: skip
    return outstanding


def check_r10(ctx: MemberContext, chain: ConsortiumView, loan: CoLoan, guarantor: str,
              cover_bps: int) -> int:  # fmt: skip
    """The fen `guarantor` would cover at `cover_bps`, after R10: an active guarantor whose
    attested net assets are fresh and whose unsettled guarantees plus this one stay within the
    governed multiple of them."""
    m = chain.member(guarantor)
    if m.role != Role.GUARANTOR or m.status != MemberStatus.ACTIVE or m.frozen:
        raise refuse("NotActiveInRole", "guarantor", "active_guarantor", account=guarantor,
                      role=int(Role.GUARANTOR))  # fmt: skip
    p = chain.policy()
    _block, now = chain.now()
    until = min(m.attested_at + p.max_attestation_age, m.attested_until)
    if now > until:
        raise refuse("StaleNetAssets", "guarantor", "fresh_net_assets", guarantor=guarantor,
                      attestedUntil=until, nowTs=now)  # fmt: skip
    left = ctx.client.tranche_outstanding(loan)
    amount = sum(o * cover_bps // BPS for o, t in zip(left, loan.tranches, strict=True)
                 if t.lender != loan.platform)  # fmt: skip
    held = ctx.client.guaranteed_outstanding(guarantor)
    cap = m.tier1_capital * p.max_guarantee_multiple
    if held + amount > cap:
        raise refuse("GuaranteeCapExceeded", "cover_bps", "within_multiple_of_net_assets",
                      guarantor=guarantor, outstanding=held, requested=amount, cap=cap)  # fmt: skip
    return amount


def _no_guarantee_yet(ctx: MemberContext, loan: CoLoan) -> None:
    if ctx.client.guarantee_of(loan.loan_id)["guarantor"] != ZERO:
        raise refuse("GuaranteeExists", "loan_id", "one_guarantee", loanId=loan.loan_id)


def offer(ctx: MemberContext, chain: ConsortiumView, loan_id: str, cover_bps: int) -> dict:
    """The guarantor's offer to cover `cover_bps` of the loan's bank tranches."""
    loan = _loan(chain, loan_id, ctx.address)
    _status(chain, loan, _OPEN)
    _no_guarantee_yet(ctx, loan)
    amount = check_r10(ctx, chain, loan, ctx.address, cover_bps)
    receipt = send(ctx, "guarantee_offer", ctx.client.offer_guarantee, loan.loan_id, cover_bps)
    return {"loan_id": to_hex(loan.loan_id), "guarantor": ctx.address, "cover_bps": cover_bps,
            "amount": amount, "tx_hash": receipt.tx_hash if receipt else None}  # fmt: skip


def accept(
    ctx: MemberContext, chain: ConsortiumView, loan_id: str, guarantor: str, cover_bps: int
) -> dict:
    """The platform records exactly the guarantor's offer."""
    loan = _loan(chain, loan_id, ctx.address)
    if chain.servicer(loan.platform) != ctx.address:
        raise reads.not_found(loan_id)
    _status(chain, loan, _OPEN)
    _no_guarantee_yet(ctx, loan)
    offered = ctx.client.offer_of(loan.loan_id, guarantor)
    if offered == 0 or offered != cover_bps:
        raise refuse("GuaranteeOfferMismatch", "cover_bps", "matches_offer",
                      loanId=loan.loan_id, guarantor=guarantor, offered=offered)  # fmt: skip
    check_r10(ctx, chain, loan, guarantor, cover_bps)
    receipt = send(ctx, "guarantee", ctx.client.accept_guarantee, loan, guarantor, cover_bps)
    (ev,) = ctx.client.receipt_events(receipt, "GuaranteeRecorded")
    return {"loan_id": to_hex(loan.loan_id), "guarantor": guarantor, "cover_bps": cover_bps,
            "amount": int(ev.args["amount"]), "tx_hash": receipt.tx_hash}  # fmt: skip


def compensate(ctx: MemberContext, chain: ConsortiumView, loan_id: str) -> dict:
    """The guarantor's compensatory payment on a defaulted loan it guarantees."""
    loan = _loan(chain, loan_id, ctx.address)
    g = ctx.client.guarantee_of(loan.loan_id)
    if g["guarantor"] != ctx.address or g["settled"]:
        raise refuse("NoGuarantee", "loan_id", "unsettled_guarantee_of_caller",
                      loanId=loan.loan_id, account=ctx.address)  # fmt: skip
    _status(chain, loan, (LoanStatus.DEFAULTED,))
    receipt = send(ctx, "compensation", ctx.client.compensate, loan)
    (ev,) = ctx.client.receipt_events(receipt, "Compensated")
    payouts = [int(x) for x in ev.args["payouts"]]
    return {
        "loan_id": to_hex(loan.loan_id),
        "guarantor": ctx.address,
        "total": int(ev.args["total"]),
        "payouts": [
            {"lender": t.lender, "amount": a} for t, a in zip(loan.tranches, payouts, strict=True)
        ],  # fmt: skip
        "tx_hash": receipt.tx_hash,
    }


def recover(ctx: MemberContext, chain: ConsortiumView, loan_id: str, body: Any) -> tuple:
    """A recovery on a written-off loan, idempotent by `recovery_id`."""
    rid = chain_id_of(body.recovery_id, ctx.address)
    canonical = {"loan_id": to_hex(chain_id_of(loan_id, ctx.address)),
                 **body.model_dump(mode="json"), "recovery_id": to_hex(rid)}  # fmt: skip

    def work(_pending: idem.Pending | None, save: idem.Save) -> tuple[int, dict[str, Any]]:
        loan = _loan(chain, loan_id, ctx.address)
        if chain.servicer(loan.platform) != ctx.address:
            raise reads.not_found(loan_id)
        _status(chain, loan, (LoanStatus.WRITTEN_OFF,))
        before = ctx.client.recovered(loan.loan_id)
        if before + body.amount > loan.principal:
            raise refuse("RecoveryExceedsPrincipal", "amount", "within_principal",
                          loanId=loan.loan_id, recovered=before, requested=body.amount,
                          principal=loan.principal)  # fmt: skip
        save({"submitted": True})
        receipt = send(ctx, "recovery", ctx.client.recover, loan, rid, body.amount)
        (ev,) = ctx.client.receipt_events(receipt, "Recovered")
        split = [int(x) for x in ev.args["split"]]
        return 201, {
            "loan_id": to_hex(loan.loan_id),
            "recovery_id": to_hex(rid),
            "amount": body.amount,
            "recovered": before + body.amount,
            "split": [
                {"lender": t.lender, "amount": a} for t, a in zip(loan.tranches, split, strict=True)
            ],  # fmt: skip
            "tx_hash": receipt.tx_hash,
        }

    return idem.run(ctx, "recovery", to_hex(rid), canonical, work)


# ---------------------------------------------------------------------- reads


def guarantee_of(ctx: MemberContext, chain: ConsortiumView, principal: Any, loan_id: str) -> dict:
    """A loan's guarantee, its payouts and recoveries: for the auditor, the loan's platform (or
    its servicer), its banks and its guarantor; the same 404 as an unknown loan for others."""
    loan = _loan(chain, loan_id, principal.address)
    g = ctx.client.guarantee_of(loan.loan_id)
    who = principal.address
    parties = {loan.platform, chain.servicer(loan.platform), *loan.signers}
    if principal.role != "auditor" and who not in parties and who != g["guarantor"]:
        raise reads.not_found(loan_id)
    paid = ctx.client.compensation_of(loan.loan_id) or [0] * len(loan.tranches)
    return {
        "loan_id": to_hex(loan.loan_id),
        "guarantor": None if g["guarantor"] == ZERO else g["guarantor"],
        "cover_bps": int(g["cover_bps"]),
        "amount": int(g["amount"]),
        "settled": bool(g["settled"]),
        "compensation": [
            {"lender": t.lender, "amount": int(a)} for t, a in zip(loan.tranches, paid, strict=True)
        ],  # fmt: skip
        "recovered": int(ctx.client.recovered(loan.loan_id)),
    }


def statement(ctx: MemberContext, principal: Any, guarantor: str) -> dict:
    """A guarantor's guarantees and payouts from the chain's events, and its R10 headroom: for
    the guarantor itself and the auditor."""
    if principal.role != "auditor" and principal.address != guarantor:
        raise Problem(403, "NotYourStatement",
                      "a guarantor's statement is visible to itself and the auditor")  # fmt: skip
    c = ctx.client
    head = c.head()
    start = c.deployment.deployment_block
    rows: dict[bytes, dict[str, Any]] = {}
    for e in c.events("GuaranteeRecorded", from_block=start, to_block=head, guarantor=guarantor):
        rows[bytes(e.args["loanId"])] = {
            "loan_id": to_hex(bytes(e.args["loanId"])),
            "cover_bps": int(e.args["coverBps"]),
            "amount": int(e.args["amount"]),
            "state": "outstanding",
            "paid_out": 0,
        }
    for e in c.events("GuaranteeReleased", from_block=start, to_block=head, guarantor=guarantor):
        rows[bytes(e.args["loanId"])]["state"] = "released"
    for e in c.events("Compensated", from_block=start, to_block=head, guarantor=guarantor):
        row = rows[bytes(e.args["loanId"])]
        row["state"], row["paid_out"] = "compensated", int(e.args["total"])
    m = c.member(guarantor)
    policy, _v = c.current_policy()
    outstanding = int(c.guaranteed_outstanding(guarantor))
    cap = int(m["tier1_capital"]) * policy.max_guarantee_multiple
    return {
        "guarantor": guarantor,
        "guarantees": list(rows.values()),
        "outstanding": outstanding,
        "net_assets": int(m["tier1_capital"]),
        "cap": cap,
        "headroom": max(cap - outstanding, 0),
        "paid_out": sum(r["paid_out"] for r in rows.values()),
        "as_of_block": head,
    }
