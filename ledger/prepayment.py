"""Prepayment (提前还款): the remaining schedule after a borrower repays principal early, by one
integer rule that LoanServicing.prepay applies on chain (shared vectors in
tests/vectors/economics.json), so a platform cannot pick a new schedule of its own.

The rule, on the schedule in force S (the committed one, or the last prepayment's) and the
principal repaid against it R (the loan's principal repaid minus the `base` S starts after):

1. the leading instalments of S whose principal R covers in full (cumulatively) stay paid: k of
   them, C_k fen;
2. E = R - C_k is the prepaid principal; it must be positive (NothingPrepaid: a repayment that
   ends exactly on an instalment is an early instalment, not a prepayment) and the first
   remaining instalment must not be past due (PrepaymentWhileOverdue: arrears come first);
3. the remaining instalments carry F fen of principal; they now carry F - E (the outstanding),
   keeping their count and due dates: instalment i's principal is ceil(C_i·(F-E)/F) -
   ceil(C_(i-1)·(F-E)/F), C_i their principal cumulated through i (so the parts sum to F - E
   exactly), and its interest and charges are scaled by (F-E)/F, rounded half up.

Each remaining instalment is smaller (or equal). Interest in a schedule runs on the outstanding,
so scaling the outstanding scales it; the current period's interest is scaled too, as if the
prepayment had been made at its start (a few days' interest in the borrower's favour). A flat
charge quoted on the original principal is scaled as well.

Never milder: by every due date the new schedule has at least as much principal due as the old
(E + ceil(x·(F-E)/F) >= x for every 0 <= x <= F), so rescheduling can neither lower days past due
nor the classification floor, and repeating it with nothing new repaid is refused.

After a prepayment the schedule in force is the remaining instalments only, starting after
`base` = the loan's principal repaid then; days past due count principal repaid minus `base`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.economics import days_past_due
from ledger.schedule import Instalment, ScheduleError, digest

DAY = 86_400


class PrepaymentError(ScheduleError):
    """A prepayment the rule refuses; `code` is the contract's error name."""

    def __init__(self, code: str, rule: str, message: str, **figures: int) -> None:
        super().__init__("principal", rule, message)
        self.code = code
        self.figures = figures


@dataclass(frozen=True, slots=True)
class Prepayment:
    """One prepayment: what the Prepaid event carries."""

    principal: int  # E: principal repaid beyond the covered instalments, fen
    covered: int  # leading instalments of the schedule then in force repaid in full
    base: int  # the loan's principal repaid when the new schedule starts, fen
    remaining: tuple[Instalment, ...]

    @property
    def digest(self) -> bytes:
        return digest(self.remaining)


def _half(x: int, d: int) -> int:
    return (2 * x + d) // (2 * d)


def rescale(
    schedule: Sequence[Instalment], repaid: int, at: int | None = None
) -> tuple[int, int, tuple[Instalment, ...]]:
    """(covered, prepaid principal, remaining instalments) by the module's rule, for `repaid`
    fen of principal repaid against `schedule`; `at` (unix seconds) checks nothing is past due
    (None: not checked, as when replaying what the chain accepted)."""
    k, cum = 0, 0
    while k < len(schedule) and cum + schedule[k].principal <= repaid:
        cum += schedule[k].principal
        k += 1
    if k == len(schedule) or repaid == cum:
        raise PrepaymentError(
            "NothingPrepaid",
            "beyond_whole_instalments",
            f"the {repaid} fen of principal repaid against the schedule in force end exactly "
            f"after {k} whole instalments: nothing is prepaid",
            principalRepaid=repaid,
            covered=k,
        )
    due = schedule[k].due
    if at is not None and at > due:
        dpd = (at - due + DAY - 1) // DAY
        raise PrepaymentError(
            "PrepaymentWhileOverdue",
            "not_past_due",
            f"an instalment is {dpd} days past due: arrears come before a prepayment",
            dpd=dpd,
        )
    extra = repaid - cum
    rest = schedule[k:]
    total = sum(i.principal for i in rest)
    left = total - extra
    out, run, prev = [], 0, 0
    for i in rest:
        run += i.principal
        up_to = -(-run * left // total)
        out.append(
            Instalment(
                i.due, up_to - prev, _half(i.interest * left, total), _half(i.charges * left, total)
            )
        )
        prev = up_to
    return k, extra, tuple(out)


@dataclass(frozen=True, slots=True)
class InForce:
    """A loan's schedule in force: the committed one, or after prepayments the last one's
    remaining instalments (`rows`), starting after `base` fen of principal repaid."""

    rows: tuple[Instalment, ...]
    base: int = 0
    paid_before: tuple[Instalment, ...] = ()  # instalments covered in full before a prepayment
    prepayments: tuple[Prepayment, ...] = ()

    @property
    def digest(self) -> bytes:
        return digest(self.rows)

    def repaid(self, principal_repaid: int) -> int:
        """Principal repaid against `rows`, from the loan's principal repaid."""
        return max(0, principal_repaid - self.base)

    def days_past_due(self, principal_repaid: int, at: int) -> int:
        return days_past_due(self.rows, self.repaid(principal_repaid), at)

    def prepay(self, principal_repaid: int, at: int | None = None) -> InForce:
        """The schedule in force after a prepayment recorded when the loan's principal repaid is
        `principal_repaid` (PrepaymentError if the rule refuses it)."""
        k, extra, rows = rescale(self.rows, self.repaid(principal_repaid), at)
        p = Prepayment(extra, k, principal_repaid, rows)
        return InForce(rows, principal_repaid, self.paid_before + self.rows[:k],
                       self.prepayments + (p,))  # fmt: skip

    def replay(self, principal: int, covered: int, base: int) -> InForce:
        """The schedule after a Prepaid event's figures, recomputed (the caller compares the
        digest with the event's); ValueError if the figures do not follow from the rule."""
        after = self.prepay(base)
        last = after.prepayments[-1]
        if (last.principal, last.covered) != (principal, covered):
            raise ValueError(
                f"Prepaid says {principal} fen beyond {covered} instalments, the rule gives "
                f"{last.principal} beyond {last.covered}"
            )
        return after
