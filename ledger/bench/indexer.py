"""Indexer catch-up benchmark (DESIGN §8: ≥ 2,000 events/s into SQLite and PostgreSQL).

Builds a DEV-ONLY consortium on a fresh anvil, records co-loans in batches of 50 (one
`LoanOriginated` each) and repays a share of them one transaction each (`Repaid`, plus
`LoanStatusChanged` when repaid in full), then times `Indexer.catch_up` from the deployment
block into a fresh database, several times per database; the median counts.

    python -m ledger.bench.indexer --loans 10000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.bench.mining import check_receipts, manual_mining, mine_pending
from ledger.chain.abi import Function
from ledger.chain.client import LedgerClient
from ledger.chain.rpc import Rpc
from ledger.domain import CoLoan
from ledger.ingest.heap import resident_mb
from ledger.localnet.consortium import LocalConsortium, bootstrap, new_id
from ledger.provenance import pack_signatures

# gas per 50-loan batch is about 6M; an explicit limit skips estimation (which runs it twice)
_BATCH_GAS = 9_000_000
_REPAY_GAS = 300_000


def _send(client: LedgerClient, txs: Sequence[tuple[Any, str, tuple, int]]) -> None:
    """Sign and send many transactions in JSON-RPC batches of at most about 500 kB (nodes cap
    request bodies), then wait for every receipt.

    Automine is off meanwhile and blocks are mined explicitly (ledger.bench.mining). Full blocks
    raise the base fee, so fees are refreshed per batch."""
    with Rpc(client.rpc_url) as rpc, manual_mining(rpc):
        start = 0
        while start < len(txs):
            client.fees(refresh=True)
            raws: list[bytes] = []
            while start < len(txs) and len(raws) < 200 and sum(map(len, raws)) < 500_000:
                contract, fn, args, gas = txs[start]
                tx = {
                    "from": client.address,
                    "to": contract.address,
                    "data": Function(contract.abi, fn).data(*args),
                    "value": 0,
                    "chainId": client.deployment.chain_id,
                    "gas": gas,
                    **client.fees(),
                    "nonce": client.nonces.take(),  # type: ignore[union-attr]
                }
                raws.append(client.sign(tx))
                start += 1
            hashes = client.send_raw_batch(raws)
            for h in hashes:
                if not isinstance(h, str):
                    raise RuntimeError(f"transaction refused: {h}")
            mine_pending(rpc)
            check_receipts(rpc, hashes)


def make_events(
    cx: LocalConsortium,
    loans: int,
    *,
    batch: int = 50,
    repay_every: int = 4,
    progress: Callable[[str], None] | None = None,
) -> list[CoLoan]:
    """Record `loans` co-loans in atomic batches, and repay every `repay_every`-th one
    (alternately in part and in full). Returns the loans."""
    plat = cx.plat
    recorded: list[CoLoan] = []
    txs = []
    deadline = cx.now() + 86_400  # one clock read, not one per loan
    for start in range(0, loans, batch):
        group = [
            cx.loan(100_000 + i, deadline=deadline) for i in range(start, min(loans, start + batch))
        ]
        sigs = [cx.sign(ln) for ln in group]
        txs.append(
            (
                plat.ledger,
                "originateBatch",
                (
                    [ln.as_abi() for ln in group],
                    [pack_signatures(s) for s in sigs],
                    [list(ln.schedule) for ln in group],
                    True,
                ),
                _BATCH_GAS,
            )
        )
        recorded.extend(group)
    _send(plat, txs)
    if progress:
        progress(f"{len(recorded)} loans recorded")
    repays = []
    for i, ln in enumerate(recorded[::repay_every]):
        amount = ln.principal if i % 2 else ln.principal // 3
        repays.append(
            (
                plat.ledger,
                "repay",
                (ln.as_abi(), new_id("repay", cx.platform.address), amount, 99),
                _REPAY_GAS,
            )
        )
    _send(plat, repays)
    if progress:
        progress(f"{len(repays)} repayments recorded")
    return recorded


@contextmanager
def fresh_database(kind: str, pg_url: str | None) -> Iterator[str]:
    """A URL to an empty database: a temporary SQLite file, or a new PostgreSQL schema."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as d:
            yield f"sqlite:///{Path(d) / 'bench.db'}"
        return
    import sqlalchemy as sa

    assert pg_url is not None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def time_catch_up(rpc_url: str, cx: LocalConsortium, db_url: str) -> dict[str, Any]:
    from ledger.indexer import Indexer
    from ledger.store.db import make_engine

    engine = make_engine(db_url, writer=True)
    ix = Indexer(engine, rpc_url, cx.deployment)
    try:
        ix.prepare()  # migrations are not part of the figure
        cpu = time.process_time()
        res = ix.catch_up()
        cpu = time.process_time() - cpu
    finally:
        ix.close()
        engine.dispose()
    return {
        "events": res.events,
        "seconds": round(res.seconds, 3),
        "events_per_s": round(res.events_per_s),
        # this process's CPU (both threads), which other load on the machine changes less
        "cpu_seconds": round(cpu, 3),
    }


def peak_rss(
    rpc_url: str,
    cx: LocalConsortium,
    db_url: str,
    tmp: Path,
    to_block: int | None = None,
    sample_every: float | None = None,
) -> dict[str, Any]:
    """Peak resident memory of a separate `ledger index` process catching up every event (what
    a node's indexer does), as it reports it (its VmHWM; see ledger.ingest.heap.resident_mb for
    why not the child's ru_maxrss). With `sample_every`, also its resident memory read from
    /proc that often, as (seconds since start, MB) pairs under "samples"."""
    deployment = tmp / "deployment.json"
    cx.deployment.save(deployment)
    cmd = [sys.executable, "-m", "ledger.cli", "index", "--rpc-url", rpc_url,
           "--deployment", str(deployment), "--database-url", db_url, "--json"]  # fmt: skip
    if to_block is not None:
        cmd += ["--to-block", str(to_block)]
    samples: list[tuple[float, float]] = []
    with (tmp / "index.err").open("w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        done = threading.Event()

        def sample() -> None:
            assert sample_every is not None
            while not done.wait(sample_every):
                mb = resident_mb(proc.pid, "VmRSS")
                if mb is not None:
                    samples.append((round(time.perf_counter() - t0, 2), mb))

        sampler = threading.Thread(target=sample, daemon=True) if sample_every else None
        if sampler is not None:
            sampler.start()
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        proc.stdout.close()
        done.set()  # before the wait: /proc of a reaped child may belong to another process
        if sampler is not None:
            sampler.join()
        proc.wait()
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"ledger index failed: {err.read().decode(errors='replace')[-500:]}")
    report = json.loads(stdout)
    out: dict[str, Any] = {
        "events": report["events"],
        # its own VmHWM at the end of the catch-up, or a later sample if one was higher
        "peak_rss_mb": max([report["peak_rss_mb"], *(mb for _, mb in samples)]),
        "seconds": round(seconds, 1),  # the whole process: start-up and migrations included
    }
    if sample_every:
        out["samples"] = samples
    return out


def run(
    loans: int = 10_000,
    runs: int = 3,
    pg_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    from ledger.localnet.chains import LocalChain

    kinds = ["sqlite"] + (["postgresql"] if pg_url else [])
    out: dict[str, Any] = {"loans": loans, "runs": runs, "target_events_per_s": 2_000}
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        make_events(cx, loans, progress=progress)
        for kind in kinds:
            results = []
            for i in range(runs):
                with fresh_database(kind, pg_url) as url:
                    results.append(time_catch_up(chain.url, cx, url))
                if progress:
                    progress(f"{kind} run {i + 1}: {results[-1]['events_per_s']} events/s")
            out[kind] = {
                "runs": results,
                "median_events_per_s": statistics.median(r["events_per_s"] for r in results),
                "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in results),
            }
        out["events"] = out["sqlite"]["runs"][0]["events"]
        # Bounded memory shows as the same peak for half the history and for all of it.
        head = cx.plat.w3.eth.block_number
        first = cx.deployment.deployment_block
        memory = {}
        for label, to in (("half", first + (head - first) // 2), ("all", None)):
            with tempfile.TemporaryDirectory() as d, fresh_database("sqlite", None) as url:
                memory[label] = peak_rss(chain.url, cx, url, Path(d), to)
        out["memory"] = {**memory["all"], "half_history": memory["half"]}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loans", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL"),
        help="PostgreSQL to benchmark too (default: TEST_DATABASE_URL or DATABASE_URL)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr))
    result = run(args.loans, args.runs, args.pg_url, progress=say)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['events']} events")
    for kind in ("sqlite", "postgresql"):
        if kind in result:
            r = result[kind]
            print(
                f"{kind:>10}: median {r['median_events_per_s']:,.0f} events/s, "
                f"{r['median_cpu_seconds']:.2f} s CPU in the indexing process"
            )


if __name__ == "__main__":
    main()
