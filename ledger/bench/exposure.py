"""Exposure-query latency as the read model grows: 10k -> 100k -> 1M loans in PostgreSQL.

A real consortium runs (anvil, the DEV-ONLY members, the five nodes, each node's read model in
its own PostgreSQL schema). Recording a million co-loans through anvil would take far longer
than the whole benchmark may, so the growth is *synthesised*: rows shaped exactly as the indexer
writes them (a loan, its three tranches, the borrower's maintained `borrower_exposure` and
`borrower_lenders` rows) are COPYed into bank-a's schema, five loans per borrower, and the
tables analysed. The queries themselves take the node's real path: HTTP, bearer token, the
caller's member record and the chain head (one JSON-RPC batch), then the read model. Each
figure comes with the node's CPU time per query (see ledger.bench.api).

    python -m ledger.bench.exposure --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledger.domain import LoanStatus, Product, RepaymentType

LOANS_PER_BORROWER = 5
PRINCIPAL = 300_000  # fen; tranches 120,000 / 90,000 / 90,000


def _b32(tag: bytes, n: int) -> bytes:
    return hashlib.sha256(tag + n.to_bytes(8, "big")).digest()


def _copy(conn: Any, table: sa.Table, rows: Iterator[dict[str, Any]]) -> None:
    cols = [c.name for c in table.columns]
    with (
        conn.cursor() as cur,
        cur.copy(f'COPY "{table.name}" ({", ".join(cols)}) FROM STDIN') as cp,
    ):
        for r in rows:
            cp.write_row(tuple(r[c] for c in cols))


def grow(db_url: str, start: int, stop: int, parties: Sequence[str], block: int) -> None:
    """Add synthetic loans number `start`..`stop-1` (whole borrowers of five loans each)."""
    from ledger.store.db import make_engine
    from ledger.store.models import TABLES

    loans, tranches, be, bl = (
        TABLES[n] for n in ("loans", "tranches", "borrower_exposure", "borrower_lenders")
    )
    shares = [PRINCIPAL * 4 // 10, PRINCIPAL * 3 // 10, PRINCIPAL * 3 // 10]
    platform = parties[0]
    b0, b1 = start // LOANS_PER_BORROWER, stop // LOANS_PER_BORROWER

    def loan_rows() -> Iterator[dict[str, Any]]:
        for n in range(start, stop):
            yield {
                "loan_id": _b32(b"loan", n), "borrower_key": _b32(b"borrower", n // 5),
                "platform": platform, "product": int(Product.CONSUMER), "principal": PRINCIPAL,
                "apr_bps": 1_200, "term_days": 180, "repayment": int(RepaymentType.INSTALMENT),
                "line_id": None, "document_digest": bytes(32), "schedule_digest": None,
                "deadline": 0,
                "policy_version": 1, "outstanding": PRINCIPAL, "status": int(LoanStatus.ACTIVE),
                "block_number": block, "tx_hash": _b32(b"tx", n), "log_index": 0,
            }  # fmt: skip

    def tranche_rows() -> Iterator[dict[str, Any]]:
        for n in range(start, stop):
            lid = _b32(b"loan", n)
            for i, (who, amount) in enumerate(zip(parties, shares, strict=True)):
                yield {
                    "loan_id": lid, "idx": i, "lender": who, "amount": amount,
                    "signature": bytes(65), "outstanding": amount, "principal_repaid": 0,
                    "interest_paid": 0, "block_number": block,
                }  # fmt: skip

    def exposure_rows() -> Iterator[dict[str, Any]]:
        for b in range(b0, b1):
            yield {"borrower_key": _b32(b"borrower", b), "consumer": PRINCIPAL * 5,
                   "business": 0, "institutions": len(parties)}  # fmt: skip

    def lender_rows() -> Iterator[dict[str, Any]]:
        for b in range(b0, b1):
            for i, (who, amount) in enumerate(zip(parties, shares, strict=True)):
                yield {
                    "borrower_key": _b32(b"borrower", b), "lender": who, "member_index": i + 1,
                    "open_records": 5, "loan_outstanding": amount * 5, "line_limit": 0,
                }  # fmt: skip

    engine = make_engine(db_url, writer=True)
    try:
        raw = engine.raw_connection()
        try:
            conn = raw.driver_connection
            for table, rows in (
                (loans, loan_rows()),
                (tranches, tranche_rows()),
                (be, exposure_rows()),
                (bl, lender_rows()),
            ):
                _copy(conn, table, rows)
            conn.commit()
            conn.autocommit = True
            for t in (loans, tranches, be, bl):
                conn.execute(f'ANALYZE "{t.name}"')
        finally:
            raw.close()
    finally:
        engine.dispose()


def run(
    pg_url: str | None,
    steps: Sequence[int] = (10_000, 100_000, 1_000_000),
    queries: int = 1_000,
    progress: Callable[[str], None] | None = None,
    workers: int = 1,
    runs: int = 1,
) -> dict[str, Any]:
    """p50/p99 of GET /v1/borrowers/{key}/exposure on bank-a's node, one client at each step,
    and 1, 8 and 32 clients at the step nearest 100,000 loans, there `runs` times each: the
    median run's figures (by p99), every run's p99 beside them."""
    if pg_url is None:
        return {"not_measured": "no PostgreSQL (set TEST_DATABASE_URL or DATABASE_URL)"}
    from ledger.bench.api import _queries, measure, per_client, wait_indexed
    from ledger.localnet import nodes
    from ledger.localnet.chains import LocalChain
    from ledger.localnet.consortium import bootstrap

    say = progress or (lambda _m: None)
    with tempfile.TemporaryDirectory() as tmp, LocalChain("anvil") as chain:
        state = Path(tmp)
        cx = bootstrap(chain.url)
        cx.deployment.save(state / "deployment.json")
        # this run's schemas only: another run on the same server keeps its own (and an older
        # bench's cleanup, which dropped every `bench_exposure_` schema, leaves these alone)
        prefix = f"bench{os.getpid()}_exposure_"
        configs = nodes.write_configs(state, chain.url, database_url=pg_url, schema_prefix=prefix)
        bank_cfg = json.loads(configs["bank-a"].read_text())
        bank_db = bank_cfg["database_url"]
        if workers != 1:  # bank-a's HTTP processes (its `workers` setting)
            configs["bank-a"].write_text(json.dumps({**bank_cfg, "workers": workers}))
        infos = nodes.start(state, configs)
        bank = next(i for i in infos if i.name == "bank-a")
        url = bank.url
        parties = [cx.platform.address, cx.lenders[0].address, cx.lenders[1].address]
        block = cx.plat.w3.eth.block_number
        out: dict[str, Any] = {
            "database": "postgresql", "loans_per_borrower": 5, "workers": workers, "steps": [],
        }  # fmt: skip
        try:
            wait_indexed([url], cx.lenders[0], block, 60.0)  # its tables hold the real history
            have = 0
            eight_at = min(steps, key=lambda s: abs(s - 100_000))  # 8 clients at ~100k loans
            for target in steps:
                say(f"exposure read model: growing to {target:,} loans")
                t0 = time.perf_counter()
                grow(bank_db, have, target, parties, block)
                grow_s = time.perf_counter() - t0
                have = target
                borrowers = target // LOANS_PER_BORROWER
                step = max(1, borrowers // 1_000)
                keys = ["0x" + _b32(b"borrower", b).hex() for b in range(0, borrowers, step)]
                row: dict[str, Any] = {"loans": target, "insert_s": round(grow_s, 1)}
                for clients in (1, 8, 32) if target == eight_at else (1,):
                    say(f"exposure queries at {target:,} loans, {clients} client(s)")
                    _queries(url, cx.lenders[0], keys, min(200, queries), clients)  # warm
                    n = per_client(queries, clients)
                    repeats = runs if target == eight_at else 1
                    row[f"{clients}_client"] = median_run(
                        [measure(url, bank.pid, cx.lenders[0], keys, n, clients)
                         for _ in range(repeats)]
                    )  # fmt: skip
                out["steps"].append(row)
            out["target_p99_ms"] = 10
            return out
        finally:
            nodes.down(state)
            cx.reset_clients()
            _drop_schemas(pg_url, prefix)


def median_run(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median p99 (its own p50, mean and CPU with it, so the figures of one
    row come from one run), and every run's p99 when there were several."""
    ordered = sorted(measured, key=lambda m: m["p99_ms"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    if len(measured) > 1:
        out["runs_p99_ms"] = [m["p99_ms"] for m in measured]
    return out


def _drop_schemas(pg_url: str, prefix: str) -> None:
    from ledger.store.db import database_url

    engine = sa.create_engine(database_url(pg_url))
    try:
        with engine.begin() as conn:
            names = (
                conn.execute(
                    sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                    {"p": prefix.replace("_", "\\_") + "%"},
                )
                .scalars()
                .all()
            )
            for s in names:
                conn.execute(sa.text(f'DROP SCHEMA "{s}" CASCADE'))
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--workers", type=int, default=1, help="bank-a's HTTP processes")
    ap.add_argument("--runs", type=int, default=3, help="runs at the ~100k step")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    pg = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    steps = [int(s) for s in a.steps.split(",")]
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    out = run(pg, steps, a.queries, progress=say, workers=a.workers, runs=a.runs)
    print(json.dumps(out, indent=None if a.json else 2))


if __name__ == "__main__":
    main()
