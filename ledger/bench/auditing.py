"""Audit replay in records/s, every signature verified."""

from __future__ import annotations

import statistics
import time
from typing import Any

from ledger.audit import run_audit
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import bootstrap


def run(n: int, runs: int) -> dict[str, Any]:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        items = [(ln, cx.sign(ln)) for ln in (cx.loan(100_000) for _ in range(n))]
        cx.plat.originate_pipelined(items)
        rates, cpu, ok = [], [], True
        for _ in range(runs):
            c0 = time.process_time()
            report = run_audit(chain.url, cx.deployment)
            cpu.append(time.process_time() - c0)
            ok &= report.ok
            rates.append(report.to_json()["records_per_second"])
        cx.reset_clients()
    return {
        "records": n,
        "clean": ok,
        "median_records_per_s": statistics.median(rates),
        "spread_records_per_s": [min(rates), max(rates)],
        # this process's CPU (every thread, not the node's): steadier than records/s on a busy box
        "median_cpu_s": round(statistics.median(cpu), 3),
        "target_records_per_s": 2_000,
    }
