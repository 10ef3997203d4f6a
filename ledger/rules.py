"""R0-R8 as pure functions over a state snapshot: the fast pre-check before anything is sent.

The contracts are the judge; these functions must agree with them on every case, which the shared
vectors in tests/vectors/rules.json prove by running each case on chain and here. The checks run
in the contract's order, so the first failing check gives the same code and the same numbers as
the revert (`BorrowerCapExceeded(borrowerKey, exposure, requested, cap)` and so on).
Signatures are provenance, not rules: ledger.provenance verifies them.

The state judged against is a ledger.book `Book`; its `apply_*` functions record what passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.book import (
    Book,
    BorrowerState,
    LineState,
    LoanState,
    MemberState,
    apply_line,
    apply_line_end,
    apply_loan,
    apply_repayment,
    apply_write_off,
)
from ledger.domain import (
    MAX_AMOUNT,
    ZERO32,
    CoLoan,
    CreditLine,
    LineStatus,
    MemberStatus,
    Policy,
    Product,
    RepaymentType,
    Role,
    Tranche,
    id_platform,
)

# The state types and transitions live in ledger.book; these names stay importable from here for
# the callers that judge and apply in one place.
__all__ = [
    "BPS",
    "MAX_EXPIRY",
    "MAX_INSTITUTION_SLOTS",
    "Book",
    "BorrowerState",
    "LineState",
    "LoanState",
    "MemberState",
    "RuleError",
    "Violation",
    "apply_line",
    "apply_line_end",
    "apply_loan",
    "apply_repayment",
    "apply_write_off",
    "check_line",
    "check_loan",
    "require_line",
    "require_loan",
]

BPS = 10_000
MAX_INSTITUTION_SLOTS = 5

# A line's expiry is stored in 40 bits (LineRecord.expiresAt); a signed expiry above this is
# refused (ExpiryTooLarge), never narrowed.
MAX_EXPIRY = (1 << 40) - 1


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
            valid_until = m.attestation_valid_until(book.policy)
            if valid_until < now:
                return _v("StaleAttestation", lender=t.lender, attestedUntil=valid_until, nowTs=now)
    return platform_index


def _check_bank_tranches(record_id: bytes, n: int, policy: Policy) -> Violation | None:
    """R0: a record of `n` distinct tranches, one the platform's and the others active lenders'
    (as _check_parties found), carries n - 1 bank tranches."""
    if n - 1 < policy.min_bank_tranches:
        return _v("TooFewBankTranches", id=record_id, banks=n - 1, min=policy.min_bank_tranches)
    return None


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
    exposure = book.borrowers.get(key, BorrowerState()).exposure[product]
    cap = book.policy.cap(product)
    if exposure + amount > cap:
        return _v(
            "BorrowerCapExceeded", borrowerKey=key, exposure=exposure, requested=amount, cap=cap
        )
    return None


def _check_institutions(book: Book, key: bytes, tranches: tuple[Tranche, ...]) -> Violation | None:
    open_records = book.borrowers.get(key, BorrowerState()).open_records
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


def _check_record(
    book: Book,
    record: CoLoan | CreditLine,
    now: int,
    submitter: str | None,
) -> Violation | tuple[int, int]:
    """The contract's first checks, the same for a loan and a line: who submits, until when,
    under which id, for how much, (a line: until when it runs,) the tranches or shares, the
    pause, the parties. Returns (platform amount, platform index) when all pass."""
    if isinstance(record, CoLoan):
        record_id, taken, amount = record.loan_id, record.loan_id in book.loans, record.principal
        expires_at, parties = None, record.tranches
    else:
        record_id, taken, amount = record.line_id, record.line_id in book.lines, record.limit
        expires_at, parties = record.expires_at, record.shares
    submitter = submitter or record.platform
    if submitter != record.platform:
        return _v("SubmitterNotPlatform", submitter=submitter, platform=record.platform)
    if now > record.deadline:
        return _v("SignatureExpired", deadline=record.deadline, nowTs=now)
    if id_platform(record_id) != record.platform:
        return _v("IdOutsideNamespace", id=record_id, platform=record.platform)
    if taken:
        return _v("IdAlreadyUsed", id=record_id)
    if (bad := _check_amount(amount)) is not None:
        return bad
    if expires_at is not None and expires_at <= now:
        return _v("ExpiryInPast", expiresAt=expires_at, nowTs=now)
    if expires_at is not None and expires_at > MAX_EXPIRY:
        return _v("ExpiryTooLarge", expiresAt=expires_at, max=MAX_EXPIRY)
    platform_amount = _check_tranches(parties, amount, record.platform)
    if isinstance(platform_amount, Violation):
        return platform_amount
    if book.paused:
        return _v("LedgerPaused")
    platform_index = _check_parties(book, parties, record.platform, now)
    if isinstance(platform_index, Violation):
        return platform_index
    if (bad := _check_bank_tranches(record_id, len(parties), book.policy)) is not None:
        return bad
    return platform_amount, platform_index


def check_loan(
    book: Book, loan: CoLoan, now: int, submitter: str | None = None
) -> Violation | None:
    """The first rule `loan` would break if recorded at time `now`, or None."""
    if isinstance(passed := _check_record(book, loan, now, submitter), Violation):
        return passed
    platform_amount, platform_index = passed
    p = book.policy
    if (
        loan.product == Product.CONSUMER
        and loan.repayment == RepaymentType.BULLET
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
        if line.line.borrower_key != loan.borrower_key or line.line.product != loan.product:
            return _v("LineMismatch", lineId=loan.line_id)
        # only the line's share holders fund its draws (by member index, as the contract keeps
        # them); each tranche lender is a member here, _check_parties has seen to that. After a
        # servicing transfer the successor draws, standing in for the old platform's share.
        holders = set(line.holders) or {
            book.members[t.lender].index for t in line.line.shares if t.lender in book.members
        }
        if line.platform_index != platform_index:
            servicer = book.servicer(id_platform(loan.line_id))
            if servicer != loan.platform:
                return _v("NotServicer", account=loan.platform, servicer=servicer)
            holders.add(platform_index)
        for t in loan.tranches:
            if book.members[t.lender].index not in holders:
                return _v("NotLineShareHolder", lineId=loan.line_id, lender=t.lender)
            if book.members[t.lender].index in line.frozen:
                return _v("LineFrozen", lineId=loan.line_id, lender=t.lender)
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
    if isinstance(passed := _check_record(book, line, now, submitter), Violation):
        return passed
    platform_amount = passed[0]
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
