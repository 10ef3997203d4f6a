"""A loan's repayment schedule at the node: built (or checked) from the request, its all-in APR
recomputed, carried to the lender nodes beside the signed terms, kept in the node's own table,
and shown with what is due, paid and overdue.

The chain holds only the schedule's digest (in the signed terms); the instalments live with the
parties that signed them (the platform's and the banks' nodes).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from api.problems import Problem
from api.service import prepayments
from api.store import LoanSchedule
from ledger import apr, apr_bounds, economics
from ledger import schedule as sched
from ledger.domain import ZERO32, CoLoan, to_hex
from ledger.prepayment import InForce


def _field_problem(
    status: int, code: str, field: str, rule: str, detail: str, **extra: Any
) -> Problem:
    return Problem(status, code, detail, errors=[{"field": field, "rule": rule, "message": detail}],
                   **extra)  # fmt: skip


def build(
    spec: Any, principal: int, now: int, term_days: int | None = None
) -> tuple[int, tuple[sched.Instalment, ...]]:
    """(start, instalments) from a request's `schedule`: the instalments given, checked, or built
    by ledger.schedule from kind, months and rates. Given instalments without a start start where
    the chain will say they do: `term_days` before the last due, or without it the last moment
    not after now that is a whole number of days before the last due."""
    start = spec.start if spec.start is not None else now
    try:
        if spec.instalments is not None:
            rows = tuple(sched.Instalment(i.due, i.principal, i.interest, i.charges)
                         for i in spec.instalments)  # fmt: skip
            if spec.start is None and rows:
                last = rows[-1].due
                days = term_days if term_days is not None else (last - now) // apr_bounds.DAY
                start = apr_bounds.start_of(last, days)
        else:
            rows = sched.build(spec.kind, principal, spec.months, spec.rate_bps, start,
                               spec.charge_bps, spec.charge_on_original)  # fmt: skip
        sched.check(rows, principal)
    except sched.ScheduleError as exc:
        field = "schedule." + exc.field.removeprefix("schedule.")
        raise _field_problem(422, "InvalidSchedule", field, exc.rule, str(exc)) from None
    if rows[0].due <= start:
        raise _field_problem(422, "InvalidSchedule", "schedule.start", "before_first_due",
                             "the first instalment must fall due after the start")  # fmt: skip
    return start, rows


def term_days(declared: int | None, start: int, rows: tuple[sched.Instalment, ...]) -> int:
    """The loan's term as its schedule gives it: whole days from the start to the last due. The
    chain defines the start from the signed terms as last due - term_days days, so a term that
    contradicts the schedule would move the start the APR is judged from (and could dodge R7)."""
    days, rest = divmod(rows[-1].due - start, apr_bounds.DAY)
    if rest:
        raise _field_problem(
            422, "InvalidSchedule", "schedule.start", "whole_days_to_last_due",
            f"the last instalment falls due {days} days and {rest} s after the start; the term "
            "must be a whole number of days",
        )  # fmt: skip
    if declared is not None and declared != days:
        raise _field_problem(
            422, "TermMismatch", "term_days", "matches_schedule",
            f"term_days {declared} does not match the schedule: its last instalment falls due "
            f"{days} days after the start",
            declared=declared, computed=days,
        )  # fmt: skip
    return days


def chain_check(loan: CoLoan) -> None:
    """What the contract will check of the schedule sent with `loan` (ledger.apr_bounds, the
    same bounds): a loan that would be refused is a 422 here, and nothing is sent."""
    refusal = apr_bounds.check(
        loan.schedule_digest, loan.schedule, loan.principal, loan.apr_bps, loan.term_days
    )
    if refusal is not None:
        numbers = {k: v for k, v in refusal.values.items() if isinstance(v, int)}
        raise _field_problem(422, refusal.code, "schedule", "chain_schedule_check",
                             f"the contract would refuse this schedule: {refusal.code}",
                             **numbers)  # fmt: skip


def all_in_apr(principal: int, start: int, rows: tuple[sched.Instalment, ...]) -> int:
    try:
        return apr.all_in_apr_bps(rows, principal, start)
    except ValueError as exc:
        raise _field_problem(422, "InvalidSchedule", "schedule", "monthly", str(exc)) from None


def check_declared(declared: int | None, computed: int) -> int:
    """The APR the terms carry: the computed one; a declared figure must equal it."""
    if declared is not None and declared != computed:
        raise _field_problem(
            422, "AprMismatch", "apr_bps", "irr_of_schedule",
            f"apr_bps {declared} does not match the schedule's all-in APR (IRR) {computed}",
            declared=declared, computed=computed,
        )  # fmt: skip
    return computed


def terms_json(start: int, rows: tuple[sched.Instalment, ...]) -> dict[str, Any]:
    return {"start": start, "instalments": sched.to_json(rows)}


def verify_for_cosign(
    loan: CoLoan, given: Any, lender: str
) -> tuple[int, tuple[sched.Instalment, ...]] | None:
    """A lender node's check of the schedule beside the terms it is asked to sign: it hashes to
    the signed digest, sums to the principal and gives exactly the declared all-in APR."""
    if loan.schedule_digest == ZERO32:
        return None
    if given is None:
        raise _field_problem(409, "ScheduleMissing", "schedule", "sent_with_terms",
                             "the terms commit to a schedule that was not sent",
                             lender=lender)  # fmt: skip
    rows = sched.from_json([i.model_dump() for i in given.instalments])
    if sched.digest(rows) != loan.schedule_digest:
        raise _field_problem(409, "ScheduleMismatch", "schedule", "hashes_to_digest",
                             "the schedule does not hash to the signed digest",
                             lender=lender)  # fmt: skip
    defined = apr_bounds.start_of(rows[-1].due, loan.term_days)
    if given.start != defined:
        # the chain judges the APR from this start: a schedule sent with another is not the loan
        raise _field_problem(409, "TermMismatch", "term_days", "matches_schedule",
                             f"the schedule starts at {given.start}, the signed terms (last due - "
                             f"term_days {loan.term_days} days) at {defined}",
                             lender=lender, start=given.start, defined=defined)  # fmt: skip
    try:
        sched.check(rows, loan.principal)
        computed = apr.all_in_apr_bps(rows, loan.principal, given.start)
    except (sched.ScheduleError, ValueError) as exc:
        field = getattr(exc, "field", "schedule")
        raise _field_problem(409, "InvalidSchedule", field, getattr(exc, "rule", "monthly"),
                             str(exc), lender=lender) from None  # fmt: skip
    if computed != loan.apr_bps:
        raise _field_problem(409, "AprMismatch", "apr_bps", "irr_of_schedule",
                             f"apr_bps {loan.apr_bps} is not the schedule's all-in APR {computed}",
                             lender=lender, declared=loan.apr_bps, computed=computed)  # fmt: skip
    return given.start, rows


def save(engine: Engine, loan: CoLoan, start: int, rows: tuple[sched.Instalment, ...]) -> None:
    with Session(engine) as s:
        s.merge(LoanSchedule(loan_id=to_hex(loan.loan_id), start=start,
                             instalments=json.dumps(sched.to_json(rows))))  # fmt: skip
        s.commit()


def with_held(engine: Engine, loan: CoLoan) -> CoLoan:
    """`loan` (terms resumed from a claim) with the words of the schedule saved beside it, which
    the contract needs sent with the terms."""
    if loan.schedule_digest == ZERO32:
        return loan
    held = load(engine, loan.loan_id)
    if held is None:
        return loan  # the contract refuses it (ScheduleDigestMismatch), as it should
    return dataclasses.replace(loan, schedule=sched.words(held[1]))


def load(engine: Engine, loan_id: bytes) -> tuple[int, tuple[sched.Instalment, ...]] | None:
    with Session(engine) as s:
        row = s.get(LoanSchedule, to_hex(loan_id))
    if row is None:
        return None
    return row.start, sched.from_json(json.loads(row.instalments))


def schedule_view(
    start: int,
    committed: tuple[sched.Instalment, ...],
    cur: InForce,
    principal: int,
    outstanding: int,
    at: int,
    floor: economics.Floor,
) -> dict[str, Any]:
    """The schedule in force (after any prepayment: the instalments repaid before it, then the
    rescaled remaining ones) with each instalment's state at `at`: paid (its principal repaid,
    cumulatively), overdue (due and not paid), due (the next one) or upcoming; the prepayments;
    the loan's days past due and its floor category. The all-in APR is the signed schedule's."""
    repaid = cur.repaid(principal - outstanding)
    out = [{**i.as_json(), "total": i.total, "state": "paid"} for i in cur.paid_before]
    cum, next_marked = 0, False
    for i in cur.rows:
        cum += i.principal
        if cum <= repaid:
            state = "paid"
        elif i.due < at:
            state = "overdue"
        elif not next_marked:
            state, next_marked = "due", True
        else:
            state = "upcoming"
        out.append({**i.as_json(), "total": i.total, "state": state})
    dpd = economics.days_past_due(cur.rows, repaid, at)
    return {
        "start": start,
        "instalments": out,
        "all_in_apr_bps": apr.all_in_apr_bps(committed, principal, start),
        "days_past_due": dpd,
        "overdue_principal": economics.overdue_principal(cur.rows, repaid, at),
        "floor_category": economics.CATEGORY_NAMES[floor.category(dpd)],
        "prepayments": [
            {
                "principal": p.principal,
                "covered_instalments": p.covered,
                "principal_base": p.base,
                "schedule_digest": to_hex(p.digest),
            }
            for p in cur.prepayments
        ],
    }


def attach(view: Any, ctx: Any, chain: Any) -> Any:
    """`view` (a LoanView) with its schedule's state now, if this node holds the schedule."""
    loan_id = bytes.fromhex(view.loan_id[2:])
    held = load(ctx.engine, loan_id)
    if held is None:
        return view
    _block, now = chain.now()
    p = chain.policy()
    floor = economics.Floor(p.special_mention_max_dpd, p.substandard_max_dpd, p.doubtful_max_dpd)
    start, rows = held
    cur = prepayments.in_force(ctx, loan_id, rows)
    return view.model_copy(
        update={
            "schedule": schedule_view(
                start, rows, cur, view.principal, view.outstanding, now, floor
            )
        }
    )
