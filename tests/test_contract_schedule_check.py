"""The schedule a co-loan's terms commit to is checked on chain when the loan is recorded
(contracts/libraries/ScheduleCheck.sol), and ledger.apr_bounds gives the same verdict: the shared
vectors (`schedule_checks` in tests/vectors/economics.json) run through both. An insider platform
holding real bank signatures calls the contract directly, bypassing its node, with a schedule not
summing to the principal, an understated APR, words that do not hash to the signed digest, or a
term that shifts the start: each reverts with its error and numbers; in a non-atomic batch only
the bad loan is rejected, with its reason."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import apr, apr_bounds
from ledger import schedule as sched
from ledger.chain.artifacts import load_artifacts
from ledger.chain.errors import ContractRevert
from ledger.domain import LoanStatus, RepaymentType
from ledger.rules import Violation
from tests.contract_lifecycle_support import events
from tests.contract_rules_support import originate, refused
from tests.economics_vectors import PATH

VECTORS = json.loads(PATH.read_text())
CHECKS = VECTORS["schedule_checks"]


def _verdict(case: dict) -> Violation | None:
    return apr_bounds.check(
        bytes.fromhex(case["digest"][2:]), [int(w, 16) for w in case["words"]],
        case["principal"], case["apr_bps"], case["term_days"],
    )  # fmt: skip


def _expected(case: dict) -> dict | None:
    r = case["refused"]
    if r is None:
        return None
    return {k: bytes.fromhex(v[2:]) if isinstance(v, str) else v for k, v in r["values"].items()}


@pytest.mark.parametrize("case", CHECKS, ids=lambda c: c["name"][:40])
def test_python_gives_every_vector_its_verdict(case: dict) -> None:
    got = _verdict(case)
    want = case["refused"]
    assert (got and got.code) == (want and want["code"])
    assert (got and got.values) == _expected(case)


def test_the_vectors_cover_what_the_issue_names() -> None:
    names = {c["name"]: c["refused"] and c["refused"]["code"] for c in CHECKS}
    assert names["12m equal instalments at 12%, the exact APR"] is None
    assert names["12m bullet at 18%, the exact APR"] is None
    assert names["understated by 2 bps: refused"] == "AprMismatch"
    assert names["understated by 1 bp: within the audit's tolerance"] is None
    assert names["a schedule not summing to the principal (one fen short)"] == (
        "ScheduleNotPrincipal"
    )
    assert any(c["start"] % 86_400 == 86_399 and c["refused"] is None for c in CHECKS)


@pytest.mark.parametrize("case", VECTORS["schedules"], ids=lambda c: c["name"][:30])
def test_the_exact_apr_and_one_bp_either_side_are_never_refused(case: dict) -> None:
    """The bounds are rigorous: the exact IRR (ledger.apr) and +-1 bp always pass; +-2 bps are
    refused unless within the bounds' fen rounding."""
    rows = sched.from_json(case["instalments"])
    words = sched.words(rows)
    term = (rows[-1].due - case["start"]) // 86_400
    exact = apr.all_in_apr_bps(rows, case["principal"], case["start"])
    for d in (-1, 0, 1):
        if exact + d >= 0:
            assert apr_bounds.check(sched.digest(rows), words, case["principal"], exact + d,
                                    term) is None  # fmt: skip
    if case["principal"] < 10_000:
        return  # a few fen: +-2 bps move the payments' value by less than the bounds' rounding
    assert apr_bounds.check(sched.digest(rows), words, case["principal"], exact + 2, term)
    if exact >= 2:
        assert apr_bounds.check(sched.digest(rows), words, case["principal"], exact - 2, term)


def test_months_follow_the_calendar_with_the_day_clamped() -> None:
    """apr_bounds counts periods with schedule.months_between: the contract's Hinnant-based count
    must agree, which the day-31 and shifted-term vectors check on chain."""
    jan31 = 1_769_832_000  # 2026-01-31T04:00:00Z
    feb28 = sched.add_months(jan31, 1)
    assert sched.months_between(jan31, feb28) == 1
    assert sched.months_between(jan31 - 86_400, sched.add_months(jan31, 2)) == 3
    assert sched.months_between(jan31 + 86_400, sched.add_months(jan31, 2)) == 2


@settings(max_examples=80, deadline=None)
@given(
    flows=st.lists(st.tuples(st.integers(1, 40), st.integers(0, 3 * 2**72)), min_size=1,
                   max_size=40),
    b=st.integers(0, 10_000),
)  # fmt: skip
def test_the_nested_bounds_hold_the_exact_present_value_between_them(
    flows: list[tuple[int, int]], b: int
) -> None:
    """Horner's form rounded one way at every step, gaps of up to 40 months between flows (v^g
    by squaring), amounts up to a word's three 72-bit parts: PV_floor <= exact <= PV_ceil."""
    months, at = [], 0
    for gap, cf in flows:
        at += gap
        months.append((at, cf))
    v = Fraction(240_000, 240_000 + 2 * b + 1)
    exact = sum(cf * v**k for k, cf in months)
    assert apr_bounds.present_value(months, b, False) <= exact
    assert apr_bounds.present_value(months, b, True) >= exact
    assert apr_bounds.present_value(months, b, True) - exact <= 2 * len(months)


# ------------------------------------------------------------------ on chain


@pytest.mark.parametrize("case", CHECKS, ids=lambda c: c["name"][:40])
def test_the_contract_gives_every_vector_its_verdict(cx, case: dict) -> None:
    loan = cx.loan(
        case["principal"], apr_bps=case["apr_bps"], term_days=case["term_days"],
        schedule_digest=bytes.fromhex(case["digest"][2:]),
        words=[int(w, 16) for w in case["words"]],
        repayment=RepaymentType.BULLET if case["repayment"] else RepaymentType.INSTALMENT,
    )  # fmt: skip
    want = case["refused"]
    if want is None:
        originate(cx, loan)
        return
    with refused(want["code"], loanId=loan.loan_id, **_expected(case)):
        cx.plat.originate(loan, cx.sign(loan))
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.NONE


def _scheduled(cx, rate: int = 1_800, **kw):  # noqa: ANN001, ANN003, ANN202
    start = cx.now()
    rows = sched.build("equal_instalment", 1_000_000, 12, rate, start)
    return cx.loan(1_000_000, schedule=rows, start=start, **kw), rows, start


def test_an_insider_cannot_record_a_schedule_not_summing_to_the_principal(cx) -> None:
    _, rows, start = _scheduled(cx)
    short = (*rows[:-1], sched.Instalment(rows[-1].due, rows[-1].principal - 100, 0))
    loan = cx.loan(1_000_000, schedule=short, start=start)
    with refused("ScheduleNotPrincipal", loanId=loan.loan_id, sum=999_900, principal=1_000_000):
        cx.plat.originate(loan, cx.sign(loan))


def test_an_insider_cannot_record_an_understated_apr(cx) -> None:
    honest, rows, start = _scheduled(cx)
    assert honest.apr_bps == 1_800
    loan = cx.loan(1_000_000, schedule=rows, start=start, apr_bps=1_200)
    with pytest.raises(ContractRevert) as info:
        cx.plat.originate(loan, cx.sign(loan))
    exc = info.value
    assert exc.code == "AprMismatch" and exc.rule == "R9", exc
    assert (exc.values["declaredBps"], exc.values["testedBps"]) == (1_200, 1_201)
    assert exc.values["presentValue"] >= exc.values["received"] == 1_000_000


def test_an_insider_cannot_send_words_that_are_not_the_signed_schedule(cx) -> None:
    honest, rows, start = _scheduled(cx)
    other = sched.build("equal_instalment", 1_000_000, 12, 600, start)
    loan = cx.loan(1_000_000, schedule=rows, start=start, words=sched.words(other))
    with refused("ScheduleDigestMismatch", loanId=loan.loan_id, signed=sched.digest(rows),
                 sent=sched.digest(other)):  # fmt: skip
        cx.plat.originate(loan, cx.sign(loan))
    # nor leave them out, nor send words with a loan that commits to none
    bare = cx.loan(1_000_000, schedule=rows, start=start, words=())
    with refused("ScheduleDigestMismatch", loanId=bare.loan_id, signed=sched.digest(rows),
                 sent=sched.digest(())):  # fmt: skip
        cx.plat.originate(bare, cx.sign(bare))
    none = cx.loan(1_000_000, words=sched.words(rows))
    with refused("ScheduleDigestMismatch", loanId=none.loan_id, signed=bytes(32),
                 sent=sched.digest(rows)):  # fmt: skip
        cx.plat.originate(none, cx.sign(none))


def test_an_insider_cannot_shift_the_start_with_the_term(cx) -> None:
    """The start is last due - termDays days: a short term puts it after the first due; a long
    one moves it back, so the same payments are worth a lower APR than declared."""
    honest, rows, start = _scheduled(cx)
    short = cx.loan(1_000_000, schedule=rows, start=start, term_days=180)
    with refused("InvalidSchedule", loanId=short.loan_id, index=0, due=rows[0].due,
                 notAfter=rows[-1].due - 180 * 86_400):  # fmt: skip
        cx.plat.originate(short, cx.sign(short))
    long = cx.loan(1_000_000, schedule=rows, start=start, term_days=honest.term_days + 62)
    with pytest.raises(ContractRevert) as info:
        cx.plat.originate(long, cx.sign(long))
    assert info.value.code == "AprMismatch" and info.value.values["testedBps"] == 1_798
    originate(cx, honest)


def test_a_non_atomic_batch_rejects_just_the_bad_loan_with_its_reason(cx) -> None:
    good, _rows, _start = _scheduled(cx)
    _, rows, start = _scheduled(cx)
    bad = cx.loan(1_000_000, schedule=rows, start=start, apr_bps=1_700)
    plain = cx.loan(500_000)
    loans = [good, bad, plain]
    with refused("AprMismatch", loanId=bad.loan_id, declaredBps=1_700, testedBps=1_701,
                 presentValue=apr_bounds.present_value(_flows(rows, start), 1_701, False),
                 received=1_000_000):  # fmt: skip
        cx.plat.originate_batch(loans, [cx.sign(ln) for ln in loans], atomic=True)
    receipt = cx.plat.originate_batch(loans, [cx.sign(ln) for ln in loans], atomic=False)
    assert [e["loanId"] for e in events(cx.plat, "LoanOriginated", receipt)] == [
        good.loan_id,
        plain.loan_id,
    ]
    (rejected,) = events(cx.plat, "LoanRejected", receipt)
    reason = cx.plat.errors.decode(rejected["reason"])
    assert rejected["loanId"] == bad.loan_id and reason.code == "AprMismatch"
    assert reason.values["declaredBps"] == 1_700
    assert cx.plat.loan_state(bad.loan_id)[2] == LoanStatus.NONE


def _flows(rows, start):  # noqa: ANN001, ANN202
    return apr.cash_flows(rows, start)


def _harness(cx):  # noqa: ANN001, ANN202
    """ScheduleCheck's functions on chain through a test-only contract (TestScheduleCheck)."""
    art = load_artifacts()["TestScheduleCheck"]
    client = cx.plat
    factory = client.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx = {"from": cx.platform.address, "data": factory.constructor().data_in_transaction,
          "nonce": client.nonces.take(), "chainId": cx.deployment.chain_id, "gas": 3_000_000,
          **client.fees()}  # fmt: skip
    receipt = client.wait(client.send_raw(client.sign(tx)))
    address = to_checksum_address(receipt.raw["contractAddress"])
    return client.w3.eth.contract(address=address, abi=art.abi)


def test_the_contract_counts_months_and_bounds_present_values_as_python_does(cx) -> None:
    """Figure by figure: the calendar months of every vector schedule's instalments (day-31
    starts, 23:59:59 starts, shifted terms) and PV_floor / PV_ceil around its APR."""
    h = _harness(cx)
    cases = [(c["start"], [int(w, 16) for w in c["words"]], c["exact_apr_bps"])
             for c in CHECKS if c["refused"] is None]  # fmt: skip
    cases += [(c["start"], [int(w, 16) for w in c["words"]], c["apr_bps"])
              for c in VECTORS["schedules"]]  # fmt: skip
    checks = 0
    for start, words, rate in cases:
        for shift in (-86_400, -1, 0, 1, 86_400):
            s = start + shift
            rows = sched.from_json([{"due": w >> 216, "principal": (w >> 144) % 2**72,
                                     "interest": (w >> 72) % 2**72, "charges": w % 2**72}
                                    for w in words])  # fmt: skip
            if rows[0].due <= s:
                continue
            months, flows, count, _ = h.functions.cashFlows(s, words).call()
            want = apr.cash_flows(rows, s)
            assert list(zip(months[:count], flows[:count], strict=True)) == want
            for b in (max(rate - 2, 0), rate + 1):
                for up in (False, True):
                    got = h.functions.presentValue(months[:count], flows[:count], b, up).call()
                    assert got == apr_bounds.present_value(want, b, up), (start, shift, b, up)
                    checks += 1
    assert checks > 100


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["bullet", "equal_instalment", "equal_principal"]),
    principal=st.integers(100_000, 20_000_000),
    months=st.integers(1, 60),
    rate=st.integers(0, 3_600),
    start=st.integers(1_700_000_000, 1_900_000_000),
)
def test_the_bounds_never_refuse_the_exact_apr_nor_one_bp_off(  # noqa: PLR0913
    kind: str, principal: int, months: int, rate: int, start: int
) -> None:
    rows = sched.build(kind, principal, months, rate, start)
    c = apr_bounds.committed(rows, principal, start)
    assert apr_bounds.start_of(rows[-1].due, c.term_days) == start
    for d in (-1, 0, 1):
        if c.apr_bps + d >= 0:
            got = apr_bounds.check(c.digest, c.words, principal, c.apr_bps + d, c.term_days)
            assert got is None, (d, got)
    # 5 bps off is far outside the bounds' rounding at these principals
    assert apr_bounds.check(c.digest, c.words, principal, c.apr_bps + 5, c.term_days)
    if c.apr_bps >= 5:
        assert apr_bounds.check(c.digest, c.words, principal, c.apr_bps - 5, c.term_days)


def test_the_contract_counts_months_of_irregular_dues_as_python_does(cx) -> None:
    """Dues seconds apart, on either side of an anniversary, in the same month and years apart,
    from starts on the 28th to the 31st at any time of day: the contract's calendar months (and
    the flows it adds up by month) are ledger.schedule.months_between's."""
    import random  # noqa: PLC0415

    h = _harness(cx)
    rnd = random.Random(16)
    gaps = (1, 86_399, 86_400, 27 * 86_400, 28 * 86_400, 29 * 86_400, 30 * 86_400,
            31 * 86_400, 31 * 86_400 + 1, 32 * 86_400, 62 * 86_400, 400 * 86_400)  # fmt: skip
    checked = 0
    for _ in range(40):
        day = rnd.choice((28, 29, 30, 31))
        month_end = sched.add_months(1_769_817_600, rnd.randrange(60))  # 2026-01-31T00:00Z on
        start = month_end - (31 - day) * 86_400 + rnd.choice((0, 1, 43_200, 86_399))
        dues, due = [], start
        for _ in range(rnd.randint(1, 30)):
            due += rnd.choice(gaps) + rnd.choice((0, 0, -1, 1))
            dues.append(max(due, (dues[-1] if dues else start) + 1))
        words = [d << 216 | 1 << 144 for d in dues]
        months, flows, count, _ = h.functions.cashFlows(start, words).call()
        want = apr.cash_flows(sched.from_json([{"due": d, "principal": 1, "interest": 0}
                                               for d in dues]), start)  # fmt: skip
        assert list(zip(months[:count], flows[:count], strict=True)) == want, (start, dues)
        checked += len(dues)
    assert checked > 300
