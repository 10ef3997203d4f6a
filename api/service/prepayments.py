"""Prepayments at the node: the schedule in force (the committed one, replayed through the
chain's Prepaid events by ledger.prepayment's rule and checked against each event's digest), the
platform's pre-check of a repayment flagged as a prepayment (a 4xx naming the rule, nothing
sent), and the LoanServicing.prepay call after the repayment is recorded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from api.problems import Problem, from_revert
from api.service.context import MemberContext
from ledger.chain.errors import ContractRevert
from ledger.domain import CoLoan, to_hex
from ledger.prepayment import InForce, PrepaymentError
from ledger.store.models import TABLES


class ScheduleDisagrees(RuntimeError):
    """The chain's rescheduled digest is not what ledger.prepayment gives: a bug on one side."""


def in_force(ctx: MemberContext, loan_id: bytes, rows: Any) -> InForce:
    """The loan's schedule in force now, from its committed `rows`: one call when it was never
    prepaid, else its Prepaid events replayed (each event's digest must be the rule's)."""
    cur = InForce(tuple(rows))
    c = ctx.client
    if not c.deployment.servicing:
        return cur
    head, _base = c.current_schedule(loan_id)
    if head == bytes(24):
        return cur
    events = c.events("Prepaid", from_block=c.deployment.deployment_block, loanId=loan_id)
    cur = _replay(loan_id, cur, ((int(e.args["principal"]), int(e.args["covered"]),
                                  int(e.args["principalBase"]), bytes(e.args["scheduleDigest"]))
                                 for e in events))  # fmt: skip
    if cur.digest[:24] != head:
        raise ScheduleDisagrees(f"loan 0x{loan_id.hex()}: currentSchedule is not the replay's")
    return cur


def in_force_indexed(conn: Connection, loan_id: bytes, rows: Any) -> InForce:
    """The loan's schedule in force as of the read model's block: the Prepaid events its indexer
    recorded, replayed (no call to the chain, so a portfolio of many loans is one query)."""
    t = TABLES["prepayments"]
    found = conn.execute(
        select(t.c.principal, t.c.covered, t.c.principal_base, t.c.schedule_digest)
        .where(t.c.loan_id == loan_id)
        .order_by(t.c.block_number, t.c.log_index)
    )
    return _replay(loan_id, InForce(tuple(rows)), (tuple(r) for r in found))


def _replay(
    loan_id: bytes, cur: InForce, prepaid: Iterable[tuple[int, int, int, bytes]]
) -> InForce:
    for principal, covered, base, digest in prepaid:
        cur = cur.replay(principal, covered, base)
        if cur.digest != bytes(digest):
            raise ScheduleDisagrees(f"loan 0x{loan_id.hex()}: Prepaid digest differs from the rule")
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
