"""Who gets what of a repayment, days past due, and the five-category floor (DESIGN §4).

Every split sums exactly, in integer fen, with the rounding rules below, identical in Solidity:

- A repayment's interest is split across tranches by principal share with ledger.allocation's
  rule, payment by payment (CoLendingLedger.repay's `Repaid.interest`; the chain keeps no
  cumulative interest).
- Each bank tranche's interest I_b is split into the platform's service fee
  floor(I_b * fee_bps / 10,000) and what the bank keeps (the rest): the fen the floor drops stay
  with the bank (ConsortiumRegistry.serviceFees). The platform's own tranche pays no fee.
- Charges (the guarantee fee) go to the guarantor whole.
- A compensatory payment (代偿) pays each covered bank floor(outstanding_b * cover_bps / 10,000)
  (LoanServicing.compensate).
- Recoveries on a written-off loan are split across tranches by principal share on their
  cumulative total, as principal is (LoanServicing.recover), so a full recovery pays every
  tranche exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from ledger import allocation
from ledger.schedule import BPS, Instalment

DAY = 86_400


class Category(IntEnum):
    """五级分类, mildest first: a bank's category may be higher than the floor, never lower."""

    NORMAL = 0
    SPECIAL_MENTION = 1
    SUBSTANDARD = 2
    DOUBTFUL = 3
    LOSS = 4


CATEGORY_NAMES = {
    Category.NORMAL: "normal",
    Category.SPECIAL_MENTION: "special_mention",
    Category.SUBSTANDARD: "substandard",
    Category.DOUBTFUL: "doubtful",
    Category.LOSS: "loss",
}


@dataclass(frozen=True, slots=True)
class Floor:
    """The governed DPD floor: the highest DPD of each category (loss is anything above)."""

    special_mention_max: int = 90
    substandard_max: int = 270
    doubtful_max: int = 360

    def category(self, dpd: int) -> Category:
        if dpd <= 0:
            return Category.NORMAL
        if dpd <= self.special_mention_max:
            return Category.SPECIAL_MENTION
        if dpd <= self.substandard_max:
            return Category.SUBSTANDARD
        if dpd <= self.doubtful_max:
            return Category.DOUBTFUL
        return Category.LOSS

    def allows(self, dpd: int, category: Category | int) -> bool:
        """Whether a bank may record `category` at `dpd`: never milder than the floor."""
        return int(category) >= int(self.category(dpd))


def days_past_due(schedule: Sequence[Instalment], principal_repaid: int, at: int) -> int:
    """Days past due at unix time `at`, given `principal_repaid` fen of principal repaid so far:
    0 if the scheduled principal of every instalment due by `at` is repaid (cumulatively), else
    the started days since the oldest instalment whose principal is not fully repaid fell due (a
    second past the due time is day 1). Principal, because that is what the chain holds (the
    ledger keeps outstanding principal, not interest paid), so LoanServicing.daysPastDue judges
    classifications by the same number; unpaid interest alone does not make a loan past due."""
    due_so_far = 0
    for i in schedule:
        due_so_far += i.principal
        if due_so_far > principal_repaid:
            return 0 if at <= i.due else (at - i.due + DAY - 1) // DAY
    return 0


def overdue_principal(schedule: Sequence[Instalment], principal_repaid: int, at: int) -> int:
    """Scheduled principal due by `at` and not yet repaid, fen."""
    return max(0, sum(i.principal for i in schedule if i.due <= at) - principal_repaid)


@dataclass(frozen=True, slots=True)
class InterestSplit:
    """One payment's interest: per tranche, then per bank what it keeps and its fee."""

    tranche: tuple[int, ...]
    kept: tuple[int, ...]
    fee: tuple[int, ...]

    @property
    def platform_fee(self) -> int:
        return sum(self.fee)


def service_fee(interest: int, fee_bps: int) -> int:
    """The platform's service fee out of a bank tranche's interest."""
    return interest * fee_bps // BPS


def split_interest(
    amounts: Sequence[int], principal: int, fee_bps: Sequence[int], interest: int
) -> InterestSplit:
    """One repayment's `interest`: each tranche's share, and of each, what its lender keeps and
    the platform's fee. `fee_bps[i]` is tranche i's partnership fee share in force (0 for the
    platform's own tranche and for a bank without partnership terms in force)."""
    tranche = tuple(allocation.split(amounts, principal, interest))
    fee = tuple(service_fee(x, f) for x, f in zip(tranche, fee_bps, strict=True))
    kept = tuple(t - f for t, f in zip(tranche, fee, strict=True))
    return InterestSplit(tranche, kept, fee)


def compensation(outstanding: Sequence[int], covered: Sequence[bool], cover_bps: int) -> list[int]:
    """A guarantor's compensatory payment (代偿) to each tranche: floor(outstanding * cover) for
    each covered bank tranche, 0 for the others (the platform's own tranche is not covered)."""
    if not 0 <= cover_bps <= BPS:
        raise ValueError("cover_bps must be 0..10000")
    return [o * cover_bps // BPS if c else 0 for o, c in zip(outstanding, covered, strict=True)]


def split_recovery(amounts: Sequence[int], principal: int, before: int, after: int) -> list[int]:
    """One recovery moving the loan's cumulative recoveries from `before` to `after`, per
    tranche by principal share."""
    return allocation.between(amounts, principal, before, after)
