"""Sustained recording through LedgerClient on anvil, against a plain transact() loop."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from ledger.localnet.consortium import LocalConsortium
from ledger.provenance import pack_signatures


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


# Loans per transaction in the batched mode: the per-transaction cost (its signature check, one
# block per transaction under automine) is shared twenty ways, while a JSON-RPC batch of 200
# loans stays far below a node's request-size limit. Measured here on 10,000 loans: 818/s with
# 10 per transaction, 1,036/s with 20, 985/s with 50.
BATCH = 20


def pipelined(cx: LocalConsortium, n: int, per_tx: int = 1) -> dict[str, Any]:
    """`n` signed co-loans through LedgerClient.originate_pipelined, `per_tx` per transaction;
    signatures are made before the clock starts (in the consortium they come from the lenders'
    nodes). A record's latency is its transaction's submit-to-receipt time."""
    plat = cx.plat
    items = [(ln, cx.sign(ln)) for ln in (cx.loan(100_000 + i % 1000) for i in range(n))]
    plat.receipt_latencies.clear()
    t0 = time.perf_counter()
    results = plat.originate_pipelined(items, per_tx=per_tx)
    elapsed = time.perf_counter() - t0
    ok = [r for r in results if hasattr(r, "gas_used")]
    gas = sum(r.gas_used for r in ok)
    lat = plat.receipt_latencies
    return {
        "records": n,
        "per_tx": per_tx,
        "succeeded": len(ok),
        "success_rate": len(ok) / n,
        "seconds": round(elapsed, 3),
        "records_per_s": round(n / elapsed, 1),
        "gas_per_s": round(gas / elapsed),
        "latency_p50_ms": round(_pct(lat, 50) * 1000, 1),
        "latency_p99_ms": round(_pct(lat, 99) * 1000, 1),
    }


def transact_loop(cx: LocalConsortium, n: int) -> dict[str, Any]:
    """The baseline: `contract.functions.originate(...).transact()` one record at a time, from
    the platform's address unlocked on the node (anvil_impersonateAccount)."""
    w3 = cx.plat.w3
    w3.provider.make_request("anvil_impersonateAccount", [cx.platform.address])
    items = [(ln, cx.sign(ln)) for ln in (cx.loan(100_000 + i % 1000) for i in range(n))]
    fn = cx.plat.ledger.functions.originate
    t0 = time.perf_counter()
    ok = 0
    for loan, sigs in items:
        h = fn(loan.as_abi(), pack_signatures(sigs), list(loan.schedule)).transact(
            {"from": cx.platform.address}
        )
        # the client's own wait, which nudges anvil's automine past foundry-rs/foundry#10122,
        # so the baseline measures the per-record round trips, not a stuck miner
        ok += cx.plat.wait(h.to_0x_hex()).status == 1
    elapsed = time.perf_counter() - t0
    w3.provider.make_request("anvil_stopImpersonatingAccount", [cx.platform.address])
    return {
        "records": n,
        "succeeded": ok,
        "seconds": round(elapsed, 3),
        "records_per_s": round(n / elapsed, 1),
    }


def _summary(runs: list[dict[str, Any]], base: list[float]) -> dict[str, Any]:
    rate = [r["records_per_s"] for r in runs]
    ratios = [a / b for a, b in zip(rate, base, strict=True)]
    return {
        "per_tx": runs[0]["per_tx"],
        "median_records_per_s": statistics.median(rate),
        "spread_records_per_s": [min(rate), max(rate)],
        "median_gas_per_s": statistics.median(r["gas_per_s"] for r in runs),
        "median_latency_p50_ms": statistics.median(r["latency_p50_ms"] for r in runs),
        "median_latency_p99_ms": statistics.median(r["latency_p99_ms"] for r in runs),
        "success_rate": min(r["success_rate"] for r in runs),
        "median_ratio_to_transact_loop": round(statistics.median(ratios), 2),
    }


def run(
    n: int, baseline_n: int, runs: int, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Each run, on a fresh anvil: the transact() loop, then `n` loans batched (BATCH per
    transaction), then `n` loans one per transaction. The headline figures are the batched
    mode's, the client's fastest path (the API's batch endpoint uses it too); the one per
    transaction mode is reported beside them, and both ratios are to the loop of the same run."""
    from ledger.localnet.chains import LocalChain
    from ledger.localnet.consortium import bootstrap

    batched, single, plain = [], [], []
    for i in range(runs):
        with LocalChain("anvil") as chain:
            cx = bootstrap(chain.url)
            # The loop goes first, on the fresh chain: anvil answers it several times slower
            # once thousands of records are on chain (67/s fresh, 28/s after 6,000, 4/s after
            # 20,000 here), so the ratios below are against the loop at its best.
            plain.append(transact_loop(cx, baseline_n))
            batched.append(pipelined(cx, n, per_tx=BATCH))
            single.append(pipelined(cx, n, per_tx=1))
            cx.reset_clients()
        if progress:
            progress(
                f"recording run {i + 1}: {batched[-1]['records_per_s']}/s batched by {BATCH}, "
                f"{single[-1]['records_per_s']}/s one per transaction, "
                f"{plain[-1]['records_per_s']}/s transact loop"
            )
    base = [r["records_per_s"] for r in plain]
    return {
        "records": n,
        "baseline_records": baseline_n,
        **_summary(batched, base),
        "one_per_tx": _summary(single, base),
        "runs": batched + single,
        "baseline_runs": plain,
        "median_baseline_records_per_s": statistics.median(base),
        "target_records_per_s": 300,
        "target_ratio": 10,
    }
