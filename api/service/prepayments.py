"""Prepayments at the node: the schedule in force (the committed one, replayed through the
chain's Prepaid events by ledger.prepayment's rule and checked against each event's digest), the
platform's pre-check of a repayment flagged as a prepayment (a 4xx naming the rule, nothing
sent), and the LoanServicing.prepay call after the repayment is recorded."""

from __future__ import annotations

from typing import Any

from api.problems import Problem, from_revert
from api.service.context import MemberContext
from ledger.chain.errors import ContractRevert
from ledger.domain import CoLoan, to_hex
from ledger.prepayment import InForce, PrepaymentError


class ScheduleDisagrees(RuntimeError):
    """The chain's rescheduled digest is not what ledger.prepayment gives: a bug on one side."""


def in_force(ctx: MemberContext, loan_id: bytes, rows: Any) -> InForce:
    """The loan's schedule in force, from its committed `rows`: one call when it was never
    prepaid, else its Prepaid events replayed (each event's digest must be the rule's)."""
    cur = InForce(tuple(rows))
    c = ctx.client
    if not c.deployment.servicing:
        return cur
    head, _base = c.current_schedule(loan_id)
    if head == bytes(24):
        return cur
    for e in c.events("Prepaid", from_block=c.deployment.deployment_block, loanId=loan_id):
        a = e.args
        cur = cur.replay(int(a["principal"]), int(a["covered"]), int(a["principalBase"]))
        if cur.digest != bytes(a["scheduleDigest"]):
            raise ScheduleDisagrees(f"loan 0x{loan_id.hex()}: Prepaid digest differs from the rule")
    if cur.digest[:24] != head:
        raise ScheduleDisagrees(f"loan 0x{loan_id.hex()}: currentSchedule is not the replay's")
    return cur


def _refusal(exc: PrepaymentError) -> Problem:
    detail = str(exc)
    return Problem(
        409,
        exc.code,
        detail,
        errors=[{"field": "prepayment", "rule": exc.rule, "message": detail}],
        **exc.figures,
    )


def precheck(
    ctx: MemberContext, loan: CoLoan, held: Any, outstanding: int, principal: int, now: int
) -> InForce:
    """The schedule in force before a repayment of `principal` flagged as a prepayment, after
    checking the rule will accept it once the repayment is recorded. `held`: the node's
    (start, instalments) of the loan, or None."""
    if held is None:
        raise Problem(
            409,
            "ScheduleMissing",
            "the loan commits to no schedule this node holds: nothing to reschedule",
            errors=[{"field": "prepayment", "rule": "needs_schedule", "message": "no schedule"}],
        )
    cur = in_force(ctx, loan.loan_id, held[1])
    try:
        cur.prepay(loan.principal - outstanding + principal, now)
    except PrepaymentError as exc:
        raise _refusal(exc) from None
    return cur


def record(ctx: MemberContext, loan: CoLoan, cur: InForce, principal_repaid: int) -> dict:
    """Send LoanServicing.prepay for the schedule in force `cur` (unless this repayment's
    prepayment is already recorded: a retry) and describe the new schedule."""
    if not (cur.prepayments and cur.base == principal_repaid):
        try:
            receipt = ctx.client.prepay(loan, cur.rows)
        except ContractRevert as exc:
            ctx.metrics.rejected("prepayment", exc.code, exc.rule, "contract")
            raise from_revert(exc) from None
        tx_hash = receipt.tx_hash if receipt else None
        cur = cur.prepay(principal_repaid)
    else:
        tx_hash = None
    last = cur.prepayments[-1]
    return {
        "principal": last.principal,
        "covered_instalments": last.covered,
        "remaining_instalments": len(last.remaining),
        "schedule_digest": to_hex(last.digest),
        "next_instalment": last.remaining[0].as_json() if last.remaining else None,
        "tx_hash": tx_hash,
    }
