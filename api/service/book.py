"""A ledger.rules Book with just the state one record is judged on, read from the chain at one
block: the policy, the parties, the borrower's exposure and institutions, each lender's usage,
the line a loan draws on, and whether the id is taken.

Reading from the chain (not the read model) keeps the pre-check as fresh as possible; it is a
pre-check only, the contract judges again when the record lands.
"""

from __future__ import annotations

from api.service.consortium import ConsortiumView
from ledger.domain import ZERO32, CoLoan, CreditLine, LineStatus, LoanStatus, Product, id_platform
from ledger.rules import (
    Book,
    BorrowerState,
    LineState,
    LoanState,
    MemberState,
    Violation,
    check_line,
    check_loan,
)


def snapshot(chain: ConsortiumView, record: CoLoan | CreditLine) -> tuple[Book, int, int]:
    """(book, block number, block timestamp) for judging `record` now."""
    n, now = chain.now()
    book = Book(policy=chain.policy(n))
    book.paused = chain.paused(n)
    parties = record.tranches if isinstance(record, CoLoan) else record.shares
    for t in parties:
        m = chain.member(t.lender, n)
        if not m.known:
            continue  # not a member: rules report NotActiveMember
        book.members[t.lender] = MemberState.from_info(m)
        if t.lender != record.platform:
            usage = chain.usage(t.lender, record.platform, n)
            book.lender_total[t.lender] = usage.total
            book.lender_partner[(t.lender, record.platform)] = usage.with_partner
    x = chain.borrower_exposure(record.borrower_key, n)
    book.borrowers[record.borrower_key] = BorrowerState.from_view(x)
    if isinstance(record, CoLoan):
        _outstanding, status = chain.loan_state(record.loan_id, n)
        if status != LoanStatus.NONE:
            book.loans[record.loan_id] = LoanState(record, 0)
        if record.line_id != ZERO32:
            _add_line(chain, book, record.line_id, record.platform, n)
    else:
        state = chain.line_state(record.line_id, n)
        if state.status != LineStatus.NONE:
            book.lines[record.line_id] = LineState(record, 0, state.status)
    return book, n, now


def judge(chain: ConsortiumView, record: CoLoan | CreditLine) -> tuple[Violation | None, int]:
    """The rule `record` breaks against the chain's state now (None: none), and that now."""
    book, _block, now = snapshot(chain, record)
    check = check_loan if isinstance(record, CoLoan) else check_line
    return check(book, record, now), now  # type: ignore[arg-type]


def _add_line(chain: ConsortiumView, book: Book, line_id: bytes, platform: str, n: int) -> None:
    state = chain.line_state(line_id, n)
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
