"""ledger.schedule, ledger.apr and ledger.economics: the shared vectors (recomputed, and the
figures known independently of this code), and the properties every schedule and split keeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import apr, economics, prepayment, schedule
from tests.economics_vectors import PATH, START, build, schedule_of

VECTORS = json.loads(PATH.read_text())


def test_vectors_are_what_the_code_computes() -> None:
    assert build() == VECTORS


def test_textbook_equal_instalment() -> None:
    """10,000 CNY over 12 months at 1% a month: the level payment is 888.49 CNY (the annuity
    formula, any loan calculator), its IRR is exactly 1%/month, so the APR is 12.00%."""
    case = VECTORS["schedules"][0]
    rows = case["instalments"]
    assert {r["principal"] + r["interest"] for r in rows[:-1]} == {88_849}
    assert rows[0]["interest"] == 10_000
    assert sum(r["principal"] for r in rows) == 1_000_000
    assert case["apr_bps"] == 1200
    # due dates: the 31st clamps to month end, same time of day
    dues = [datetime.fromtimestamp(r["due"], UTC) for r in rows]
    assert [d.day for d in dues[:3]] == [28, 31, 30] and {d.hour for d in dues} == {4}


def test_simple_rate_under_cap_but_irr_over() -> None:
    cap = 2400
    over = [c for c in VECTORS["schedules"] if c["simple_bps"] < cap < c["apr_bps"]]
    assert len(over) == 2
    flat = VECTORS["schedules"][2]
    # 12% on the outstanding plus 0.8%/month flat on the original: 9.6% simple, ~16.7% IRR
    assert flat["simple_bps"] == 1621 and flat["apr_bps"] == 2870


def test_bullet_irr_is_below_its_simple_rate() -> None:
    c = VECTORS["schedules"][4]
    assert c["instalments"] == [
        {
            "due": c["instalments"][0]["due"],
            "principal": 1_000_000,
            "interest": 180_000,
            "charges": 0,
        }
    ]
    # 1.18 ** (1/12) - 1 = 1.3888...% a month, 16.67% nominal
    assert c["apr_bps"] == 1667


@pytest.mark.parametrize("case", VECTORS["schedules"], ids=lambda c: c["name"][:40])
def test_apr_is_exact(case: dict) -> None:
    """The APR is the IRR to the nearest bp, below b + 1/2 and not below b - 1/2 (exact)."""
    s = schedule.from_json(case["instalments"])
    flows = apr.cash_flows(s, START)
    b = case["apr_bps"]
    assert apr.below_half_above(case["principal"], flows, b)
    if b:
        assert not apr.below_half_above(case["principal"], flows, b - 1)


def test_digest_is_over_the_packed_words() -> None:
    from eth_hash.auto import keccak

    for case in VECTORS["schedules"]:
        words = b"".join(int(w, 16).to_bytes(32, "big") for w in case["words"])
        assert "0x" + keccak(words).hex() == case["digest"]
    first = int(VECTORS["schedules"][0]["words"][0], 16)
    assert first >> 216 == VECTORS["schedules"][0]["instalments"][0]["due"]


def test_split_vectors_sum_exactly() -> None:
    for c in VECTORS["interest_splits"]:
        assert sum(c["tranche"]) == c["interest"]
        assert [k + f for k, f in zip(c["kept"], c["fee"], strict=True)] == c["tranche"]
    for c in VECTORS["recoveries"]:
        assert sum(c["split"]) == c["after"] - c["before"]
    first, second = VECTORS["recoveries"]
    assert [a + b for a, b in zip(first["split"], second["split"], strict=True)] == [
        6000,
        8000,
        6000,
    ]


def test_dpd_vectors_and_floor_boundaries() -> None:
    got = [(c["dpd"], c["category"]) for c in VECTORS["dpd"]]
    assert got[:4] == [
        (0, "normal"),
        (1, "special_mention"),
        (1, "special_mention"),
        (2, "special_mention"),
    ]
    assert got[7:10] == [(271, "doubtful"), (360, "doubtful"), (361, "loss")]
    floor = economics.Floor()
    assert [floor.category(d) for d in (0, 1, 90, 91, 270, 271, 360, 361)] == [
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
    ]
    assert floor.allows(91, economics.Category.LOSS) and not floor.allows(
        91, economics.Category.SPECIAL_MENTION
    )


@pytest.mark.parametrize(
    "bad",
    [
        ({"principal": 0}, "principal"),
        ({"months": 0}, "months"),
        ({"months": 361}, "months"),
        ({"rate_bps": -1}, "rate_bps"),
    ],
)
def test_bad_schedule_inputs_name_the_field(bad: tuple[dict, str]) -> None:
    args = {
        "kind": "equal_instalment",
        "principal": 1000,
        "months": 12,
        "rate_bps": 100,
        "start": START,
    }
    args.update(bad[0])
    with pytest.raises(schedule.ScheduleError) as e:
        schedule.build(**args)
    assert e.value.field == bad[1]


def test_check_refuses_a_schedule_not_summing_to_the_principal() -> None:
    s = schedule_of(VECTORS["schedules"][0])
    schedule.check(s, 1_000_000)
    with pytest.raises(schedule.ScheduleError) as e:
        schedule.check(s, 1_000_001)
    assert (e.value.field, e.value.rule) == ("schedule.principal", "sums_to_principal")
    with pytest.raises(schedule.ScheduleError) as e:
        schedule.check(s[1:] + s[:1], sum(i.principal for i in s))
    assert e.value.rule == "increasing"


kinds = st.sampled_from(list(schedule.Kind))


@settings(max_examples=150, deadline=None)
@given(
    kinds,
    st.integers(1, 10**10),
    st.integers(1, 48),
    st.integers(0, 3600),
    st.integers(0, 500),
    st.booleans(),
)
def test_schedule_properties(kind, principal, months, rate, charge, flat) -> None:  # noqa: ANN001
    s = schedule.build(kind, principal, months, rate, START, charge, flat)
    schedule.check(s, principal)
    assert len(s) == (1 if kind is schedule.Kind.BULLET else months)
    assert all(i.principal >= 0 and i.interest >= 0 for i in s)
    if kind is schedule.Kind.EQUAL_INSTALMENT and rate and principal >= 10**4:
        # level payments: every instalment but the last within a fen of the first
        assert {i.principal + i.interest for i in s[:-1]} <= {s[0].principal + s[0].interest}
    b = apr.all_in_apr_bps(s, principal, START)
    flows = apr.cash_flows(s, START)
    assert apr.below_half_above(principal, flows, b)
    assert b == 0 or not apr.below_half_above(principal, flows, b - 1)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 10**7), min_size=1, max_size=5), st.data())
def test_interest_split_sums_exactly(amounts, data) -> None:  # noqa: ANN001
    fees = data.draw(st.lists(st.integers(0, 10_000), min_size=len(amounts), max_size=len(amounts)))
    interest = data.draw(st.integers(0, 10**9))
    r = economics.split_interest(amounts, sum(amounts), fees, interest)
    assert sum(r.tranche) == interest
    assert sum(r.kept) + r.platform_fee == interest
    for t, k, f, bps in zip(r.tranche, r.kept, r.fee, fees, strict=True):
        assert f >= 0 and k >= 0 and k + f == t and f * 10_000 <= t * bps


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 1_000_000), st.integers(0, 500 * 86_400))
def test_dpd_falls_as_payments_rise(paid, after) -> None:  # noqa: ANN001
    s = schedule_of(VECTORS["schedules"][0])
    paid = min(paid, 1_000_000)
    at = s[0].due + after
    assert economics.days_past_due(s, paid, at) >= economics.days_past_due(s, paid + 1000, at)
    assert economics.days_past_due(s, paid, at) <= economics.days_past_due(s, paid, at + 86_400)


def test_prepayment_vectors_keep_the_count_and_shrink_instalments() -> None:
    cases = VECTORS["prepayments"]
    assert {c.get("error") for c in cases} == {None, "NothingPrepaid", "PrepaymentWhileOverdue"}
    for c in cases:
        if "error" in c:
            continue
        before = schedule.from_json(
            cases[c["after"]]["remaining"] if "after" in c else VECTORS["schedules"][c["schedule"]]
            ["instalments"]
        )  # fmt: skip
        rest, after = before[c["covered"] :], schedule.from_json(c["remaining"])
        assert len(after) == len(rest) and [i.due for i in after] == [i.due for i in rest]
        owed = sum(i.principal for i in before) - c["repaid"]
        assert sum(i.principal for i in after) == owed, c
        assert all(a.total <= b.total for a, b in zip(after, rest, strict=True))
        assert c["principal"] == c["repaid"] - sum(i.principal for i in before[: c["covered"]])


def test_a_textbook_prepayment() -> None:
    """12m 等额本息 at 1%/month, instalment 1 paid and 50,000 fen prepaid: the 11 remaining
    instalments carry 871,151 instead of 921,151 fen of principal, each level payment falls by
    that ratio (within a fen), due dates unchanged."""
    c = VECTORS["prepayments"][0]
    assert (c["covered"], c["principal"]) == (1, 50_000)
    s = schedule_of(VECTORS["schedules"][0])
    after = schedule.from_json(c["remaining"])
    assert sum(i.principal for i in s[1:]) == 921_151
    assert sum(i.principal for i in after) == 871_151
    assert [i.due for i in after] == [i.due for i in s[1:]]
    for a, b in zip(after, s[1:], strict=True):
        assert abs(a.total * 921_151 - b.total * 871_151) <= 2 * 921_151


@settings(max_examples=200, deadline=None)
@given(
    kinds,
    st.integers(1, 10**9),
    st.integers(1, 36),
    st.integers(0, 3600),
    st.integers(0, 500),
    st.data(),
)
def test_a_prepayment_is_never_milder(kind, principal, months, rate, charge, data) -> None:  # noqa: ANN001
    """By every due date, at least as much principal is due after a prepayment as before it: a
    platform gains no days past due by rescheduling; the parts sum to what is owed."""
    s = schedule.build(kind, principal, months, rate, START, charge)
    repaid = data.draw(st.integers(0, principal))
    cur = prepayment.InForce(s)
    try:
        after = cur.prepay(repaid, START)
    except prepayment.PrepaymentError as exc:
        assert exc.code == "NothingPrepaid"
        return
    assert sum(i.principal for i in after.rows) == principal - repaid
    assert len(after.paid_before) + len(after.rows) == len(s)
    for n in range(len(s)):
        due = s[n].due
        old = sum(i.principal for i in s[: n + 1])
        new = repaid + sum(i.principal for i in after.rows if i.due <= due)
        assert new >= min(old, principal), (n, old, new)
        for paid in (repaid, max(repaid, old), max(repaid, old - 1)):
            assert after.days_past_due(paid, due + 1) >= cur.days_past_due(paid, due + 1)
    with pytest.raises(prepayment.PrepaymentError) as again:
        after.prepay(repaid, START)
    assert again.value.code == "NothingPrepaid"
