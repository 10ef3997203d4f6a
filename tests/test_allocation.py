"""Properties of ledger.allocation, the Python mirror of contracts/libraries/Allocation.sol.

The rule (see Allocation.sol): a tranche's cumulative share of a total T is floor(T * a_i / P),
then the leftover fen go one at a time to the tranche with the highest a_i / (share_i + 1), ties
to the lowest index. That is the D'Hondt (Jefferson) highest-averages rule, so it is house
monotone: raising T by one fen raises exactly one tranche by one fen and lowers none.

What it does NOT promise: "every tranche within one fen of its exact quota". D'Hondt keeps the
lower quota (share_i >= floor(T * a_i / P)) but can exceed the upper quota: amounts 60/10/10/10/10
of 100 at T = 7 give [6, 1, 0, 0, 0] while the exact quota of the first is 4.2. The bound that
holds is share_i * P <= a_i * (T + n - 1) (proof in test_upper_bound).
"""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ledger.allocation import between, outstanding, split

# tranche amounts in fen: mostly small (rounding matters), sometimes large
amount = st.one_of(st.integers(1, 50), st.integers(1, 10**6), st.integers(1, 2**48 // 8))
amounts_st = st.lists(amount, min_size=1, max_size=7)


@st.composite
def loan_and_total(draw, amounts=amounts_st):
    a = draw(amounts)
    p = sum(a)
    t = draw(st.one_of(st.integers(0, min(p, 60)), st.integers(0, p), st.just(p)))
    return a, p, t


def naive_split(amounts: list[int], principal: int, total: int) -> list[int]:
    """DESIGN §4 read literally: floors, then the whole remainder to the largest tranche (ties to
    the lowest index). Only here to show why the contract does not use it."""
    shares = [total * a // principal for a in amounts]
    best = max(range(len(amounts)), key=lambda i: (amounts[i], -i))
    shares[best] += total - sum(shares)
    return shares


def dhondt(amounts: list[int], total: int) -> list[int]:
    """Brute force: hand out `total` fen one at a time to argmax a_i / (s_i + 1), ties to the
    lowest index, starting from nothing (exact rationals, no cross-multiplication)."""
    shares = [0] * len(amounts)
    for _ in range(total):
        best = max(range(len(amounts)), key=lambda i: (Fraction(amounts[i], shares[i] + 1), -i))
        shares[best] += 1
    return shares


# ------------------------------------------------------------------ basic properties


@given(loan_and_total())
def test_split_sums_to_total_and_is_non_negative(case):
    a, p, t = case
    s = split(a, p, t)
    assert len(s) == len(a)
    assert sum(s) == t
    assert all(x >= 0 for x in s)


@given(amounts_st)
def test_split_of_principal_is_the_amounts_and_of_zero_is_zero(a):
    p = sum(a)
    assert split(a, p, p) == a
    assert split(a, p, 0) == [0] * len(a)


@given(loan_and_total())
def test_lower_quota(case):
    a, p, t = case
    s = split(a, p, t)
    for ai, si in zip(a, s, strict=True):
        assert si >= t * ai // p


@given(loan_and_total())
@example(([60, 10, 10, 10, 10], 100, 7))
def test_upper_bound(case):
    # Let d be the smallest awarded quotient a_k / s_k. Every unawarded quotient a_j / (s_j + 1)
    # is <= d (highest averages), so P = a_k + sum_{j != k} a_j <= d * s_k + d * sum_{j != k}
    # (s_j + 1) = d * (T + n - 1), and a_i / s_i >= d gives s_i * P <= a_i * (T + n - 1).
    a, p, t = case
    n = len(a)
    s = split(a, p, t)
    for ai, si in zip(a, s, strict=True):
        assert si * p <= ai * (t + n - 1)
        assert si <= t * ai // p + (n - 1)  # at most n - 1 leftover fen in all


def test_within_one_fen_does_not_hold():
    # the "within 1 fen of the exact quota" bound is false for this rule: 6 vs quota 4.2
    a, p, t = [60, 10, 10, 10, 10], 100, 7
    s = split(a, p, t)
    assert s == [6, 1, 0, 0, 0]
    assert s[0] - Fraction(t * a[0], p) > 1
    # yet the lower quota and the proven upper bound hold
    assert s[0] >= t * a[0] // p and s[0] * p <= a[0] * (t + len(a) - 1)


# ------------------------------------------------------------------ monotonicity


@given(loan_and_total())
def test_one_more_fen_goes_to_exactly_one_tranche(case):
    a, p, t = case
    assume(t < p)
    lo, hi = split(a, p, t), split(a, p, t + 1)
    diff = [h - low for h, low in zip(hi, lo, strict=True)]
    assert sorted(diff) == [0] * (len(a) - 1) + [1]


@given(st.lists(st.integers(1, 30), min_size=1, max_size=5))
@settings(max_examples=200)
def test_cumulative_split_is_monotone_for_every_total(a):
    p = sum(a)
    prev = split(a, p, 0)
    for t in range(1, p + 1):
        cur = split(a, p, t)
        assert all(c >= b for c, b in zip(cur, prev, strict=True)), (t, prev, cur)
        prev = cur


def test_naive_rule_goes_backwards_ours_does_not():
    a, p = [9, 9, 2], 20
    # the literal "whole remainder to the largest tranche" takes a fen back from tranche 0
    assert naive_split(a, p, 19) == [10, 8, 1]
    assert naive_split(a, p, 20) == [9, 9, 2]
    naive_step = [x - y for x, y in zip(naive_split(a, p, 20), naive_split(a, p, 19), strict=True)]
    assert naive_step == [-1, 1, 1]  # a negative "allocation" for the last fen
    # the highest-averages rule never does
    assert split(a, p, 19) == [9, 9, 1]
    assert split(a, p, 20) == [9, 9, 2]
    assert between(a, p, 19, 20) == [0, 0, 1]
    for t in range(p):
        assert all(x >= 0 for x in between(a, p, t, t + 1))


# ------------------------------------------------------------------ brute force


@given(st.lists(st.integers(1, 25), min_size=1, max_size=6), st.data())
@settings(max_examples=300)
def test_equals_sequential_dhondt(a, data):
    p = sum(a)
    t = data.draw(st.integers(0, p))
    assert split(a, p, t) == dhondt(a, t)


@pytest.mark.parametrize(
    ("a", "t", "expected"),
    [
        ([1, 1], 1, [1, 0]),  # tie -> lowest index
        ([1, 1, 1], 2, [1, 1, 0]),
        ([2, 1], 1, [1, 0]),  # first leftover fen to the largest tranche
        ([1, 2], 1, [0, 1]),
        ([9, 9, 2], 19, [9, 9, 1]),
        ([60, 10, 10, 10, 10], 7, [6, 1, 0, 0, 0]),
        ([3, 3, 4], 5, [2, 1, 2]),  # 3/2 = 3/2 > 4/3: tie to the lowest index
    ],
)
def test_known_small_cases(a, t, expected):
    assert split(a, sum(a), t) == expected == dhondt(a, t)


# ------------------------------------------------------------------ repayment sequences


@st.composite
def repayment_plan(draw):
    a = draw(amounts_st)
    p = sum(a)
    cuts = draw(st.lists(st.integers(0, p), max_size=12))
    points = sorted({0, p, *cuts})
    return a, p, points


@given(repayment_plan())
@example(([9, 9, 2], 20, [0, 19, 20]))
def test_repayments_with_between_sum_to_amounts(plan):
    a, p, points = plan
    paid = [0] * len(a)
    for before, after in pairwise(points):
        alloc = between(a, p, before, after)
        assert all(x >= 0 for x in alloc)
        assert sum(alloc) == after - before
        paid = [x + y for x, y in zip(paid, alloc, strict=True)]
        assert paid == split(a, p, after)  # no drift: cumulative always equals the direct split
    assert paid == a


@given(loan_and_total())
def test_outstanding_follows_from_the_loan(case):
    a, p, repaid = case
    out = outstanding(a, p, p - repaid)
    assert sum(out) == p - repaid
    assert all(0 <= o <= ai for o, ai in zip(out, a, strict=True))
    assert out == [ai - s for ai, s in zip(a, split(a, p, repaid), strict=True)]
    assert outstanding(a, p, p) == a
    assert outstanding(a, p, 0) == [0] * len(a)


def test_zero_principal_is_refused():
    with pytest.raises(ValueError):
        split([1], 0, 0)
