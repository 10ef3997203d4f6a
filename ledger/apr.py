"""The all-in APR (综合融资成本) of a schedule: the IRR of the borrower's cash flows, annualised, in
basis points (R9).

Cash flows: the borrower receives the principal (less any charge taken up front) at the start and
pays each instalment's principal, interest and charges at its due date. Periods are the schedule's
calendar months; the annualised rate is the monthly IRR times 12, the nominal annualisation the
2021 PBOC APR disclosure rules use.

Exact method, no floats: at an annual rate of c half basis points the monthly rate is c / 240,000
and, with q = 240,000, d = q + c and N the last period, the net present value is below zero exactly
when  sum_k CF_k * q^k * d^(N-k)  <  received * d^N  (both sides multiplied by d^N, all integers).
NPV falls as the rate grows, so a binary search over integers b finds the smallest b whose NPV at
b + 1/2 basis points (c = 2b + 1) is below zero: the true IRR to the nearest basis point, halves
up. The audit flags a declared figure more than 1 bp below it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.schedule import BPS, MONTHS_PER_YEAR, Instalment, months_between

_Q = MONTHS_PER_YEAR * BPS * 2  # the monthly rate in half basis points per annum


def cash_flows(schedule: Sequence[Instalment], start: int) -> list[tuple[int, int]]:
    """(month index, amount paid) per instalment, the index counted in calendar months from
    `start`; instalments due in the same month are added together."""
    flows: dict[int, int] = {}
    for i in schedule:
        k = months_between(start, i.due)
        if k < 1:
            raise ValueError("an instalment falls due before the first month has passed")
        flows[k] = flows.get(k, 0) + i.total
    return sorted(flows.items())


def below_half_above(received: int, flows: Sequence[tuple[int, int]], bps: int) -> bool:
    """Exactly: is the NPV of the borrower's flows at an annual rate of `bps` + 1/2 basis points
    below zero, i.e. is the true IRR below bps + 1/2?"""
    n = flows[-1][0]
    d = _Q + 2 * bps + 1
    paid = sum(cf * _Q**k * d ** (n - k) for k, cf in flows)
    return paid < received * d**n


def all_in_apr_bps(
    schedule: Sequence[Instalment], principal: int, start: int, upfront: int = 0
) -> int:
    """The all-in APR of a loan of `principal` fen paid out at `start` less `upfront` fen of
    charges, repaid by `schedule`: the IRR, annualised, to the nearest basis point (halves up)."""
    received = principal - upfront
    if received <= 0:
        raise ValueError("the borrower must receive something")
    flows = cash_flows(schedule, start)
    if below_half_above(received, flows, 0):
        return 0
    lo, hi = 0, 1
    while not below_half_above(received, flows, hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # invariant: IRR >= lo + 1/2 > ... and IRR < hi + 1/2
        mid = (lo + hi) // 2
        if below_half_above(received, flows, mid):
            hi = mid
        else:
            lo = mid
    return hi


def simple_annual_rate_bps(schedule: Sequence[Instalment], principal: int, months: int) -> int:
    """Total interest and charges over the principal, per year, floored: the figure a "monthly
    rate" quote suggests, NOT the cost R9 judges (shown for comparison)."""
    cost = sum(i.interest + i.charges for i in schedule)
    return cost * BPS * MONTHS_PER_YEAR // (principal * months)
