"""Inputs of the shared on-chain schedule-check vectors (`schedule_checks` in
tests/vectors/economics.json): a loan's terms (principal, declared APR, term in days, digest) and
the instalment words sent with them, and the verdict ledger.apr_bounds gives, which
contracts/libraries/ScheduleCheck.sol must give too (tests/test_contract_schedule_check.py).
Each case starts from a schedule built by ledger.schedule and changes one thing an insider
platform might."""

from __future__ import annotations

import dataclasses
from typing import Any

from ledger import apr, apr_bounds, schedule

DAY = 86_400
START = 1_769_832_000  # 2026-01-31T04:00:00Z
DAY31 = 1_806_537_599  # 2027-03-31T23:59:59Z: the day clamps to 30 April, then 31 May ...

CASES: list[dict[str, Any]] = [
    {"name": "12m equal instalments at 12%, the exact APR", "kind": "equal_instalment",
     "principal": 1_000_000, "months": 12, "rate_bps": 1200},
    {"name": "12m bullet at 18%, the exact APR", "kind": "bullet", "principal": 1_000_000,
     "months": 12, "rate_bps": 1800},
    {"name": "day-31 start at 23:59:59, 5m equal principal at 20% (month-end clamping)",
     "kind": "equal_principal", "principal": 500_003, "months": 5, "rate_bps": 2000,
     "start": DAY31},
    {"name": "36m equal instalments, odd principal, with a guarantee fee", "kind":
     "equal_instalment", "principal": 12_345_679, "months": 36, "rate_bps": 1499,
     "charge_bps": 300},
    {"name": "interest-free 3m, declared 0", "kind": "equal_instalment", "principal": 900_000,
     "months": 3, "rate_bps": 0},
    {"name": "interest-free 3m, declared 2 bps: overstated", "kind": "equal_instalment",
     "principal": 900_000, "months": 3, "rate_bps": 0, "apr_delta": 2},
    {"name": "interest-free 3m of 100 fen, declared 2 bps: within the bounds' fen rounding",
     "kind": "equal_instalment", "principal": 100, "months": 3, "rate_bps": 0, "apr_delta": 2},
    {"name": "understated by 2 bps: refused", "kind": "equal_instalment",
     "principal": 1_000_000, "months": 12, "rate_bps": 1800, "apr_delta": -2},
    {"name": "understated by 1 bp: within the audit's tolerance", "kind": "equal_instalment",
     "principal": 1_000_000, "months": 12, "rate_bps": 1800, "apr_delta": -1},
    {"name": "overstated by 2 bps: refused", "kind": "equal_instalment",
     "principal": 1_000_000, "months": 12, "rate_bps": 1800, "apr_delta": 2},
    {"name": "overstated by 1 bp: accepted", "kind": "equal_instalment",
     "principal": 1_000_000, "months": 12, "rate_bps": 1800, "apr_delta": 1},
    {"name": "a schedule not summing to the principal (one fen short)", "kind":
     "equal_instalment", "principal": 1_000_000, "months": 12, "rate_bps": 1200,
     "principal_delta": 1},
    {"name": "words that do not hash to the signed digest (last instalment dropped)", "kind":
     "equal_instalment", "principal": 1_000_000, "months": 12, "rate_bps": 1200,
     "drop_last": True},
    {"name": "due dates not increasing (two swapped)", "kind": "equal_principal",
     "principal": 1_000_000, "months": 12, "rate_bps": 1200, "swap": 4},
    {"name": "361 instalments", "kind": "equal_principal", "principal": 3_610_000,
     "months": 360, "rate_bps": 1200, "extra": True},
    {"name": "termDays 180 on a 12m schedule: the start falls after the first due", "kind":
     "equal_instalment", "principal": 1_000_000, "months": 12, "rate_bps": 1200,
     "term_days": 180},
    {"name": "termDays a month longer: the start moves a month back, the APR is overstated",
     "kind": "equal_instalment", "principal": 1_000_000, "months": 12, "rate_bps": 1200,
     "term_delta": 31},
    {"name": "termDays one day shorter (start 1 Feb): the same calendar months, accepted",
     "kind": "equal_instalment", "principal": 1_000_000, "months": 12, "rate_bps": 1200,
     "term_delta": -1},
    {"name": "termDays one day longer (start 30 Jan): dues on the 31st count a month more, "
     "the APR is overstated", "kind": "equal_instalment", "principal": 1_000_000, "months": 12,
     "rate_bps": 1200, "term_delta": 1},
    {"name": "a 24m bullet declared as a 365-day term (R7 dodge): its APR is judged over 12m",
     "kind": "bullet", "principal": 1_000_000, "months": 24, "rate_bps": 900,
     "term_days": 365},
]  # fmt: skip


def _rows(c: dict[str, Any]) -> tuple[tuple[schedule.Instalment, ...], int]:
    start = c.get("start", START)
    rows = schedule.build(c["kind"], c["principal"], c["months"], c["rate_bps"], start,
                          c.get("charge_bps", 0))  # fmt: skip
    if c.get("extra"):
        last = rows[-1]
        rows = (*rows[:-1], dataclasses.replace(last, principal=last.principal - 10_000),
                schedule.Instalment(schedule.add_months(start, 361), 10_000, 0))  # fmt: skip
    if c.get("swap"):
        k = c["swap"]
        a, b = rows[k], rows[k + 1]
        rows = (*rows[:k], dataclasses.replace(a, due=b.due), dataclasses.replace(b, due=a.due),
                *rows[k + 2 :])  # fmt: skip
    return rows, start


def build() -> list[dict[str, Any]]:
    out = []
    for c in CASES:
        rows, start = _rows(c)
        principal = sum(r.principal for r in rows) + c.get("principal_delta", 0)
        exact = apr.all_in_apr_bps(rows, principal, start)
        term = c.get("term_days", (rows[-1].due - start) // DAY + c.get("term_delta", 0))
        words = [r.word() for r in rows]
        digest = schedule.digest(rows)
        sent = words[:-1] if c.get("drop_last") else words
        declared = exact + c.get("apr_delta", 0)
        if c.get("term_days") == 365:  # the insider declares the 24-month IRR
            declared = exact
        verdict = apr_bounds.check(digest, sent, principal, declared, term)
        out.append({
            "name": c["name"], "start": start, "principal": principal, "exact_apr_bps": exact,
            "apr_bps": declared, "term_days": term, "repayment": c["kind"] == "bullet",
            "digest": "0x" + digest.hex(), "words": [hex(w) for w in sent],
            "refused": None if verdict is None else {
                "code": verdict.code,
                "values": {k: "0x" + v.hex() if isinstance(v, bytes) else v
                           for k, v in verdict.values.items()},
            },
        })  # fmt: skip
    return out
