"""Recording on an interval-mined chain, as consortium chains run (DESIGN §8: at least 80% of the
block gas limit used while a backlog exists), beside the same run under automine.

Each block time gets a production-like chain of its own (ledger.localnet.prodlike: anvil with
`--block-time`, zero gas, dev methods refused) and a consortium deployed with the members'
keystores. A backlog of signed co-loans, a few blocks' worth, goes through
`originate_pipelined` in non-atomic batches. Figures: records/s, p50/p99 confirmation latency
(submit to receipt), how many loans a block can hold at its gas limit and how many it got, and
the share of the gas limit used by the blocks mined while the backlog lasted (every block from
the first with one of the loans to the one before the last, which only takes the remainder).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.bench.recording import BATCH, _pct
from ledger.chain.rpc import Rpc
from ledger.localnet.consortium import LocalConsortium, bootstrap


def _backlog_run(
    cx: LocalConsortium, n: int, per_tx: int, chunk: int, window: int = 1, estimate: bool = False
) -> dict[str, Any]:
    plat = cx.plat
    items = [(ln, cx.sign(ln)) for ln in (cx.loan(100_000 + i % 1000) for i in range(n))]
    plat.receipt_latencies.clear()
    t0 = time.perf_counter()
    results = plat.originate_pipelined(
        items, per_tx=per_tx, chunk=chunk, window=window, estimate_each=estimate
    )
    elapsed = time.perf_counter() - t0
    ok = [r for r in results if hasattr(r, "block_number")]
    lat = plat.receipt_latencies
    blocks = sorted({r.block_number for r in ok})
    per_block = {b: sum(1 for r in ok if r.block_number == b) for b in blocks}
    with Rpc(cx.rpc_url) as rpc:
        span = list(range(blocks[0], blocks[-1] + 1))
        raw = rpc.batch([("eth_getBlockByNumber", [hex(b), False]) for b in span])
    used = {int(b["number"], 16): int(b["gasUsed"], 16) for b in raw}
    limit = int(raw[0]["gasLimit"], 16)
    backlog = span[:-1] or span  # the last block only takes what was left
    gas_per_loan = sum(used[b] for b in blocks) / len(ok)
    return {
        "records": n,
        "per_tx": per_tx,
        "chunk": chunk,
        "window": window,
        "estimate_each": estimate,
        "succeeded": len(ok),
        "seconds": round(elapsed, 3),
        "records_per_s": round(n / elapsed, 1),
        "latency_p50_ms": round(_pct(lat, 50) * 1000, 1),
        "latency_p99_ms": round(_pct(lat, 99) * 1000, 1),
        "block_gas_limit": limit,
        "gas_per_loan": round(gas_per_loan),
        "loans_per_block_allowed": int(limit // gas_per_loan),
        "loans_per_block_max": max(per_block.values()),
        "blocks": len(span),
        "gas_limit_used_while_backlog": round(statistics.mean(used[b] / limit for b in backlog), 3),
    }


def measure(block_time: float | None, n: int, per_tx: int = BATCH) -> dict[str, Any]:
    """One run: `n` loans on a fresh chain, interval-mined every `block_time` seconds (None:
    the dev chain's automine)."""
    from ledger.keys import DevConsortium

    with tempfile.TemporaryDirectory(prefix="ledger-bench-interval-") as tmp:
        if block_time is None:
            from ledger.localnet.chains import LocalChain

            with LocalChain("anvil") as chain:
                cx = bootstrap(chain.url)
                return {"mining": "automine", **_backlog_run(cx, n, per_tx, chunk=200)}
        from ledger.localnet.prodlike import PRODUCTION_LIKE_DELAY, ProductionLikeChain

        with ProductionLikeChain(Path(tmp), block_time=block_time) as chain:
            acc = chain.keys.accounts()
            keys = DevConsortium(
                governor=acc["governor"],
                platform=acc["platform"],
                lenders=[acc["bank-a"], acc["bank-b"], acc["bank-c"]],
                auditor=acc["auditor"],
            )
            cx = bootstrap(chain.url, keys=keys, delay=PRODUCTION_LIKE_DELAY)
            # chunks of a fifth of a block, several in flight: the pool always holds more than
            # the next block can take, and receipts are collected as blocks come
            # and each transaction declares about the gas it uses: blocks are packed by it
            result = _backlog_run(cx, n, per_tx, chunk=60, window=12, estimate=True)
            assert chain.refused == [], chain.refused
            return {"mining": f"every {block_time:g} s", "block_time_s": block_time, **result}


def run(quick: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The section: automine, then 1 s and 2 s blocks, each with a backlog of about four
    blocks' worth of loans (one at 30 Mgas holds about 270 three-tranche loans in batches)."""
    n = 400 if quick else 1_200
    out: dict[str, Any] = {"runs": []}
    for bt in (None, 1.0, 2.0):
        if progress:
            progress("automine" if bt is None else f"{bt:g} s blocks")
        out["runs"].append(measure(bt, n))
    interval = [r for r in out["runs"] if r["mining"] != "automine"]
    out["min_gas_limit_used_while_backlog"] = min(
        r["gas_limit_used_while_backlog"] for r in interval
    )
    out["target"] = 0.8
    return out
