"""A member's statement and portfolio (ledger.statements does the arithmetic), so every figure
reconciles with the chain to the fen. The statement reads the chain's events through this node's
client; the portfolio reads the node's read model (its loans, LoanServicing's classifications and
compensations, as the indexer decoded them), or the chain on a node that keeps none."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, select

from api.auth import Principal
from api.problems import Problem
from api.service import prepayments, schedules
from api.service.context import MemberContext
from ledger import economics
from ledger.chain.events import ChainEvent
from ledger.domain import CoLoan, LoanStatus
from ledger.records import loan_from_row
from ledger.statements import portfolio, statement
from ledger.store.bulk import select_in
from ledger.store.models import TABLES

_FLOWS = ("Repaid", "ServiceFees", "Compensated", "Recovered")


def _scope(principal: Principal, address: str) -> None:
    if principal.role != "auditor" and principal.address != address:
        raise Problem(
            403,
            "NotYourStatement",
            "a member's statement and portfolio are visible to itself and the auditor",
        )


def _loans_of(ctx: MemberContext, address: str) -> dict[bytes, CoLoan]:
    c = ctx.client
    out = {}
    for e in c.events("LoanOriginated", from_block=c.deployment.deployment_block):
        loan = CoLoan.from_abi(e.args["loan"])
        if loan.platform == address or address in loan.signers:
            out[loan.loan_id] = loan
    return out


def _stamp(ctx: MemberContext, events: list[ChainEvent]) -> list[ChainEvent]:
    times: dict[int, int] = {}
    for e in events:
        if e.block_number not in times:
            times[e.block_number] = int(ctx.client.w3.eth.get_block(e.block_number)["timestamp"])
        e.timestamp = times[e.block_number]
    return events


def get_statement(
    ctx: MemberContext, principal: Principal, address: str, start: int, end: int
) -> dict[str, Any]:
    _scope(principal, address)
    if end <= start:
        raise Problem(
            422,
            "InvalidPeriod",
            "`to` must be after `from`",
            errors=[{"field": "to", "rule": "after_from", "message": "to <= from"}],
        )
    c = ctx.client
    head = c.head()  # every event read up to the same block, which the answer names
    loans = _loans_of(ctx, address)
    events: list[ChainEvent] = []
    for name in _FLOWS:
        if name in ("Compensated", "Recovered") and not c.deployment.servicing:
            continue
        events += c.events(name, from_block=c.deployment.deployment_block, to_block=head)
    events = [e for e in events if bytes(e.args["loanId"]) in loans]
    events.sort(key=lambda e: (e.block_number, e.log_index))
    out = statement(address, loans, _stamp(ctx, events), start, end).as_json()
    return {**out, "as_of_block": head}


def get_portfolio(
    ctx: MemberContext, reads: Any, head: int, principal: Principal, address: str
) -> dict[str, Any]:
    """`address`'s outstanding by category: from the read model once it holds the chain's
    `head` (briefly waited for, so a bank sees the classification it has just recorded), else
    (a node reading the chain directly) from the chain."""
    _scope(principal, address)
    engine: Engine | None = getattr(reads, "engine", None)
    if engine is None:
        return _chain_portfolio(ctx, address)
    reads.as_of(head)
    with engine.connect() as conn:
        return _indexed_portfolio(ctx, conn, address)


def _floor(p: Any) -> economics.Floor:
    return economics.Floor(p.special_mention_max_dpd, p.substandard_max_dpd, p.doubtful_max_dpd)


def _category(
    ctx: MemberContext, loan: CoLoan, outstanding: int, status: LoanStatus, recorded: int | None,
    floor: economics.Floor, now: int, conn: Connection | None = None,
) -> int:  # fmt: skip
    """The bank's own recorded category, else loss once written off, else the DPD floor's (from
    the loan's schedule in force, whose signed original this node holds if it signed the loan)."""
    if recorded is not None:
        return recorded
    if status == LoanStatus.WRITTEN_OFF:
        return int(economics.Category.LOSS)
    held = schedules.load(ctx.engine, loan.loan_id)
    if held is None:
        return int(floor.category(0))
    # the schedule in force: the signed one, or what prepayments rescaled it to (from the read
    # model when the figures come from it, so they are all as of one block)
    force = (
        prepayments.in_force(ctx, loan.loan_id, held[1])
        if conn is None
        else prepayments.in_force_indexed(conn, loan.loan_id, held[1])
    )
    return int(floor.category(force.days_past_due(loan.principal - outstanding, now)))


def _indexed_portfolio(ctx: MemberContext, conn: Connection, address: str) -> dict[str, Any]:
    t = TABLES
    block = conn.execute(select(t["indexer_cursor"].c.last_block)).scalar_one()
    now = conn.execute(select(t["blocks"].c.timestamp).where(t["blocks"].c.number == block))
    pv = t["policy_versions"]
    policy = conn.execute(select(pv).order_by(pv.c.version.desc()).limit(1)).first()
    if policy is None:
        raise Problem(503, "ReadModelNotReady", "the read model holds no policy yet; retry")
    floor, at = _floor(policy), now.scalar() or 0
    tr = t["tranches"]
    ids = set(conn.execute(select(tr.c.loan_id).where(tr.c.lender == address)).scalars())
    parts: dict[bytes, list[Any]] = {i: [] for i in ids}
    for row in select_in(conn, tr, "loan_id", ids):
        parts[row["loan_id"]].append(row)
    payouts: dict[bytes, list[int]] = {}
    for row in sorted(select_in(conn, t["compensations"], "loan_id", ids), key=lambda r: r["idx"]):
        payouts.setdefault(row["loan_id"], []).append(row["payout"])
    cl = t["classifications"]
    recorded: dict[bytes, int] = {}
    for row in conn.execute(
        select(cl.c.loan_id, cl.c.category)
        .where(cl.c.lender == address)
        .order_by(cl.c.block_number, cl.c.log_index)
    ):
        recorded[row.loan_id] = row.category  # the latest wins
    states, categories = {}, {}
    for r in select_in(conn, t["loans"], "loan_id", ids):
        loan = loan_from_row(r, sorted(parts[r["loan_id"]], key=lambda x: x["idx"]))
        status = LoanStatus(r["status"])
        states[loan.loan_id] = (loan, r["outstanding"], status)
        categories[loan.loan_id] = _category(
            ctx, loan, r["outstanding"], status, recorded.get(loan.loan_id), floor, at, conn
        )
    return {**portfolio(address, states, payouts, categories), "as_of_block": block}


def _chain_portfolio(ctx: MemberContext, address: str) -> dict[str, Any]:
    c = ctx.client
    latest = c.w3.eth.get_block("latest")
    block, now = int(latest["number"]), int(latest["timestamp"])
    policy, _v = c.current_policy()
    floor = _floor(policy)
    states, payouts, categories = {}, {}, {}
    for lid, loan in _loans_of(ctx, address).items():
        _c, outstanding, status = c.loan_state(lid)
        states[lid] = (loan, outstanding, status)
        recorded = None
        if c.deployment.servicing:
            paid = c.compensation_of(lid)
            if paid:
                payouts[lid] = paid
            recorded = c.classification_of(lid, address)
        categories[lid] = _category(ctx, loan, outstanding, status, recorded, floor, now)
    return {**portfolio(address, states, payouts, categories), "as_of_block": block}
