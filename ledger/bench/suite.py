"""`ledger bench`: every DESIGN §8 figure, each a median with its spread over repeated runs."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from ledger.bench import auditing, crypto, recording


def run(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    runs = 1 if quick else 3
    out: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    say("crypto")
    out["crypto"] = crypto.run(seconds=0.3 if quick else 1.0, runs=runs)
    say("gas")
    from ledger.gas import run as gas_run

    out["gas"] = [asdict(r) for r in gas_run()]
    say("sustained recording")
    out["recording"] = recording.run(
        n=500 if quick else 10_000, baseline_n=100 if quick else 500, runs=runs, progress=say
    )
    say("indexer catch-up")
    from ledger.bench import indexer

    pg = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    out["indexer"] = indexer.run(loans=300 if quick else 10_000, runs=runs, pg_url=pg)
    say("audit replay")
    out["audit"] = auditing.run(n=300 if quick else 2_000, runs=runs)
    say("through the API")
    from ledger.bench import api

    out["api"] = api.run(
        loans=300 if quick else 20_000,
        cosigned=10 if quick else 100,
        batch=10 if quick else 50,
        queries=100 if quick else 1_000,
        progress=say,
    )
    say("exposure query as the read model grows")
    from ledger.bench import exposure

    out["exposure_growth"] = exposure.run(
        pg,
        steps=(1_000, 5_000) if quick else (10_000, 100_000, 1_000_000),
        queries=100 if quick else 1_000,
        progress=say,
    )
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
