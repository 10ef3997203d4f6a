"""A loan's repayment schedule: bullet, equal instalments (等额本息) or equal principal (等额本金),
monthly, in integer fen, and its digest, the commitment the signed terms carry.

Rates are annual nominal basis points; the monthly rate is rate_bps / 120,000 (a twelfth), held as
an exact Fraction, never a float.

Rounding (one rule, documented once):
- every per-instalment interest and charge is rounded half up to the fen;
- equal instalments: the level payment A = P·r·(1+r)^n / ((1+r)^n − 1) is rounded half up, each
  instalment's principal is A minus that month's interest;
- equal principal: each instalment repays floor(P / n);
- the last instalment repays whatever principal is left, so it absorbs every rounding and the
  principal parts always sum to P exactly.

Charges (a guarantee fee or any other charge the borrower pays) accrue monthly at charge_bps per
annum on the outstanding principal, or on the original principal when `charge_on_original` (the
"flat" fee some products quote: it keeps the simple annual rate low while the IRR APR is much
higher, which is exactly what R9 is there to catch).

Due dates are calendar months after the start, same time of day, the day clamped to the month's
last day (a loan started on 31 January is due on 28 or 29 February); they are absolute UTC unix
times in the schedule, so a contract reads them without calendar arithmetic.

Digest: each instalment packs into one 256-bit word, due (40 bits) | principal (72) | interest (72)
| charges (72), due in the highest bits; the digest is keccak256 of the words concatenated
(Solidity: keccak256(abi.encodePacked(uint256[] words))).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from fractions import Fraction

from eth_hash.auto import keccak

MONTHS_PER_YEAR = 12
BPS = 10_000
MAX_INSTALMENTS = 360
_DUE_BITS, _AMOUNT_BITS = 40, 72


class Kind(StrEnum):
    BULLET = "bullet"
    EQUAL_INSTALMENT = "equal_instalment"  # 等额本息
    EQUAL_PRINCIPAL = "equal_principal"  # 等额本金


class ScheduleError(ValueError):
    """A schedule that cannot be built or does not hold together; `field` names the input."""

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Instalment:
    due: int  # unix seconds, UTC
    principal: int  # fen
    interest: int  # fen
    charges: int = 0  # fen: guarantee fee and any other charge

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.charges

    def word(self) -> int:
        """The instalment as the one 256-bit word the digest hashes."""
        for name, v, bits in (
            ("due", self.due, _DUE_BITS),
            ("principal", self.principal, _AMOUNT_BITS),
            ("interest", self.interest, _AMOUNT_BITS),
            ("charges", self.charges, _AMOUNT_BITS),
        ):
            if not 0 <= v < 1 << bits:
                raise ScheduleError(
                    f"schedule.{name}", "out_of_range", f"{name} {v} does not fit {bits} bits"
                )
        return (
            (self.due << 3 * _AMOUNT_BITS)
            | (self.principal << 2 * _AMOUNT_BITS)
            | (self.interest << _AMOUNT_BITS)
            | self.charges
        )

    @classmethod
    def from_word(cls, word: int) -> Instalment:
        """The instalment a 256-bit word holds (the inverse of `word`)."""
        mask = (1 << _AMOUNT_BITS) - 1
        return cls(
            word >> 3 * _AMOUNT_BITS,
            (word >> 2 * _AMOUNT_BITS) & mask,
            (word >> _AMOUNT_BITS) & mask,
            word & mask,
        )

    def as_json(self) -> dict[str, int]:
        return {
            "due": self.due,
            "principal": self.principal,
            "interest": self.interest,
            "charges": self.charges,
        }


def half_up(x: Fraction) -> int:
    """x >= 0 rounded to the nearest integer, halves up."""
    return int((x * 2 + 1) // 2)


def add_months(start: int, months: int) -> int:
    """`start` (unix seconds) plus calendar months, same time of day, day clamped to month end."""
    t = datetime.fromtimestamp(start, UTC)
    m = t.month - 1 + months
    year, month = t.year + m // 12, m % 12 + 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return int(t.replace(year=year, month=month, day=day).timestamp())


def monthly(rate_bps: int) -> Fraction:
    return Fraction(rate_bps, MONTHS_PER_YEAR * BPS)


def build(
    kind: Kind | str,
    principal: int,
    months: int,
    rate_bps: int,
    start: int,
    charge_bps: int = 0,
    charge_on_original: bool = False,
) -> tuple[Instalment, ...]:
    """The schedule of a loan of `principal` fen over `months` monthly periods from `start`."""
    kind = Kind(kind)
    if principal <= 0:
        raise ScheduleError("principal", "positive", "principal must be a positive number of fen")
    if not 1 <= months <= MAX_INSTALMENTS:
        raise ScheduleError("months", "range", f"months must be 1..{MAX_INSTALMENTS}")
    if rate_bps < 0 or charge_bps < 0:
        raise ScheduleError("rate_bps", "non_negative", "rates must not be negative")
    r = monthly(rate_bps)
    dues = [add_months(start, k) for k in range(1, months + 1)]

    def charge(outstanding: int) -> int:
        return half_up((principal if charge_on_original else outstanding) * monthly(charge_bps))

    if kind is Kind.BULLET:
        return (
            Instalment(
                dues[-1],
                principal,
                half_up(principal * r * months),
                half_up(principal * monthly(charge_bps) * months),
            ),
        )
    if kind is Kind.EQUAL_INSTALMENT and r:
        growth = (1 + r) ** months
        level = half_up(principal * r * growth / (growth - 1))
    out: list[Instalment] = []
    left = principal
    for k, due in enumerate(dues):
        interest = half_up(left * r)
        if k == months - 1:
            part = left
        elif kind is Kind.EQUAL_INSTALMENT and r:
            part = min(left, max(0, level - interest))
        else:
            part = principal // months
        out.append(Instalment(due, part, interest, charge(left)))
        left -= part
    return tuple(out)


def words(schedule: Sequence[Instalment]) -> tuple[int, ...]:
    """The instalment words: what the digest hashes and the contracts are sent."""
    return tuple(i.word() for i in schedule)


def words_digest(words: Sequence[int]) -> bytes:
    """keccak256 of instalment words (abi.encodePacked of a uint256[])."""
    return keccak(b"".join(w.to_bytes(32, "big") for w in words))


def digest(schedule: Sequence[Instalment]) -> bytes:
    """keccak256 of the instalment words: the commitment the signed terms carry."""
    return words_digest(words(schedule))


def check(schedule: Sequence[Instalment], principal: int) -> None:
    """Raise ScheduleError unless `schedule` is a usable schedule for `principal`: at least one
    instalment, due dates strictly increasing, principal parts summing to the principal."""
    if not schedule:
        raise ScheduleError("schedule", "non_empty", "a schedule has at least one instalment")
    if len(schedule) > MAX_INSTALMENTS:
        raise ScheduleError("schedule", "max_instalments", f"at most {MAX_INSTALMENTS} instalments")
    for a, b in zip(schedule, schedule[1:], strict=False):
        if b.due <= a.due:
            raise ScheduleError("schedule.due", "increasing", "due dates must strictly increase")
    total = sum(i.principal for i in schedule)
    if total != principal:
        raise ScheduleError(
            "schedule.principal",
            "sums_to_principal",
            f"instalment principal sums to {total} fen, the loan's principal is {principal}",
        )
    for i in schedule:
        i.word()


def months_between(start: int, end: int) -> int:
    """Whole calendar months from `start` to `end` (end reached by add_months)."""
    k = 0
    while add_months(start, k) < end:
        k += 1
    return k


def to_json(schedule: Sequence[Instalment]) -> list[dict[str, int]]:
    return [i.as_json() for i in schedule]


def from_json(rows: Sequence[dict[str, int]]) -> tuple[Instalment, ...]:
    return tuple(
        Instalment(int(r["due"]), int(r["principal"]), int(r["interest"]), int(r.get("charges", 0)))
        for r in rows
    )
