"""A ledger.rules Book with just the state one record is judged on, read from the chain at one
block: the policy, the parties, the borrower's exposure and institutions, each lender's usage,
the line a loan draws on, and whether the id is taken.

Reading from the chain (not the read model) keeps the pre-check as fresh as possible; it is a
pre-check only, the contract judges again when the record lands.
"""

from __future__ import annotations

from ledger.chain.client import LedgerClient
from ledger.domain import (
    ZERO32,
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
    MemberStatus,
    Policy,
    Product,
    Role,
)
from ledger.rules import Book, Borrower, Line, Loan, Member


def snapshot(client: LedgerClient, record: CoLoan | CreditLine) -> tuple[Book, int, int]:
    """(book, block number, block timestamp) for judging `record` now."""
    block = client.w3.eth.get_block("latest")
    n, now = int(block["number"]), int(block["timestamp"])
    reg, led = client.registry, client.ledger
    policy_raw, _version = client.call(reg, "currentPolicy", block=n)
    book = Book(policy=Policy.from_abi(policy_raw))
    book.paused = bool(client.call(reg, "paused", block=n))
    parties = record.tranches if isinstance(record, CoLoan) else record.shares
    for t in parties:
        m = client.call(reg, "member", t.lender, block=n)
        if MemberStatus(m[1]) == MemberStatus.NONE:
            continue  # not a member: rules report NotActiveMember
        book.members[t.lender] = Member(
            role=Role(m[0]),
            status=MemberStatus(m[1]),
            frozen=bool(m[2]),
            index=int(m[3]),
            tier1_capital=int(m[4]),
            total_loan_balance=int(m[5]),
            attested_until=int(m[7]),
        )
        if t.lender != record.platform:
            total, with_partner, *_ = client.call(
                led, "lenderUsage", t.lender, record.platform, block=n
            )
            book.lender_total[t.lender] = int(total)
            book.lender_partner[(t.lender, record.platform)] = int(with_partner)
    consumer, business, idx, counts = client.call(
        led, "borrowerExposure", record.borrower_key, block=n
    )
    book.borrowers[record.borrower_key] = Borrower(
        exposure={Product.CONSUMER: int(consumer), Product.BUSINESS: int(business)},
        open_records={int(i): int(c) for i, c in zip(idx, counts, strict=True)},
    )
    if isinstance(record, CoLoan):
        _, _, status = client.call(led, "loanState", record.loan_id, block=n)
        if LoanStatus(status) != LoanStatus.NONE:
            book.loans[record.loan_id] = Loan(record, 0)
        if record.line_id != ZERO32:
            _add_line(client, book, record.line_id, record.platform, n)
    else:
        rec, _key = client.call(led, "lineState", record.line_id, block=n)
        if LineStatus(rec[3]) != LineStatus.NONE:
            book.lines[record.line_id] = Line(record, 0, LineStatus(rec[3]))
    return book, n, now


def _add_line(client: LedgerClient, book: Book, line_id: bytes, platform: str, n: int) -> None:
    rec, key = client.call(client.ledger, "lineState", line_id, block=n)
    limit, drawn, expires, status, product, pidx, _inst = rec
    if LineStatus(status) == LineStatus.NONE:
        return  # rules report LineNotActive
    # Only the fields the loan checks read are real; the rest of the line's terms are not stored
    # on chain and are not needed here.
    line = CreditLine(
        line_id=line_id,
        borrower_key=bytes(key),
        platform=platform,
        product=Product(product),
        limit=int(limit),
        expires_at=int(expires),
        deadline=0,
        shares=(),
    )
    book.lines[line_id] = Line(line, int(pidx), LineStatus(status), int(drawn))
