"""The one rounding rule for splitting money across tranches.

Mirrors contracts/libraries/Allocation.sol bit for bit.

Cumulative share of a total T for tranche i is floor(T * amount_i / principal); the fen the floors
leave over (at most n - 1) go one at a time to the tranche with the highest
amount_i / (share_i + 1), ties to the lowest lender address (tranches are sorted by lender), so the
first leftover fen goes to the largest tranche. This highest-averages rule never takes back a fen
as T grows, so a repayment's allocation (the difference of two cumulative splits) is never
negative and a fully repaid loan repays every tranche exactly.
"""

from __future__ import annotations

from collections.abc import Sequence


def split(amounts: Sequence[int], principal: int, total: int) -> list[int]:
    """Each tranche's cumulative share of `total` for a loan of `principal`."""
    if principal <= 0:
        raise ValueError("principal must be positive")
    shares = [total * a // principal for a in amounts]
    left = total - sum(shares)
    while left:
        best = 0
        for i in range(1, len(amounts)):
            if amounts[i] * (shares[best] + 1) > amounts[best] * (shares[i] + 1):
                best = i
        shares[best] += 1
        left -= 1
    return shares


def between(amounts: Sequence[int], principal: int, before: int, after: int) -> list[int]:
    """Allocation of one payment that moves cumulative principal repaid from `before` to `after`."""
    a = split(amounts, principal, after)
    b = split(amounts, principal, before)
    return [x - y for x, y in zip(a, b, strict=True)]


def outstanding(amounts: Sequence[int], principal: int, loan_outstanding: int) -> list[int]:
    """Each tranche's outstanding principal, given the loan's."""
    if loan_outstanding == 0:
        return [0] * len(amounts)
    repaid = split(amounts, principal, principal - loan_outstanding)
    return [a - r for a, r in zip(amounts, repaid, strict=True)]
