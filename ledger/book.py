"""The state the rules judge against, and how each accepted record changes it.

`Book` holds the members, each borrower's exposure and institutions, lender usage, lines and
loans. `apply_loan`/`apply_line`/`apply_repayment`/... update it the way the contract updates
its storage, so a node can keep a snapshot from its read model, the audit can replay the history
and tests can model the chain. ledger.rules judges a record against a Book before it is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger import allocation
from ledger.domain import (
    ZERO32,
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
    MemberInfo,
    MemberStatus,
    Policy,
    Product,
    Role,
    Tranche,
)


@dataclass(slots=True)
class MemberState:
    role: Role
    status: MemberStatus = MemberStatus.ACTIVE
    frozen: bool = False
    index: int = 0
    tier1_capital: int = 0
    total_loan_balance: int = 0
    attested_until: int = 0
    attested_at: int = 0

    def attestation_valid_until(self, policy: Policy) -> int:
        """R8: until when this lender's capital figures may be used under `policy` (the one in
        force when they are used): the end of the attested period, or the policy's
        maxAttestationAge after the attestation, whichever is earlier."""
        return min(self.attested_until, self.attested_at + policy.max_attestation_age)

    @classmethod
    def from_info(cls, info: MemberInfo) -> MemberState:
        """From the registry's record of a member (ledger.domain.MemberInfo, the one decoder of
        the registry's Member tuple)."""
        return cls(
            role=info.role,
            status=info.status,
            frozen=info.frozen,
            index=info.index,
            tier1_capital=info.tier1_capital,
            total_loan_balance=info.total_loan_balance,
            attested_until=info.attested_until,
            attested_at=info.attested_at,
        )


@dataclass(slots=True)
class BorrowerState:
    exposure: dict[Product, int] = field(
        default_factory=lambda: {Product.CONSUMER: 0, Product.BUSINESS: 0}
    )
    open_records: dict[int, int] = field(default_factory=dict)  # member index -> open records

    @classmethod
    def from_view(cls, raw: Sequence[Any]) -> BorrowerState:
        """From the ledger's `borrowerExposure(key)` view: (consumer, business, member indices,
        open records per index)."""
        consumer, business, indices, counts = raw
        return cls(
            exposure={Product.CONSUMER: int(consumer), Product.BUSINESS: int(business)},
            open_records={int(i): int(c) for i, c in zip(indices, counts, strict=True)},
        )


@dataclass(slots=True)
class LineState:
    line: CreditLine
    platform_index: int
    status: LineStatus = LineStatus.ACTIVE
    drawn: int = 0
    # the share holders' member indices, as the contract stores them; empty: read them from
    # `line.shares` (a node that rebuilds a line from the chain's view has only these)
    holders: tuple[int, ...] = ()
    frozen: set[int] = field(default_factory=set)  # member indices of banks that froze (freezeLine)


@dataclass(slots=True)
class LoanState:
    loan: CoLoan
    outstanding: int
    status: LoanStatus = LoanStatus.ACTIVE


@dataclass(slots=True)
class Book:
    """The state the rules judge against."""

    policy: Policy
    members: dict[str, MemberState] = field(default_factory=dict)
    borrowers: dict[bytes, BorrowerState] = field(default_factory=dict)
    lender_total: dict[str, int] = field(default_factory=dict)
    lender_partner: dict[tuple[str, str], int] = field(default_factory=dict)
    lines: dict[bytes, LineState] = field(default_factory=dict)
    loans: dict[bytes, LoanState] = field(default_factory=dict)
    repayment_ids: set[bytes] = field(default_factory=set)
    paused: bool = False
    # platform -> the platform it handed its servicing to (the registry's ServicingTransferred)
    servicers: dict[str, str] = field(default_factory=dict)

    def servicer(self, platform: str) -> str:
        """The platform servicing the records `platform` originated, as the registry's
        `servicer` view answers: the end of its chain of servicing transfers."""
        while (nxt := self.servicers.get(platform)) is not None:
            platform = nxt
        return platform

    def borrower(self, key: bytes) -> BorrowerState:
        return self.borrowers.setdefault(key, BorrowerState())

    def admit(self, address: str, role: Role) -> MemberState:
        m = MemberState(role=role, index=len(self.members) + 1)
        self.members[address] = m
        return m


# ------------------------------------------------------------------ state transitions


def _open(book: Book, key: bytes, tranches: tuple[Tranche, ...]) -> None:
    b = book.borrower(key)
    for t in tranches:
        idx = book.members[t.lender].index
        b.open_records[idx] = b.open_records.get(idx, 0) + 1


def _close(book: Book, key: bytes, lenders: list[str]) -> None:
    b = book.borrower(key)
    for lender in lenders:
        idx = book.members[lender].index
        n = b.open_records.get(idx, 0) - 1
        if n <= 0:
            b.open_records.pop(idx, None)
        else:
            b.open_records[idx] = n


def apply_loan(book: Book, loan: CoLoan) -> None:
    """Record an accepted loan (after check_loan returned None)."""
    b = book.borrower(loan.borrower_key)
    if loan.line_id == ZERO32:
        b.exposure[loan.product] += loan.principal
    else:
        book.lines[loan.line_id].drawn += loan.principal
    _open(book, loan.borrower_key, loan.tranches)
    for t in loan.tranches:
        if t.lender == loan.platform:
            continue
        book.lender_total[t.lender] = book.lender_total.get(t.lender, 0) + t.amount
        k = (t.lender, loan.platform)
        book.lender_partner[k] = book.lender_partner.get(k, 0) + t.amount
    book.loans[loan.loan_id] = LoanState(loan, loan.principal)


def apply_line(book: Book, line: CreditLine) -> None:
    book.borrower(line.borrower_key).exposure[line.product] += line.limit
    _open(book, line.borrower_key, line.shares)
    book.lines[line.line_id] = LineState(line, book.members[line.platform].index)


def _release(book: Book, loan: CoLoan, amounts: list[int], principal: int) -> None:
    for t, a in zip(loan.tranches, amounts, strict=True):
        if t.lender == loan.platform or a == 0:
            continue
        book.lender_total[t.lender] -= a
        book.lender_partner[(t.lender, loan.platform)] -= a
    if principal == 0:
        return
    counted = True
    if loan.line_id != ZERO32:
        line = book.lines[loan.line_id]
        line.drawn -= principal
        counted = line.status != LineStatus.ACTIVE
    if counted:
        book.borrower(loan.borrower_key).exposure[loan.product] -= principal


def apply_repayment(book: Book, loan_id: bytes, repayment_id: bytes, principal: int) -> list[int]:
    """Record a repayment; returns the per-tranche principal allocation."""
    rec = book.loans[loan_id]
    amounts = [t.amount for t in rec.loan.tranches]
    before = rec.loan.principal - rec.outstanding
    alloc = allocation.between(amounts, rec.loan.principal, before, before + principal)
    _release(book, rec.loan, alloc, principal)
    rec.outstanding -= principal
    book.repayment_ids.add(repayment_id)
    if rec.outstanding == 0:
        rec.status = LoanStatus.REPAID
        _close(book, rec.loan.borrower_key, [t.lender for t in rec.loan.tranches])
    return alloc


def apply_write_off(book: Book, loan_id: bytes) -> int:
    rec = book.loans[loan_id]
    amounts = [t.amount for t in rec.loan.tranches]
    remaining = allocation.outstanding(amounts, rec.loan.principal, rec.outstanding)
    released = rec.outstanding
    _release(book, rec.loan, remaining, released)
    rec.outstanding = 0
    rec.status = LoanStatus.WRITTEN_OFF
    _close(book, rec.loan.borrower_key, [t.lender for t in rec.loan.tranches])
    return released


def apply_line_end(book: Book, line_id: bytes, status: LineStatus) -> None:
    line = book.lines[line_id]
    b = book.borrower(line.line.borrower_key)
    b.exposure[line.line.product] += line.drawn - line.line.limit
    _close(book, line.line.borrower_key, [t.lender for t in line.line.shares])
    line.status = status
