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
    t0 = time.perf_counter()
    sections: dict[str, float] = {}
    mark = [t0, ""]

    def say(msg: str) -> None:
        if progress is not None:
            progress(msg)

    def section(name: str) -> None:
        """Start the next top-level part and time the previous one."""
        now = time.perf_counter()
        if mark[1]:
            sections[mark[1]] = round(now - mark[0], 1)
        mark[0], mark[1] = now, name
        say(name)

    runs = 1 if quick else 3
    out: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    section("crypto")
    out["crypto"] = crypto.run(seconds=0.3 if quick else 1.0, runs=runs)
    section("gas")
    from ledger.localnet.gas import run as gas_run

    out["gas"] = [asdict(r) for r in gas_run()]
    section("sustained recording")
    out["recording"] = recording.run(
        n=500 if quick else 10_000, baseline_n=100 if quick else 500, runs=runs, progress=say
    )
    section("indexer catch-up")
    from ledger.bench import indexer

    pg = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    out["indexer"] = indexer.run(loans=300 if quick else 10_000, runs=runs, pg_url=pg)
    section("audit replay")
    out["audit"] = auditing.run(n=300 if quick else 2_000, runs=runs)
    section("through the API")
    from ledger.bench import api

    out["api"] = api.run(
        # exposure latency at scale is the growth figure below; this one is on a real history
        loans=300 if quick else 2_000,
        queries=100 if quick else 1_000,
        progress=say,
    )
    section("origination through the nodes")
    from ledger.bench import throughput

    out["nodes"] = throughput.run(
        n=500 if quick else 10_000,
        singles=64 if quick else 640,
        runs=runs,
        idle_s=10.0 if quick else 30.0,
        progress=say,
    )
    section("exposure query as the read model grows")
    from ledger.bench import exposure

    out["exposure_growth"] = exposure.run(
        pg,
        steps=(1_000, 5_000) if quick else (10_000, 100_000, 1_000_000),
        queries=100 if quick else 1_000,
        progress=say,
        runs=runs,
    )
    section("")
    out["section_seconds"] = sections
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
