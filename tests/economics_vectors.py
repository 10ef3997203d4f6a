"""Inputs of the shared economics vectors (tests/vectors/economics.json) and how their expected
outputs were produced. `python -m tests.economics_vectors` rewrites the file from the inputs; the
tests recompute every output and compare, and pin the independently known figures (the textbook
12-month 等额本息 at 1% a month, the flat-fee APR) so the file cannot drift with the code."""

from __future__ import annotations

import json
from pathlib import Path

from ledger import apr, economics, prepayment, schedule
from tests import schedule_check_vectors

PATH = Path(__file__).parent / "vectors" / "economics.json"
START = 1_769_832_000  # 2026-01-31T04:00:00Z: month ends exercise the day clamp

SCHEDULES = [
    {
        "name": "12m equal instalments at 1%/month (12% p.a.)",
        "kind": "equal_instalment",
        "principal": 1_000_000,
        "months": 12,
        "rate_bps": 1200,
    },
    {
        "name": "12m equal instalments at 2.2%/month: simple 14.86% under the cap, IRR 26.4% over",
        "kind": "equal_instalment",
        "principal": 1_000_000,
        "months": 12,
        "rate_bps": 2640,
    },
    {
        "name": "12m 12% plus a flat 0.8%/month guarantee fee on the original principal: simple "
        "21.6% under the cap, IRR APR over",
        "kind": "equal_instalment",
        "principal": 1_000_000,
        "months": 12,
        "rate_bps": 1200,
        "charge_bps": 960,
        "charge_on_original": True,
    },
    {
        "name": "12m equal principal at 18% with a 1.2% guarantee fee on the outstanding",
        "kind": "equal_principal",
        "principal": 1_000_003,
        "months": 12,
        "rate_bps": 1800,
        "charge_bps": 120,
    },
    {
        "name": "bullet, 12 months at 18% simple: IRR below the simple rate",
        "kind": "bullet",
        "principal": 1_000_000,
        "months": 12,
        "rate_bps": 1800,
    },
    {
        "name": "bullet, 1 month at 23.99%",
        "kind": "bullet",
        "principal": 777_777,
        "months": 1,
        "rate_bps": 2399,
    },
    {
        "name": "36m equal instalments, odd principal",
        "kind": "equal_instalment",
        "principal": 12_345_679,
        "months": 36,
        "rate_bps": 1499,
    },
    {
        "name": "interest-free 3m equal instalments",
        "kind": "equal_instalment",
        "principal": 100,
        "months": 3,
        "rate_bps": 0,
    },
]

SPLITS = [
    {"name": "3 tranches, 30% and 25% fees, first instalment's interest",
     "amounts": [300_000, 400_000, 300_000], "fee_bps": [0, 3000, 2500], "interest": 10_000},
    {"name": "odd fen: rounding on both levels", "amounts": [333, 333, 334],
     "fee_bps": [3000, 0, 3333], "interest": 11},
    {"name": "a bank without terms in force pays no fee", "amounts": [300_001, 349_999, 350_000],
     "fee_bps": [0, 3000, 0], "interest": 678},
]  # fmt: skip

COMPENSATIONS = [
    {
        "name": "80% cover of two banks",
        "outstanding": [30_001, 40_003, 29_999],
        "covered": [False, True, True],
        "cover_bps": 8000,
    },
]

RECOVERIES = [
    {
        "name": "first recovery",
        "amounts": [300_000, 400_000, 300_000],
        "before": 0,
        "after": 12_345,
    },
    {
        "name": "second recovery",
        "amounts": [300_000, 400_000, 300_000],
        "before": 12_345,
        "after": 20_000,
    },
]

DPD = [  # schedule: index into SCHEDULES; paid: principal repaid; at: instalment at_due + plus
    {"schedule": 0, "paid": 0, "at_due": 0, "plus": 0},
    {"schedule": 0, "paid": 0, "at_due": 0, "plus": 1},
    {"schedule": 0, "paid": 0, "at_due": 0, "plus": 86_400},
    {"schedule": 0, "paid": 0, "at_due": 0, "plus": 86_401},
    {"schedule": 0, "paid": 78_848, "at_due": 2, "plus": 0},
    {"schedule": 0, "paid": 78_849, "at_due": 2, "plus": 0},
    {"schedule": 0, "paid": 78_849, "at_due": 3, "plus": 91 * 86_400 - 5},
    {"schedule": 0, "paid": 0, "at_due": 0, "plus": 271 * 86_400},
    {"schedule": 0, "paid": 0, "at_due": 0, "plus": 360 * 86_400},
    {"schedule": 0, "paid": 0, "at_due": 0, "plus": 361 * 86_400},
    {"schedule": 0, "paid": 1_000_000, "at_due": 11, "plus": 999 * 86_400},
]

PREPAYMENTS = [  # schedule: index into SCHEDULES, or after: the remaining schedule of case i;
    # repaid: principal repaid against it; at: instalment at_due's due time + plus
    {"schedule": 0, "repaid": 128_849, "at_due": 1, "plus": -86_400},
    {"schedule": 0, "repaid": 500_000, "at_due": 0, "plus": -1},
    {"after": 0, "repaid": 100_000, "at_due": 0, "plus": 0},
    {"after": 2, "repaid": 123_457, "at_due": 0, "plus": -3_600},
    {"schedule": 2, "repaid": 300_001, "at_due": 2, "plus": -5},
    {"schedule": 3, "repaid": 1, "at_due": 0, "plus": 0},
    {"schedule": 4, "repaid": 600_000, "at_due": 0, "plus": -30 * 86_400},
    {"schedule": 6, "repaid": 5_000_000, "at_due": 10, "plus": -1},
    {"schedule": 7, "repaid": 99, "at_due": 2, "plus": 0},
    {"schedule": 0, "repaid": 78_849, "at_due": 1, "plus": -86_400},  # NothingPrepaid
    {"schedule": 0, "repaid": 1_000_000, "at_due": 11, "plus": 0},  # NothingPrepaid: all repaid
    {"schedule": 0, "repaid": 100, "at_due": 0, "plus": 1},  # PrepaymentWhileOverdue
    {"schedule": 0, "repaid": 78_850, "at_due": 1, "plus": 86_401},  # PrepaymentWhileOverdue
]


def prepayments() -> list[dict]:
    """PREPAYMENTS with their outputs (the remaining schedule or the rule's refusal)."""
    out: list[dict] = []
    for c in PREPAYMENTS:
        if "after" in c:
            s = schedule.from_json(out[c["after"]]["remaining"])
        else:
            s = schedule_of(SCHEDULES[c["schedule"]])
        at = s[c["at_due"]].due + c["plus"]
        row = {**c, "at": at, "words_in": [hex(i.word()) for i in s]}
        try:
            k, extra, rest = prepayment.rescale(s, c["repaid"], at)
        except prepayment.PrepaymentError as exc:
            out.append({**row, "error": exc.code})
            continue
        out.append(
            {
                **row,
                "covered": k,
                "principal": extra,
                "remaining": schedule.to_json(rest),
                "words": [hex(i.word()) for i in rest],
                "digest": "0x" + schedule.digest(rest).hex(),
            }
        )
    return out


def schedule_of(case: dict) -> tuple[schedule.Instalment, ...]:
    return schedule.build(
        case["kind"],
        case["principal"],
        case["months"],
        case["rate_bps"],
        START,
        case.get("charge_bps", 0),
        case.get("charge_on_original", False),
    )


def build() -> dict:
    out_s = []
    for c in SCHEDULES:
        s = schedule_of(c)
        out_s.append(
            {
                **c,
                "start": START,
                "instalments": schedule.to_json(s),
                "digest": "0x" + schedule.digest(s).hex(),
                "words": [hex(i.word()) for i in s],
                "apr_bps": apr.all_in_apr_bps(s, c["principal"], START),
                "simple_bps": apr.simple_annual_rate_bps(s, c["principal"], c["months"]),
            }
        )
    out_sp = []
    for c in SPLITS:
        r = economics.split_interest(c["amounts"], sum(c["amounts"]), c["fee_bps"], c["interest"])
        out_sp.append({**c, "tranche": list(r.tranche), "kept": list(r.kept), "fee": list(r.fee)})
    out_c = [
        {**c, "payout": economics.compensation(c["outstanding"], c["covered"], c["cover_bps"])}
        for c in COMPENSATIONS
    ]
    out_r = [
        {
            **c,
            "split": economics.split_recovery(
                c["amounts"], sum(c["amounts"]), c["before"], c["after"]
            ),
        }
        for c in RECOVERIES
    ]
    out_d = []
    floor = economics.Floor()
    for c in DPD:
        s = schedule_of(SCHEDULES[c["schedule"]])
        at = s[c["at_due"]].due + c["plus"]
        dpd = economics.days_past_due(s, c["paid"], at)
        out_d.append(
            {**c, "at": at, "dpd": dpd, "category": economics.CATEGORY_NAMES[floor.category(dpd)]}
        )
    return {
        "description": "Shared economics vectors (ledger.schedule, ledger.apr, ledger.economics; "
        "the contracts' schedule digest and the audit replay the same; schedule_checks: what "
        "the contract's ScheduleCheck and ledger.apr_bounds refuse of a loan's schedule sent "
        "with its terms). Amounts in fen, rates in basis points per annum, times in unix "
        "seconds UTC. Instalment word: due 40 | principal 72 | interest 72 | charges 72 bits, "
        "due highest; digest = keccak256(words).",
        "schedules": out_s,
        "interest_splits": out_sp,
        "compensations": out_c,
        "recoveries": out_r,
        "dpd": out_d,
        "prepayments": prepayments(),
        "schedule_checks": schedule_check_vectors.build(),
    }


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), indent=1) + "\n")
