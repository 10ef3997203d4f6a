"""A ledger.rules Book with just the state one record is judged on, read from the chain at one
block: the policy, the parties, the borrower's exposure and institutions, each lender's usage,
the line a loan draws on, and whether the id is taken.

Reading from the chain (not the read model) keeps the pre-check as fresh as possible; it is a
pre-check only, the contract judges again when the record lands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.service.consortium import ConsortiumView, LineOnChain
from ledger.domain import (
    ZERO32,
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
    Product,
    Tranche,
    id_platform,
)
from ledger.rules import (
    Book,
    BorrowerState,
    LineState,
    LoanState,
    MemberState,
    Violation,
    apply_line,
    apply_loan,
    check_line,
    check_loan,
)


def snapshot(chain: ConsortiumView, record: CoLoan | CreditLine) -> tuple[Book, int, int]:
    """(book, block number, block timestamp) for judging `record` now."""
    return snapshot_many(chain, [record])


def snapshot_many(
    chain: ConsortiumView, records: Sequence[CoLoan | CreditLine]
) -> tuple[Book, int, int]:
    """One book for judging all of `records` now: every view they need read at one block in
    one round trip (the policy, the pause, each party, each lender's usage with each platform,
    each borrower, each id, each line drawn on)."""
    n, now = chain.now()
    parties = {t.lender: None for r in records for t in _parties(r)}
    pairs = {
        (t.lender, r.platform): None for r in records for t in _parties(r) if t.lender != r.platform
    }
    keys = {r.borrower_key: None for r in records}
    loans = [r.loan_id for r in records if isinstance(r, CoLoan)]
    lines = [r.line_id for r in records if isinstance(r, CreditLine)]
    drawn = {r.line_id: None for r in records if isinstance(r, CoLoan) and r.line_id != ZERO32}
    wanted: list[tuple[Any, ...]] = [("policy",), ("paused",)]
    wanted += [("member", a) for a in parties]
    wanted += [("usage", lender, platform) for lender, platform in pairs]
    wanted += [("borrower_exposure", k) for k in keys]
    wanted += [("loan_state", i) for i in loans]
    wanted += [("line_state", i) for i in [*lines, *drawn]]
    got = iter(chain.read_many(n, wanted))
    book = Book(policy=next(got))
    book.paused = next(got)
    for address in parties:
        m = next(got)
        if m.known:  # not a member: rules report NotActiveMember
            book.members[address] = MemberState.from_info(m)
    for lender, platform in pairs:
        usage = next(got)
        if lender in book.members:
            book.lender_total[lender] = usage.total
            book.lender_partner[(lender, platform)] = usage.with_partner
    for k in keys:
        book.borrowers[k] = BorrowerState.from_view(next(got))
    by_id = {r.loan_id: r for r in records if isinstance(r, CoLoan)}
    for loan_id in loans:
        _outstanding, status = next(got)
        if status != LoanStatus.NONE:
            book.loans[loan_id] = LoanState(by_id[loan_id], 0)
    by_line = {r.line_id: r for r in records if isinstance(r, CreditLine)}
    for line_id in lines:
        state = next(got)
        if state.status != LineStatus.NONE:
            book.lines[line_id] = LineState(by_line[line_id], 0, state.status)
    platform_of = {r.line_id: r.platform for r in records if isinstance(r, CoLoan)}
    for line_id in drawn:
        _add_line(chain, book, line_id, platform_of[line_id], next(got), n)
    return book, n, now


def _parties(record: CoLoan | CreditLine) -> tuple[Tranche, ...]:
    return record.tranches if isinstance(record, CoLoan) else record.shares


def judge(chain: ConsortiumView, record: CoLoan | CreditLine) -> tuple[Violation | None, int]:
    """The rule `record` breaks against the chain's state now (None: none), and that now."""
    verdicts, now = judge_many(chain, [record])
    return verdicts[0], now


def judge_many(
    chain: ConsortiumView, records: Sequence[CoLoan | CreditLine]
) -> tuple[list[Violation | None], int]:
    """Each record's verdict as if recorded in this order after the chain's state now: each
    one that passes counts against the next (two loans to one borrower in one batch are judged
    together, as the contract will), one that breaks a rule does not."""
    book, _block, now = snapshot_many(chain, records)
    out: list[Violation | None] = []
    for record in records:
        if isinstance(record, CoLoan):
            v = check_loan(book, record, now)
            if v is None:
                apply_loan(book, record)
        else:
            v = check_line(book, record, now)
            if v is None:
                apply_line(book, record)
        out.append(v)
    return out, now


def _add_line(
    chain: ConsortiumView, book: Book, line_id: bytes, platform: str, state: LineOnChain, n: int
) -> None:
    if state.status == LineStatus.NONE:
        return  # rules report LineNotActive
    owner = id_platform(line_id)  # ids belong to their platform
    if owner != platform and (servicer := chain.servicer(owner, n)) != owner:
        book.servicers[owner] = servicer  # a draw by a successor after a servicing transfer
    # Only the fields the loan checks read are real; the rest of the line's terms are not stored
    # on chain and are not needed here.
    line = CreditLine(
        line_id=line_id,
        borrower_key=state.borrower_key,
        platform=owner,
        product=Product(state.product),
        limit=state.limit,
        expires_at=state.expires_at,
        deadline=0,
        shares=(),
    )
    book.lines[line_id] = LineState(
        line, state.platform_index, state.status, state.drawn, state.holders, set(state.frozen)
    )
