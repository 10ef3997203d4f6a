"""`ledger audit`: verify the whole on-chain history from an RPC URL and the deployment file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

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


def audit_cmd(
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    block: Annotated[
        int | None, typer.Option(help="Audit as of this block (default: head).")
    ] = None,
    documents: Annotated[
        Path | None,
        typer.Option(
            help="Document archive: one file per record named by its 0x id, or with "
            "--document-keys a node's encrypted document store."
        ),
    ] = None,
    document_keys: Annotated[
        Path | None, typer.Option(help="Key directory that opens an encrypted document store.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="A node's read model to check against the chain (SQLAlchemy URL)."),
    ] = None,
    schedules_db: Annotated[
        str | None,
        typer.Option(
            help="A node database holding loan schedules (the platform's or a bank's), to "
            "recompute each schedule's digest and IRR APR (SQLAlchemy URL)."
        ),
    ] = None,
    html_file: Annotated[Path | None, typer.Option("--html", help="Write an HTML report.")] = None,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """Verify the complete history: bytecode, signatures, rules, state, arithmetic, documents.
    Exit code 0 only when there is no violation."""
    from ledger.audit import run_audit

    url, dep = rpc_and_deployment(rpc_url, deployment_file, state_dir)
    if rpc_url is None and deployment_file is None:
        # the local consortium: check the auditor node's read model and the platform node's
        # document store unless told otherwise
        local = _local_node_inputs(state_dir)
        database_url = database_url or local.get("database_url")
        schedules_db = schedules_db or local.get("schedules_url")
        if documents is None and "document_dir" in local:
            documents, document_keys = Path(local["document_dir"]), Path(local["document_key_dir"])
    if documents is not None and not documents.is_dir():
        raise CliError(f"--documents {documents} is not a directory")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("auditing", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        report = run_audit(
            url,
            dep,
            block=block,
            documents_dir=documents,
            document_keys=document_keys,
            database_url=database_url,
            schedules_url=schedules_db,
            progress=progress,
        )
    if html_file is not None:
        html_file.write_text(report.to_html(), encoding="utf-8")
    if as_json:
        print_json(report.to_json())
    else:
        _print_summary(report, html_file)
    if not report.ok:
        raise typer.Exit(1)


def _local_node_inputs(state_dir: Path) -> dict[str, str]:
    """From `ledger up`'s node configs: the auditor's database, the platform's document store
    and database (the loan schedules it proposed)."""
    found: dict[str, str] = {}
    for name, keys in (
        ("auditor", ("database_url",)),
        ("platform", ("document_dir", "document_key_dir")),
    ):
        path = state_dir / "nodes" / name / "config.json"
        if path.exists():
            cfg = json.loads(path.read_text(encoding="utf-8"))
            found.update({k: str(cfg[k]) for k in keys if cfg.get(k)})
            if name == "platform" and cfg.get("database_url"):
                found["schedules_url"] = str(cfg["database_url"])  # the schedules it proposed
    return found


def _print_summary(report, html_file: Path | None) -> None:
    table = Table(
        title=f"audit of ledger {report.ledger} (chain {report.chain_id}, "
        f"blocks {report.from_block}-{report.to_block})"
    )
    for col in ("check", "run", "covered", "violations", "note"):
        table.add_column(col)
    for c in report.checks.values():
        n = sum(1 for v in report.violations if v.check == c.name)
        table.add_row(
            c.name, "yes" if c.run else "no", str(c.items), f"[red]{n}[/red]" if n else "0", c.note
        )
    out.print(table)
    for v in report.violations[:50]:
        out.print(
            f"[red]{v.check}[/red] {v.code}: {v.message}"
            + (f" (record {v.record})" if v.record else "")
            + (f" at {v.where}" if v.where else "")
        )
    if len(report.violations) > 50:
        out.print(f"... and {len(report.violations) - 50} more (use --json)")
    out.print(
        "[green]no violations[/green]"
        if report.ok
        else f"[red]{len(report.violations)} violations[/red]"
    )
    if html_file is not None:
        out.print(f"HTML report: {html_file}")


def evidence_cmd(
    loan_id: Annotated[str, typer.Argument(help="The loan's id: 0x + 64 hex digits.")],
    rpc_url: RpcUrl = None,
    deployment_file: DeploymentFile = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the evidence here.")] = None,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """Gather the evidence for one loan: transaction, block, receipt, log, signatures with their
    recovered signers, document digest and a storage proof of the borrower's exposure."""
    from ledger.evidence import EvidenceError, collect

    try:
        lid = bytes.fromhex(loan_id.removeprefix("0x"))
    except ValueError:
        lid = b""
    if len(lid) != 32:
        raise CliError("LOAN_ID must be 0x followed by 64 hex digits")
    url, dep = rpc_and_deployment(rpc_url, deployment_file, state_dir)
    try:
        ev = collect(url, dep, lid)
    except EvidenceError as exc:
        raise CliError(str(exc)) from None
    text = json.dumps(ev, indent=2)
    if out_file is not None:
        out_file.write_text(text + "\n", encoding="utf-8")
    if as_json or out_file is None:
        out.print_json(text)
    else:
        out.print(f"evidence for {ev['loan_id']} written to {out_file}")


def verify_evidence_cmd(
    file: Annotated[Path, typer.Argument(help="Evidence file from `ledger evidence`.")],
    as_json: JsonOpt = False,
) -> None:
    """Check a piece of evidence offline, without any node. Exit code 0 only when it holds."""
    from ledger.evidence import EvidenceError, verify

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {file}: {exc}") from None
    try:
        verdict = verify(data)
    except (EvidenceError, KeyError, ValueError, TypeError) as exc:
        raise CliError(f"malformed evidence: {exc}") from None
    if as_json:
        print_json({"ok": verdict.ok, "checks": verdict.checks, "problems": verdict.problems})
    else:
        for name, ok in verdict.checks.items():
            out.print(f"{'[green]ok[/green]' if ok else '[red]FAIL[/red]'}  {name}")
        for p in verdict.problems:
            out.print(f"[red]{p}[/red]")
    if not verdict.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_cmd)
    app.command("evidence")(evidence_cmd)
    app.command("verify-evidence")(verify_evidence_cmd)
