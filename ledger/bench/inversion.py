"""How long it takes to invert one borrower key (SECURITY.md, DESIGN §3): why the pepper must
stay with the key service.

With the pepper, a borrower key whose region code and birth year are known (a platform knows
its market, a loan's terms hint at an age) is inverted by trying every ID of that region and
year: each day of the year × 1,000 sequence numbers, the check digit following from the rest
(about 365,000 candidates, one HMAC-SHA256 each). Without the pepper the same search needs the
pepper first: a 256-bit HMAC key, 2^256 guesses, infeasible. A member without the pepper can
only ask the key service, at its rate (50/s) and daily cap (100,000) per member, every
question logged for the auditor.

`python -m ledger.bench.inversion [--year 1990] [--region 110105] [--json]`
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import sys
import time
from datetime import date, timedelta

from ledger.identity import _CHECK_CHARS, _WEIGHTS, _check_digit, is_valid_id


def _ids(region: str, year: int):  # noqa: ANN202 - a generator of (id bytes)
    """Every valid ID of one region and birth year, in order. The check digit's weighted sum
    is built from the fixed part once per day, then per sequence number."""
    day = date(year, 1, 1)
    while day.year == year:
        body14 = f"{region}{day:%Y%m%d}"
        base = sum(int(c) * w for c, w in zip(body14, _WEIGHTS[:14], strict=True))
        prefix = body14.encode()
        for seq in range(1000):
            s3 = f"{seq:03d}"
            total = base + sum(int(c) * w for c, w in zip(s3, _WEIGHTS[14:], strict=True))
            yield prefix + s3.encode() + _CHECK_CHARS[total % 11].encode()
        day += timedelta(days=1)


def invert(key: bytes, pepper: bytes, region: str, year: int) -> tuple[str | None, int]:
    """The ID of `key` among the region's and year's IDs (None if not there), and how many
    candidates were tried."""
    tried = 0
    digest = hmac.digest
    for candidate in _ids(region, year):
        tried += 1
        if digest(pepper, candidate, hashlib.sha256) == key:
            return candidate.decode(), tried
    return None, tried


def measure(region: str = "110105", year: int = 1990, runs: int = 3) -> dict[str, object]:
    pepper = os.urandom(32)
    rng = random.Random(14)
    # the worst case for the attacker: the last day of the year
    body = f"{region}{year}1231{rng.randrange(1000):03d}"
    target = body + _check_digit(body)
    assert is_valid_id(target)
    key = hmac.digest(pepper, target.encode(), hashlib.sha256)
    times, cpu, tried = [], [], 0
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        found, tried = invert(key, pepper, region, year)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert found == target
    days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    median = sorted(times)[len(times) // 2]
    return {
        "region": region,
        "year": year,
        "candidates": days * 1000,
        "tried_to_find": tried,
        "with_pepper_s_median": round(median, 3),
        "with_pepper_s_runs": [round(t, 3) for t in times],
        "with_pepper_cpu_s_median": round(sorted(cpu)[len(cpu) // 2], 3),
        "candidates_per_s": round(tried / median),
        "without_pepper": "a 256-bit HMAC key search: 2^256 guesses, infeasible",
        "through_key_service_at_50_per_s_s": days * 1000 / 50,
        "through_key_service_days_at_100000_per_day": round(days * 1000 / 100_000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.bench.inversion", description=__doc__)
    parser.add_argument("--region", default="110105")
    parser.add_argument("--year", type=int, default=1990)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    out = measure(args.region, args.year, args.runs)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:<44} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
