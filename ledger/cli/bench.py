"""`ledger bench`: the DESIGN §8 figures, medians with their spread; --json for machines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ledger.cli.common import JsonOpt, console, out


def bench_cmd(
    quick: Annotated[
        bool, typer.Option(help="Small sizes, one run each (under 2 minutes).")
    ] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON here.")
    ] = None,
    memory_events: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Instead of the suite: the peak memory of `ledger index` over a history of this "
            "many events (1000000 takes about 15 minutes).",
        ),
    ] = None,
    interval_mining: Annotated[
        bool,
        typer.Option(
            help="Instead of the suite: recording with 1 s and 2 s blocks on the production-like "
            "chain beside automine (records/s, p50/p99 latency, share of the block gas limit "
            "used while a backlog exists; about 4 minutes, --quick about 2)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Benchmark gas, sustained recording, indexer catch-up, audit replay and crypto on a fresh
    local anvil (and PostgreSQL when TEST_DATABASE_URL or DATABASE_URL is set)."""
    with console.status("benchmarking") as st:
        if interval_mining:
            from ledger.bench import interval

            result = interval.run(quick=quick, progress=lambda msg: st.update(msg))
        elif memory_events is not None:
            from ledger.bench import memory

            result = memory.run(memory_events, progress=lambda msg: st.update(msg))
        else:
            from ledger.bench.suite import run

            result = run(quick=quick, progress=lambda msg: st.update(f"benchmarking: {msg}"))
    text = json.dumps(result, indent=1)
    if out_file is not None:
        out_file.write_text(text + "\n", encoding="utf-8")
    if as_json:
        out.print_json(text)
        return
    if memory_events is not None:
        _memory_table(result)
        return
    if interval_mining:
        _interval_table(result)
        return
    t = Table(title=f"ledger bench ({result['mode']}, {result['seconds']} s)")
    for col in ("figure", "median", "spread", "target"):
        t.add_column(col)
    rec, idx, aud, cr = result["recording"], result["indexer"], result["audit"], result["crypto"]
    gas3 = next(
        r for r in result["gas"] if (r["tranches"], r["batch"], r["borrower"]) == (3, 1, "new")
    )
    t.add_row(
        "gas, 3 tranches, new borrower, single tx", f"{gas3['gas_per_loan']:,}", "", "≤ 150,000"
    )
    one = rec["one_per_tx"]
    _median_row(t, f"recording, records/s ({rec['per_tx']} per tx)", rec, "records_per_s", "≥ 300")
    _median_row(t, "recording, records/s (1 per tx)", one, "records_per_s", "")
    t.add_row(
        "recording vs transact() loop",
        f"{rec['median_ratio_to_transact_loop']}× ({one['median_ratio_to_transact_loop']}×)",
        "",
        "≥ 10×",
    )
    t.add_row(
        "recording p50 / p99 latency ms",
        f"{rec['median_latency_p50_ms']} / {rec['median_latency_p99_ms']} "
        f"({one['median_latency_p50_ms']} / {one['median_latency_p99_ms']})",
        "",
        "",
    )
    t.add_row(
        "recording success rate",
        f"{rec['success_rate']:.0%} ({one['success_rate']:.0%})",
        "",
        "100%",
    )
    for kind in ("sqlite", "postgresql"):
        if kind in idx:
            t.add_row(
                f"indexer into {kind}, events/s",
                str(idx[kind]["median_events_per_s"]),
                "",
                "≥ 2,000",
            )
    _median_row(t, "audit replay, records/s", aud, "records_per_s", "≥ 2,000")
    a = result["api"]
    n = result["nodes"]
    spread = [r["batched"]["records_per_s"] for r in n["runs"]]
    t.add_row(
        f"through the platform node, batched ({n['per_request']}/request), records/s",
        str(n["median_batched_records_per_s"]),
        str([min(spread), max(spread)]),
        "≥ 300",
    )
    t.add_row(
        "  vs the chain path in the same run",
        f"{n['median_ratio_to_chain_path']:.0%} of {n['median_chain_path_records_per_s']}/s",
        "",
        "≥ 50%",
    )
    t.add_row(
        f"single-loan requests, {n['single_clients']} clients: records/s, p99 ms",
        f"{n['median_single_records_per_s']}, {n['median_single_p99_ms']}",
        "",
        "≥ 100, < 1,000",
    )
    idle, rss = n["median_idle_cpu_pct"], n["max_rss_peak_mb"]
    t.add_row("idle node, % of a core (busiest)", f"{max(idle.values())}", "", "≤ 0.5")
    t.add_row("node peak RSS MB, batched run (largest)", f"{max(rss.values())}", "", "< 200")
    for c in (1, 8, 32):
        _exposure_row(t, c, a["loans_indexed"], a[f"exposure_{c}_client"], "")
    g = result.get("exposure_growth", {})
    for step in g.get("steps", []):
        for c in (1, 8, 32):
            q = step.get(f"{c}_client")
            if q:
                _exposure_row(t, c, step["loans"], q, " (PostgreSQL)")
    if "memory" in idx:
        t.add_row(
            f"indexer peak RSS MB, {idx['memory']['events']:,} events",
            str(idx["memory"]["peak_rss_mb"]),
            "",
            "bounded",
        )
    _median_row(t, "EIP-712 signs/s", cr, "signs_per_s", "")
    _median_row(t, "EIP-712 recovers/s", cr, "recovers_per_s", "")
    out.print(t)
    for note in result.get("not_measured", []):
        out.print(f"[yellow]not measured[/yellow]: {note}")
    if "not_measured" in g:
        out.print(f"[yellow]exposure growth not measured[/yellow]: {g['not_measured']}")


def _median_row(t: Table, figure: str, figures: dict, unit: str, target: str) -> None:
    t.add_row(figure, str(figures[f"median_{unit}"]), str(figures[f"spread_{unit}"]), target)


def _exposure_row(t: Table, clients: int, loans: int, q: dict, where: str) -> None:
    t.add_row(
        f"exposure query p50 / p99 ms, {clients} client(s), {loans:,} loans{where}",
        f"{q['p50_ms']} / {q['p99_ms']}",
        ", ".join(str(p) for p in q.get("runs_p99_ms", [])),
        "p99 ≤ 10 (8 clients, 100k loans)" if clients == 8 and where else "",
    )


def _memory_table(r: dict) -> None:
    h = r["history"]
    t = Table(title=f"ledger index over {r['events']:,} events ({r['database']})")
    t.add_column("figure")
    t.add_column("measured")
    t.add_row("history", f"{h['quiet_blocks']:,} empty blocks, then {h['loans']:,} co-loans "
              f"and {h['repayments']:,} repayments in {h['blocks']:,} blocks "
              f"(built in {h['seconds']} s)")  # fmt: skip
    t.add_row("catch-up", f"{r['seconds']} s, {r['events_per_s']:,} events/s")
    t.add_row("peak resident memory", f"{r['peak_rss_mb']} MB")
    t.add_row(
        "peak in the first / second half",
        f"{r['peak_rss_mb_first_half']} / {r['peak_rss_mb_second_half']} MB",
    )
    t.add_row("MB at each tenth", " ".join(str(x) for x in r["rss_mb_by_elapsed_tenth"]))
    out.print(t)


def _interval_table(r: dict) -> None:
    t = Table(title="recording on interval-mined chains (target: ≥ 80% of the gas limit used)")
    for col in ("mining", "records/s", "p50 / p99 ms", "loans/block allowed / got", "gas used"):
        t.add_column(col)
    for run in r["runs"]:
        t.add_row(
            run["mining"],
            f"{run['records_per_s']}",
            f"{run['latency_p50_ms']} / {run['latency_p99_ms']}",
            f"{run['loans_per_block_allowed']} / {run['loans_per_block_max']}",
            f"{run['gas_limit_used_while_backlog']:.0%}",
        )
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)
