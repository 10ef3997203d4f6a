"""R1-R8 as pure functions over a state snapshot: the fast pre-check before anything is sent.

The contracts are the judge; these functions must agree with them on every case, which the shared
vectors in tests/vectors/rules.json prove by running each case on chain and here. The checks run
in the contract's order, so the first failing check gives the same code and the same numbers as
the revert (`BorrowerCapExceeded(borrowerKey, exposure, requested, cap)` and so on).
Signatures are provenance, not rules: ledger.provenance verifies them.

`Book` is the state: members, each borrower's exposure and institutions, lender usage, lines and
loans. `apply_loan`/`apply_line`/`apply_repayment`/... update it the way the contract updates
its storage, so a node can keep a snapshot from its read model and tests can model the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger import allocation
from ledger.domain import (
    MAX_AMOUNT,
    ZERO32,
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
    MemberStatus,
    Policy,
    Product,
    Repayment,
    Role,
    Tranche,
)

BPS = 10_000
MAX_INSTITUTION_SLOTS = 5


@dataclass(frozen=True, slots=True)
class Violation:
    """A refusal: `code` is the contract's custom error name, `values` its arguments by name."""

    code: str
    values: dict[str, Any]

    @property
    def rule(self) -> str | None:
        from ledger.chain.errors import RULE_CODES

        return RULE_CODES.get(self.code)

    def __str__(self) -> str:
        shown = ", ".join(
            f"{k}={'0x' + v.hex() if isinstance(v, bytes) else v}" for k, v in self.values.items()
        )
        return f"{self.code}({shown})"


class RuleError(Exception):
    """Raised by `require_*`: carries the violation."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


@dataclass(slots=True)
class Member:
    role: Role
    status: MemberStatus = MemberStatus.ACTIVE
    frozen: bool = False
    index: int = 0
    tier1_capital: int = 0
    total_loan_balance: int = 0
    attested_until: int = 0


@dataclass(slots=True)
class Borrower:
    exposure: dict[Product, int] = field(
        default_factory=lambda: {Product.CONSUMER: 0, Product.BUSINESS: 0}
    )
    open_records: dict[int, int] = field(default_factory=dict)  # member index -> open records


@dataclass(slots=True)
class Line:
    line: CreditLine
    platform_index: int
    status: LineStatus = LineStatus.ACTIVE
    drawn: int = 0


@dataclass(slots=True)
class Loan:
    loan: CoLoan
    outstanding: int
    status: LoanStatus = LoanStatus.ACTIVE


@dataclass(slots=True)
class Book:
    """The state the rules judge against."""

    policy: Policy
    members: dict[str, Member] = field(default_factory=dict)
    borrowers: dict[bytes, Borrower] = field(default_factory=dict)
    lender_total: dict[str, int] = field(default_factory=dict)
    lender_partner: dict[tuple[str, str], int] = field(default_factory=dict)
    lines: dict[bytes, Line] = field(default_factory=dict)
    loans: dict[bytes, Loan] = field(default_factory=dict)
    repayment_ids: set[bytes] = field(default_factory=set)
    paused: bool = False

    def borrower(self, key: bytes) -> Borrower:
        return self.borrowers.setdefault(key, Borrower())

    def admit(self, address: str, role: Role) -> Member:
        m = Member(role=role, index=len(self.members) + 1)
        self.members[address] = m
        return m


def _v(code: str, **values: Any) -> Violation:
    return Violation(code, values)


# ------------------------------------------------------------------ checks


def _check_tranches(tranches: tuple[Tranche, ...], total: int, platform: str) -> Violation | int:
    if not tranches:
        return _v("EmptyTranches")
    prev = 0
    s = 0
    platform_amount = 0
    for i, t in enumerate(tranches):
        addr = int(t.lender, 16)
        if addr <= prev:
            return _v("TranchesNotSorted", index=i)
        prev = addr
        if t.amount == 0:
            return _v("ZeroAmount")
        s += t.amount
        if t.lender == platform:
            platform_amount = t.amount
    if s != total:
        return _v("TrancheSumMismatch", sum=s, total=total)
    if platform_amount == 0:
        return _v("PlatformTrancheMissing", platform=platform)
    return platform_amount


def _check_amount(amount: int) -> Violation | None:
    if amount == 0:
        return _v("ZeroAmount")
    if amount > MAX_AMOUNT:
        return _v("AmountTooLarge", amount=amount, max=MAX_AMOUNT)
    return None


def _check_parties(
    book: Book, tranches: tuple[Tranche, ...], platform: str, now: int
) -> Violation | int:
    platform_index = 0
    for t in tranches:
        m = book.members.get(t.lender)
        if m is None or m.status != MemberStatus.ACTIVE:
            return _v("NotActiveMember", account=t.lender)
        if m.frozen:
            return _v("MemberIsFrozen", account=t.lender)
        if t.lender == platform:
            if m.role != Role.PLATFORM:
                return _v("WrongRole", account=t.lender, role=int(m.role))
            platform_index = m.index
        else:
            if m.role != Role.LENDER:
                return _v("WrongRole", account=t.lender, role=int(m.role))
            if m.attested_until < now:
                return _v(
                    "StaleAttestation", lender=t.lender, attestedUntil=m.attested_until, nowTs=now
                )
    return platform_index


def _check_platform_share(
    record_id: bytes, platform_amount: int, total: int, policy: Policy
) -> Violation | None:
    if platform_amount * BPS < total * policy.min_platform_share_bps:
        return _v(
            "PlatformShareTooLow",
            id=record_id,
            platformAmount=platform_amount,
            total=total,
            minBps=policy.min_platform_share_bps,
        )
    return None


def _check_exposure(book: Book, key: bytes, product: Product, amount: int) -> Violation | None:
    exposure = book.borrowers.get(key, Borrower()).exposure[product]
    cap = book.policy.cap(product)
    if exposure + amount > cap:
        return _v(
            "BorrowerCapExceeded", borrowerKey=key, exposure=exposure, requested=amount, cap=cap
        )
    return None


def _check_institutions(book: Book, key: bytes, tranches: tuple[Tranche, ...]) -> Violation | None:
    open_records = book.borrowers.get(key, Borrower()).open_records
    indices = {book.members[t.lender].index for t in tranches}
    count = len(open_records) + len(indices - set(open_records))
    if count > book.policy.max_institutions:
        return _v(
            "TooManyInstitutions",
            borrowerKey=key,
            institutions=count,
            max=book.policy.max_institutions,
        )
    return None


def _check_usage(book: Book, tranches: tuple[Tranche, ...], platform: str) -> Violation | None:
    p = book.policy
    for t in tranches:
        if t.lender == platform:
            continue
        m = book.members[t.lender]
        with_partner = book.lender_partner.get((t.lender, platform), 0)
        partner_limit = m.tier1_capital * p.max_partner_capital_bps // BPS
        if with_partner + t.amount > partner_limit:
            return _v(
                "PartnerConcentrationExceeded",
                lender=t.lender,
                partner=platform,
                outstanding=with_partner,
                requested=t.amount,
                limit=partner_limit,
            )
        total = book.lender_total.get(t.lender, 0)
        total_limit = m.total_loan_balance * p.max_joint_loan_bps // BPS
        if total + t.amount > total_limit:
            return _v(
                "JointLoanShareExceeded",
                lender=t.lender,
                outstanding=total,
                requested=t.amount,
                limit=total_limit,
            )
    return None


def check_loan(
    book: Book, loan: CoLoan, now: int, submitter: str | None = None
) -> Violation | None:
    """The first rule `loan` would break if recorded at time `now`, or None."""
    submitter = submitter or loan.platform
    if submitter != loan.platform:
        return _v("SubmitterNotPlatform", submitter=submitter, platform=loan.platform)
    if now > loan.deadline:
        return _v("SignatureExpired", deadline=loan.deadline, nowTs=now)
    if loan.loan_id == ZERO32 or loan.loan_id in book.loans:
        return _v("IdAlreadyUsed", id=loan.loan_id)
    if (bad := _check_amount(loan.principal)) is not None:
        return bad
    platform_amount = _check_tranches(loan.tranches, loan.principal, loan.platform)
    if isinstance(platform_amount, Violation):
        return platform_amount
    if book.paused:
        return _v("LedgerPaused")
    platform_index = _check_parties(book, loan.tranches, loan.platform, now)
    if isinstance(platform_index, Violation):
        return platform_index
    p = book.policy
    if (
        loan.product == Product.CONSUMER
        and loan.repayment == Repayment.BULLET
        and loan.term_days > p.max_consumer_bullet_days
    ):
        return _v(
            "BulletTermTooLong",
            loanId=loan.loan_id,
            termDays=loan.term_days,
            maxDays=p.max_consumer_bullet_days,
        )
    if (bad := _check_platform_share(loan.loan_id, platform_amount, loan.principal, p)) is not None:
        return bad
    if loan.line_id == ZERO32:
        if bad := _check_exposure(book, loan.borrower_key, loan.product, loan.principal):
            return bad
    else:
        line = book.lines.get(loan.line_id)
        if line is None or line.status != LineStatus.ACTIVE or now > line.line.expires_at:
            status = LineStatus.NONE if line is None else line.status
            return _v("LineNotActive", lineId=loan.line_id, status=int(status))
        if (
            line.line.borrower_key != loan.borrower_key
            or line.line.product != loan.product
            or line.platform_index != platform_index
        ):
            return _v("LineMismatch", lineId=loan.line_id)
        if line.drawn + loan.principal > line.line.limit:
            return _v(
                "LineLimitExceeded",
                lineId=loan.line_id,
                drawn=line.drawn,
                requested=loan.principal,
                limit=line.line.limit,
            )
    if (bad := _check_institutions(book, loan.borrower_key, loan.tranches)) is not None:
        return bad
    return _check_usage(book, loan.tranches, loan.platform)


def check_line(
    book: Book, line: CreditLine, now: int, submitter: str | None = None
) -> Violation | None:
    """The first rule `line` would break if granted at time `now`, or None."""
    submitter = submitter or line.platform
    if submitter != line.platform:
        return _v("SubmitterNotPlatform", submitter=submitter, platform=line.platform)
    if now > line.deadline:
        return _v("SignatureExpired", deadline=line.deadline, nowTs=now)
    if line.line_id == ZERO32 or line.line_id in book.lines:
        return _v("IdAlreadyUsed", id=line.line_id)
    if (bad := _check_amount(line.limit)) is not None:
        return bad
    if line.expires_at <= now:
        return _v("ExpiryInPast", expiresAt=line.expires_at, nowTs=now)
    platform_amount = _check_tranches(line.shares, line.limit, line.platform)
    if isinstance(platform_amount, Violation):
        return platform_amount
    if book.paused:
        return _v("LedgerPaused")
    platform_index = _check_parties(book, line.shares, line.platform, now)
    if isinstance(platform_index, Violation):
        return platform_index
    if bad := _check_platform_share(line.line_id, platform_amount, line.limit, book.policy):
        return bad
    if (bad := _check_exposure(book, line.borrower_key, line.product, line.limit)) is not None:
        return bad
    return _check_institutions(book, line.borrower_key, line.shares)


def require_loan(book: Book, loan: CoLoan, now: int) -> None:
    if (v := check_loan(book, loan, now)) is not None:
        raise RuleError(v)


def require_line(book: Book, line: CreditLine, now: int) -> None:
    if (v := check_line(book, line, now)) is not None:
        raise RuleError(v)


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
    book.loans[loan.loan_id] = Loan(loan, loan.principal)


def apply_line(book: Book, line: CreditLine) -> None:
    book.borrower(line.borrower_key).exposure[line.product] += line.limit
    _open(book, line.borrower_key, line.shares)
    book.lines[line.line_id] = Line(line, book.members[line.platform].index)


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
