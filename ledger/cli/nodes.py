"""`ledger up|status|down|token|demo`: the local consortium of five nodes. DEV-ONLY keys.

`up` starts the chain (or uses `--rpc-url`), deploys and admits the members once, has the banks
attest capital, then starts the five node processes and waits until each is ready. Everything
is recorded in the state directory, which is how `status`, `token`, `demo` and `down` find it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ledger.chain.connect import DEV_CHAIN_ID
from ledger.cli.common import (
    DEFAULT_STATE,
    CliError,
    JsonOpt,
    StateDir,
    chain_id_at,
    console,
    out,
    print_json,
)
from ledger.cli.consortium import (
    deployed,
    ensure_nodes,
    is_production_like,
    print_nodes,
    rpc_url_file,
)
from ledger.cli.consortium import summary as consortium_summary


def up_cmd(
    kind: Annotated[str, typer.Option("--chain", "--kind", help="anvil or hardhat")] = "anvil",
    rpc_url: Annotated[
        str | None,
        typer.Option(
            help="Use this chain instead of starting one (chain id 31337, or any with "
            "--profile production-like --keystores DIR)."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Node database URL instead of one SQLite file each; '{node}' in it "
            "is replaced by the node's name."
        ),
    ] = None,
    profile: Annotated[
        str,
        typer.Option(
            help="dev: anvil or Hardhat with automine and DEV-ONLY keys; production-like: "
            "anvil with interval mining, genesis funding, keystores and dev methods refused"
        ),
    ] = "dev",
    block_time: Annotated[
        float, typer.Option(min=0.5, help="production-like: seconds between blocks")
    ] = 1.0,
    keystores: Annotated[
        Path | None,
        typer.Option(
            help="production-like on --rpc-url: a directory of member keystores (governor, "
            "platform, bank-a, bank-b, bank-c, auditor, guarantor, keyservice .json; password in "
            "LEDGER_KEY_PASSWORD or its PASSWORD file)"
        ),
    ] = None,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """Start the local consortium: chain, contracts, six members (a platform, three banks, an
    auditor, a guarantor), their six nodes."""
    from ledger.chain.deployment import Deployment
    from ledger.keys import DEV_KEYS_WARNING
    from ledger.localnet import nodes
    from ledger.localnet.consortium import bootstrap
    from ledger.localnet.detached import up_detached

    if kind not in ("anvil", "hardhat"):
        raise CliError(f"--chain must be anvil or hardhat, not {kind!r}")
    if profile not in ("dev", "production-like"):
        raise CliError(f"--profile must be dev or production-like, not {profile!r}")
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir = state_dir.resolve()
    if profile == "production-like":
        if kind != "anvil" or (rpc_url is None) != (keystores is None):
            raise CliError(
                "--profile production-like starts its own anvil, or takes --rpc-url with "
                "--keystores (no --chain)"
            )
        from ledger.cli.profile import up_production_like

        up_production_like(state_dir, block_time, database_url, as_json, rpc_url, keystores)
        return
    console.print(f"[yellow]{DEV_KEYS_WARNING}[/yellow]")
    if rpc_url is None:
        with console.status(f"starting {kind}"):
            url = up_detached(kind, None, state_dir=state_dir).url  # type: ignore[arg-type]
        rpc_url_file(state_dir).unlink(missing_ok=True)
    else:
        url = rpc_url.rstrip("/")
        if chain_id_at(url) != DEV_CHAIN_ID:
            raise CliError(f"DEV-ONLY keys are for chain id {DEV_CHAIN_ID} only; {url} is not")
        rpc_url_file(state_dir).write_text(url + "\n")
    dep_file = state_dir / "deployment.json"
    fresh = not (dep_file.exists() and deployed(url, Deployment.load(dep_file)))
    if fresh:
        with console.status("compiling, deploying, admitting members, attesting capital"):
            cx = bootstrap(url, guarantor=True)
        cx.deployment.save(dep_file)
        nodes.down(state_dir)  # nodes of an older deployment must go
    ensure_nodes(state_dir, url, database_url=database_url, fresh=fresh)
    summary = consortium_summary(state_dir)
    if as_json:
        print_json(summary)
        return
    print_nodes(summary)
    out.print("next: ledger demo    stop: ledger down    token: ledger token bank-a")


def status_cmd(state_dir: StateDir = DEFAULT_STATE, as_json: JsonOpt = False) -> None:
    """The chain, the six nodes and the key service. Exit code 1 unless everything is running
    and ready."""
    summary = consortium_summary(state_dir)
    ok = (
        summary["rpc_url"] is not None
        and bool(summary["nodes"])
        and all(n["ready"] for n in summary["nodes"])
        and bool(summary["key_service"] and summary["key_service"]["ready"])
    )
    summary["ready"] = ok
    if as_json:
        print_json(summary)
    elif not summary["nodes"] and summary["chain"] is None:
        out.print("no consortium running (ledger up)")
    else:
        print_nodes(summary)
    if not ok:
        raise typer.Exit(1)


def down_cmd(state_dir: StateDir = DEFAULT_STATE, as_json: JsonOpt = False) -> None:
    """Stop the nodes, the key service and the chain; no process is left behind."""
    from ledger.localnet import nodes
    from ledger.localnet.detached import down

    keys = nodes.key_service_status(state_dir) if state_dir.is_dir() else None
    stopped_keys = bool(keys and keys["running"])
    stopped_nodes = nodes.down(state_dir) if state_dir.is_dir() else 0
    stopped_chain = down(state_dir)
    rpc_url_file(state_dir).unlink(missing_ok=True)
    (state_dir / "profile").unlink(missing_ok=True)
    (state_dir / "keystores").unlink(missing_ok=True)
    if as_json:
        print_json(
            {
                "nodes_stopped": stopped_nodes,
                "key_service_stopped": stopped_keys,
                "chain_stopped": stopped_chain,
            }
        )
    else:
        out.print(
            f"stopped {stopped_nodes} nodes"
            + (", the key service" if stopped_keys else "")
            + (" and the chain" if stopped_chain else "")
        )


def _dev_urls(state_dir: Path) -> dict[str, str]:
    """The node URLs of this dev consortium, refusing anything but the local dev chain."""
    from ledger.chain.deployment import Deployment
    from ledger.localnet import nodes

    dep_file = state_dir / "deployment.json"
    infos = nodes.recorded(state_dir)
    summary = consortium_summary(state_dir)
    if not dep_file.exists() or not infos or summary["rpc_url"] is None:
        raise CliError("no local consortium running here (ledger up)")
    if (
        Deployment.load(dep_file).chain_id != DEV_CHAIN_ID
        or chain_id_at(summary["rpc_url"]) != DEV_CHAIN_ID
    ):
        raise CliError(f"DEV-ONLY tokens are for the local dev chain (id {DEV_CHAIN_ID}) only")
    return {i.name: i.url for i in infos}


def token_cmd(
    member: Annotated[
        str, typer.Argument(help="platform, bank-a, bank-b, bank-c, auditor, guarantor, governor")
    ],
    node: Annotated[
        str | None, typer.Option(help="Node to sign in to (default: the member's).")
    ] = None,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """Print a bearer token for a member of this DEV-ONLY consortium (signs in with its dev key)."""
    from ledger.keys import DEV_KEYS_WARNING, dev_account
    from ledger.localnet import nodes
    from ledger.nodeclient import SignInError, sign_in

    try:
        m = nodes.member(member)
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from None
    urls = _dev_urls(state_dir)
    target = node or (m.name if m.name in urls else None)
    if target is None or target not in urls:
        raise CliError(f"{member} has no node of its own: pass --node ({', '.join(urls)})")
    console.print(f"[yellow]{DEV_KEYS_WARNING}[/yellow]")
    try:
        tok = sign_in(urls[target], dev_account(m.key_role, m.key_index))
    except SignInError as exc:
        raise CliError(f"sign-in to {target} refused: {exc}") from None
    if as_json:
        print_json({**tok, "node": target, "url": urls[target]})
    else:
        out.print(tok["access_token"], highlight=False)


def demo_cmd(state_dir: StateDir = DEFAULT_STATE, as_json: JsonOpt = False) -> None:
    """Run the seed story against the running consortium and show what happened."""
    from ledger.keys import DEV_KEYS_WARNING
    from ledger.localnet.demo import run_story

    if is_production_like(state_dir):
        from ledger.cli.profile import keystore_members
        from ledger.localnet import nodes
        from ledger.localnet.prodlike import PRODUCTION_LIKE_DELAY

        summary = consortium_summary(state_dir)
        urls = {i.name: i.url for i in nodes.recorded(state_dir)}
        if not urls or summary["rpc_url"] is None:
            raise CliError("no local consortium running here (ledger up)")
        _, accounts = keystore_members(state_dir)
        with console.status("running the story (the council waits out the timelock's delay)"):
            steps = run_story(
                urls,
                state_dir,
                accounts=accounts,
                rpc_url=summary["rpc_url"],
                delay_s=PRODUCTION_LIKE_DELAY,
            )
    else:
        console.print(f"[yellow]{DEV_KEYS_WARNING}[/yellow]")
        urls = _dev_urls(state_dir)
        with console.status("running the story"):
            steps = run_story(urls, state_dir)
    ok = all(s["ok"] for s in steps)
    if as_json:
        print_json({"ok": ok, "steps": steps})
    elif out.width >= 120:
        table = Table(title="the consortium story (DEV-ONLY members, synthetic borrowers)")
        for col in ("#", "who", "what", "expected", "outcome", ""):
            table.add_column(col, overflow="fold")
        for i, s in enumerate(steps, 1):
            mark = "[green]ok[/green]" if s["ok"] else "[red]UNEXPECTED[/red]"
            table.add_row(str(i), s["actor"], s["action"], s["expected"], s["outcome"], mark)
        out.print(table)
    else:  # a narrow terminal or a pipe: one block per step reads better than a squeezed table
        for i, s in enumerate(steps, 1):
            mark = "[green]ok[/green]" if s["ok"] else "[red]UNEXPECTED[/red]"
            out.print(f"{i:>2}. [bold]{s['actor']}[/bold] {s['action']}  {mark}")
            out.print(f"    expected: {s['expected']}", highlight=False)
            out.print(f"    outcome:  {s['outcome']}", highlight=False)
    if not ok:
        raise typer.Exit(1)


def keylog_cmd(
    url: Annotated[
        str | None, typer.Option(help="Key service URL (default: this dev consortium's).")
    ] = None,
    signer: Annotated[
        str | None,
        typer.Option(help="The key service's address (default: the dev key service's)."),
    ] = None,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """The auditor's check of the key service's derivation log: every row read (paged); the
    sequence, the hash chain and the service's signature on each row verified; derivations
    counted by member and purpose. Exit 1 on a gap, a broken link or a row it did not sign.
    Signs in as the DEV-ONLY auditor (chain id 31337 only)."""
    from collections import Counter

    from ledger.chain.deployment import Deployment
    from ledger.keyclient import KeyClient, KeyServiceError, check_log
    from ledger.keys import DEV_KEYS_WARNING, dev_account
    from ledger.localnet import nodes

    dep_file = state_dir / "deployment.json"
    if not dep_file.exists() or Deployment.load(dep_file).chain_id != DEV_CHAIN_ID:
        raise CliError(f"DEV-ONLY auditor key: the local dev chain (id {DEV_CHAIN_ID}) only")
    if url is None:
        keys = nodes.key_service_status(state_dir)
        if keys is None:
            raise CliError("no key service recorded here (ledger up)")
        url = keys["url"]
    console.print(f"[yellow]{DEV_KEYS_WARNING}[/yellow]")
    m = nodes.member("auditor")
    client = KeyClient(url, dev_account(m.key_role, m.key_index))
    try:
        rows = list(client.log())
    except KeyServiceError as exc:
        raise CliError(f"key service: {exc}") from None
    finally:
        client.close()
    problems = check_log(rows, signer or nodes.KEY_SERVICE.address)
    counts = Counter((r.member, r.purpose) for r in rows)
    report = {
        "ok": not problems,
        "rows": len(rows),
        "head": rows[-1].row_hash if rows else None,
        "problems": problems,
        "by_member_and_purpose": [
            {"member": k[0], "purpose": k[1], "count": n} for k, n in sorted(counts.items())
        ],
    }
    if as_json:
        print_json(report)
    else:
        out.print(f"{len(rows)} derivations, chain {'intact' if not problems else 'BROKEN'}")
        for p in problems:
            out.print(f"  {p}", highlight=False)
        for c in report["by_member_and_purpose"]:
            out.print(f"  {c['member']}  {c['purpose']:<12} {c['count']}", highlight=False)
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("up")(up_cmd)
    app.command("status")(status_cmd)
    app.command("down")(down_cmd)
    app.command("token")(token_cmd)
    app.command("demo")(demo_cmd)
    app.command("keylog")(keylog_cmd)
