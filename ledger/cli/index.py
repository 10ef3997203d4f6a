"""`ledger index`: catch the read model up with the chain once, or follow it."""

from __future__ import annotations

import json
import os
import signal
import threading
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ledger.cli.common import (
    DEFAULT_STATE,
    CliError,
    DeploymentFile,
    JsonOpt,
    RpcUrl,
    StateDir,
    console,
    out,
    print_json,
    rpc_and_deployment,
)


def index_cmd(
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL (default: DATABASE_URL, else SQLite at <state dir>/node.db)."
        ),
    ] = None,
    follow: Annotated[bool, typer.Option(help="Keep following new blocks.")] = False,
    confirmations: Annotated[
        int, typer.Option(min=0, help="Blocks to stay behind the head (0 for QBFT and anvil).")
    ] = 0,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls (--follow).")] = 1.0,
    to_block: Annotated[
        int | None, typer.Option(min=0, help="Stop at this block (default: the head).")
    ] = None,
    check: Annotated[
        bool, typer.Option(help="Compare every aggregate with the contract views afterwards.")
    ] = False,
    max_span: Annotated[
        int, typer.Option(min=1, help="Most blocks asked for in one eth_getLogs.")
    ] = 50_000,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """Index the registry's and the ledger's events into the SQL read model (migrating it first).

    One transaction per block range, so it is safe to stop at any moment (even kill -9).

    A reorg is rolled back to the common ancestor and indexed again.
    """
    from sqlalchemy.engine import make_url

    from ledger.indexer import Indexer, IndexerError
    from ledger.ingest.spans import INITIAL_SPAN
    from ledger.store.db import database_url as resolve_url
    from ledger.store.db import make_engine

    url, deployment = rpc_and_deployment(rpc_url, deployment_file, state_dir)
    db_url = resolve_url(database_url, state_dir / "node.db")
    shown_db = make_url(db_url).render_as_string(hide_password=True)
    engine = make_engine(db_url, writer=True)
    ix = Indexer(
        engine,
        url,
        deployment,
        confirmations=confirmations,
        span=min(INITIAL_SPAN, max_span),
        max_span=max_span,
    )
    try:
        if follow:
            _follow(ix, poll_interval, as_json, shown_db)
            return
        report = _catch_up(ix, as_json, to_block)
        report["database"] = shown_db
        if check:
            from ledger.chain.client import LedgerClient

            with LedgerClient(url, ix.deployment) as client:
                mismatches = ix.check_consistency(client)
            report["mismatches"] = [asdict(m) for m in mismatches]
        _report(report, as_json)
        if check and report["mismatches"]:
            raise typer.Exit(1)
    except IndexerError as exc:
        raise CliError(str(exc)) from exc
    finally:
        ix.close()
        engine.dispose()


def _catch_up(ix: Any, as_json: bool, to_block: int | None = None) -> dict[str, Any]:
    from ledger.ingest.heap import resident_mb

    if as_json:
        res = ix.catch_up(to_block)
    else:
        columns = (
            TextColumn("indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("blocks, {task.fields[events]:,} events"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("index", total=None, events=0)

            def show(p: Any) -> None:
                total = max(1, p.target - p.start_block + 1)
                done = p.block - p.start_block + 1
                bar.update(task, total=total, completed=done, events=p.events)

            res = ix.catch_up(to_block, progress=show)
    return {
        "from_block": res.start_block,
        "last_block": res.last_block,
        "events": res.events,
        "seconds": round(res.seconds, 3),
        "events_per_s": round(res.events_per_s),
        "ranges": res.ranges,
        "refused_ranges": res.refused_ranges,
        "oversized_ranges": res.oversized_ranges,
        "reorgs": res.reorgs,
        "rolled_back_events": res.rolled_back_events,
        "peak_rss_mb": resident_mb(),
    }


def _report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    out.print(
        f"indexed to block {report['last_block']}: {report['events']:,} events in "
        f"{report['seconds']}s ({report['events_per_s']:,}/s), {report['reorgs']} reorgs "
        f"-> {report['database']}"
        + (f"; peak memory {report['peak_rss_mb']} MB" if report.get("peak_rss_mb") else "")
    )
    if "mismatches" in report:
        if not report["mismatches"]:
            out.print("consistent with the chain: every aggregate matches the contract views")
        for m in report["mismatches"]:
            out.print(
                f"[red]mismatch[/red] {m['kind']} {m['key']} {m['field']}: "
                f"database {m['db']}, chain {m['chain']}"
            )


def _follow(ix: Any, poll_interval: float, as_json: bool, shown_db: str) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def show(p: Any) -> None:
        line = {"block": p.block, "target": p.target, "events": p.events}
        if as_json:
            print(json.dumps(line), flush=True)
        else:
            console.print(f"block {p.block} ({p.events:,} events this round)")

    if not as_json:
        console.print(f"following {ix.rpc.url} into {shown_db} (pid {os.getpid()}); Ctrl-C stops")
    ix.follow(poll_interval, stop=stop, progress=show)


def register(app: typer.Typer) -> None:
    app.command("index")(index_cmd)
