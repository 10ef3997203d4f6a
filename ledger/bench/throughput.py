"""Origination through the nodes (issue 18), beside the chain path measured in the same run.

Each run, on two fresh anvils (the chain answers more slowly as records pile up, so neither
path runs on the other's history):

- the chain path: `n` co-loans through `LedgerClient.originate_pipelined(per_tx=20)`, signed
  beforehand (`recording.pipelined`, the README's headline figure);
- the node path, with all five nodes and the key service running: `n` loans, 3 tranches each,
  through the platform node's `POST /v1/loans/batch`, 100 per request from a few clients at
  once; the platform node asks each lender node once per batch (`POST /v1/cosign/batch`),
  verifies every signature and submits pipelined; every loan must come back 201;
  meanwhile each node process's resident memory is sampled (/proc, peak reported);
- single-loan requests: `POST /v1/loans` from 32 clients at once, p50/p99 latency;
- the idle cost: each node's CPU over `idle_s` seconds with nothing to do (/proc; a node's
  HTTP worker(s) and its follower process together).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ledger.bench.api import consortium_with_nodes, cpu_seconds, group_pids, wait_indexed
from ledger.bench.recording import BATCH, _pct, pipelined
from ledger.localnet.consortium import LocalConsortium, new_id
from ledger.nodeclient import NodeSession

PER_REQUEST = 100
BATCH_CLIENTS = 4
SINGLE_CLIENTS = 32


def _body(cx: LocalConsortium) -> dict[str, Any]:
    """A new borrower's 3-tranche loan: the platform 40%, two banks 30% each."""
    return {
        "loan_id": new_id("api").hex(),
        "borrower_key": "0x" + new_id("b").hex(),
        "product": "consumer",
        "principal": 100_000,
        "apr_bps": 1_200,
        "term_days": 180,
        "repayment": "instalment",
        "tranches": [
            {"lender": cx.platform.address, "amount": 40_000},
            {"lender": cx.lenders[0].address, "amount": 30_000},
            {"lender": cx.lenders[1].address, "amount": 30_000},
        ],
    }


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


class PeakRss:
    """The peak resident memory of each node, sampled every 0.2 s while in the block: that of
    its largest process (its HTTP worker, its follower), each held to the same target."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                sizes = [m for p in group_pids(pid) if (m := rss_mb(p)) is not None]
                mb = max(sizes, default=None)
                if mb is not None:
                    self.peak[name] = max(self.peak.get(name, 0.0), mb)
            if self._stop.wait(0.2):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def batched(url: str, cx: LocalConsortium, n: int, clients: int) -> dict[str, Any]:
    """`n` loans through POST /v1/loans/batch, PER_REQUEST each, `clients` requests at once."""
    bodies = [[_body(cx) for _ in range(min(PER_REQUEST, n - s))] for s in range(0, n, PER_REQUEST)]
    accepted = 0
    lock = threading.Lock()
    todo = iter(bodies)

    def work() -> None:
        nonlocal accepted
        with NodeSession.signed_in(url, cx.platform) as s:
            while True:
                with lock:
                    loans = next(todo, None)
                if loans is None:
                    return
                r = s.post("/v1/loans/batch", {"loans": loans}, timeout=300)
                if r.status_code != 200:
                    raise RuntimeError(f"POST /v1/loans/batch answered {r.status_code}: {r.text}")
                body = r.json()
                if body["accepted"] != len(loans):
                    bad = [x for x in body["results"] if x["status"] != 201][:1]
                    raise RuntimeError(f"batch item refused: {bad}")
                with lock:
                    accepted += body["accepted"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(work) for _ in range(clients)]:
            f.result()
    elapsed = time.perf_counter() - t0
    return {"records": n, "accepted": accepted, "seconds": round(elapsed, 2),
            "records_per_s": round(n / elapsed, 1)}  # fmt: skip


def single(url: str, cx: LocalConsortium, n: int, clients: int) -> dict[str, Any]:
    """`n` loans through POST /v1/loans, one per request, from `clients` clients at once."""
    latencies: list[float] = []
    lock = threading.Lock()
    per = max(1, n // clients)

    def work() -> None:
        mine = []
        with NodeSession.signed_in(url, cx.platform) as s:
            for _ in range(per):
                body = _body(cx)
                t0 = time.perf_counter()
                r = s.post("/v1/loans", body, timeout=120)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    raise RuntimeError(f"POST /v1/loans answered {r.status_code}: {r.text}")
        with lock:
            latencies.extend(mine)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(work) for _ in range(clients)]:
            f.result()
    elapsed = time.perf_counter() - t0
    return {
        "records": len(latencies),
        "clients": clients,
        "records_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(_pct(latencies, 50) * 1000, 1),
        "p99_ms": round(_pct(latencies, 99) * 1000, 1),
    }


def idle_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Each process's CPU use over `seconds`, in percent of one core."""
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    time.sleep(seconds)
    out = {}
    for k, p in pids.items():
        b, a = before[k], cpu_seconds(p)
        if a is not None and b is not None:
            out[k] = round((a - b) / seconds * 100, 2)
    return out


def one_run(n: int, singles: int, idle_s: float, say: Callable[[str], None]) -> dict[str, Any]:
    from ledger.localnet.chains import LocalChain
    from ledger.localnet.consortium import bootstrap

    out: dict[str, Any] = {}
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        out["chain_path"] = pipelined(cx, n, per_tx=BATCH)
        cx.reset_clients()
    say(f"chain path: {out['chain_path']['records_per_s']}/s")
    with consortium_with_nodes() as (cx, urls, pids):
        with PeakRss(pids) as rss:
            out["batched"] = batched(urls["platform"], cx, n, BATCH_CLIENTS)
        out["rss_peak_mb"] = {k: round(v, 1) for k, v in rss.peak.items()}
        say(f"through the platform node, batched: {out['batched']['records_per_s']}/s")
        # each figure next is not charged with indexing what came before
        nodes = [u for name, u in urls.items() if name != "keyservice"]
        wait_indexed(nodes, cx.lenders[0], cx.plat.w3.eth.block_number)
        out["single"] = single(urls["platform"], cx, singles, SINGLE_CLIENTS)
        say(f"through the platform node, one per request: {out['single']['records_per_s']}/s")
        wait_indexed(nodes, cx.lenders[0], cx.plat.w3.eth.block_number)
        time.sleep(2.0)  # the last requests' after-effects (keep-alive, gc) settle
        out["idle_cpu_pct"] = idle_cpu(pids, idle_s)
        say(f"idle: {out['idle_cpu_pct']}")
    out["ratio_to_chain_path"] = round(
        out["batched"]["records_per_s"] / out["chain_path"]["records_per_s"], 3
    )
    return out


def run(
    n: int, singles: int, runs: int, idle_s: float, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    all_runs = [one_run(n, singles, idle_s, say) for _ in range(runs)]

    def med(get: Callable[[dict[str, Any]], float]) -> float:
        return round(statistics.median(get(r) for r in all_runs), 3)

    names = all_runs[0]["rss_peak_mb"].keys()
    return {
        "records": n,
        "per_request": PER_REQUEST,
        "batch_clients": BATCH_CLIENTS,
        "median_batched_records_per_s": med(lambda r: r["batched"]["records_per_s"]),
        "median_chain_path_records_per_s": med(lambda r: r["chain_path"]["records_per_s"]),
        "median_ratio_to_chain_path": med(lambda r: r["ratio_to_chain_path"]),
        "single_clients": SINGLE_CLIENTS,
        "median_single_records_per_s": med(lambda r: r["single"]["records_per_s"]),
        "median_single_p99_ms": med(lambda r: r["single"]["p99_ms"]),
        "median_idle_cpu_pct": {
            k: med(lambda r, k=k: r["idle_cpu_pct"].get(k, 0.0))
            for k in all_runs[0]["idle_cpu_pct"]
        },  # fmt: skip
        "max_rss_peak_mb": {k: max(r["rss_peak_mb"].get(k, 0.0) for r in all_runs) for k in names},
        "targets": {
            "batched_records_per_s": 300,
            "ratio_to_chain_path": 0.5,
            "single_records_per_s": 100,
            "single_p99_ms": 1000,
            "idle_cpu_pct": 0.5,
            "rss_mb": 200,
        },  # fmt: skip
        "runs": all_runs,
    }
