"""A member's statement and portfolio, read from the chain's events through this node's client
(ledger.statements does the arithmetic), so every figure reconciles with the chain to the fen."""

from __future__ import annotations

from typing import Any

from api.auth import Principal
from api.problems import Problem
from api.service import prepayments, schedules
from api.service.context import MemberContext
from ledger import economics
from ledger.chain.events import ChainEvent
from ledger.domain import CoLoan, LoanStatus
from ledger.statements import portfolio, statement

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


def get_portfolio(ctx: MemberContext, principal: Principal, address: str) -> dict[str, Any]:
    _scope(principal, address)
    c = ctx.client
    latest = c.w3.eth.get_block("latest")
    block, now = int(latest["number"]), int(latest["timestamp"])
    policy, _v = c.current_policy()
    floor = economics.Floor(
        policy.special_mention_max_dpd, policy.substandard_max_dpd, policy.doubtful_max_dpd
    )
    states, payouts, categories = {}, {}, {}
    for lid, loan in _loans_of(ctx, address).items():
        _c, outstanding, status = c.loan_state(lid)
        states[lid] = (loan, outstanding, status)
        if c.deployment.servicing:
            paid = c.compensation_of(lid)
            if paid:
                payouts[lid] = paid
            recorded = c.classification_of(lid, address)
        else:
            recorded = None
        if recorded is not None:
            categories[lid] = recorded
        elif status == LoanStatus.WRITTEN_OFF:
            categories[lid] = int(economics.Category.LOSS)
        else:
            held = schedules.load(ctx.engine, lid)
            dpd = (
                0
                if held is None
                else prepayments.in_force(ctx, lid, held[1]).days_past_due(
                    loan.principal - outstanding, now
                )
            )
            categories[lid] = int(floor.category(dpd))
    return {**portfolio(address, states, payouts, categories), "as_of_block": block}
