"""The `ledger` command line: chains, compilation, deployment, gas report, local consortium."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ledger.cli.common import (
    DEFAULT_STATE,
    CliError,
    JsonOpt,
    RpcUrl,
    StateDir,
    console,
    local_chain_url,
    out,
    print_json,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Joint-lending consortium ledger.",
)
chain_app = typer.Typer(no_args_is_help=True, help="A local chain (anvil or Hardhat node).")
app.add_typer(chain_app, name="chain")


# ------------------------------------------------------------------ chain


@chain_app.command("up")
def chain_up(
    kind: Annotated[str, typer.Option(help="anvil or hardhat")] = "anvil",
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")
    ] = None,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """Start a local chain in the background (idempotent), bound to 127.0.0.1."""
    from ledger.localnet.detached import up_detached

    if kind not in ("anvil", "hardhat"):
        raise CliError(f"--kind must be anvil or hardhat, not {kind!r}")
    with console.status(f"starting {kind}"):
        info = up_detached(kind, port, state_dir=state_dir)  # type: ignore[arg-type]
    if as_json:
        print_json(asdict(info))
    else:
        out.print(f"{info.kind} running at {info.url} (chain id {info.chain_id}, pid {info.pid})")


@chain_app.command("down")
def chain_down(state_dir: StateDir = DEFAULT_STATE, as_json: JsonOpt = False) -> None:
    """Stop the local chain (anvil keeps its state for the next `up`)."""
    from ledger.localnet.detached import down

    stopped = down(state_dir)
    if as_json:
        print_json({"stopped": stopped})
    else:
        out.print("stopped" if stopped else "no chain was running")


@chain_app.command("status")
def chain_status(state_dir: StateDir = DEFAULT_STATE, as_json: JsonOpt = False) -> None:
    """Is the local chain running, and where. Exit code 1 when it is not."""
    from ledger.localnet.detached import status

    info = status(state_dir)
    if as_json:
        print_json({"running": info is not None, **(asdict(info) if info else {})})
    elif info is None:
        out.print("no chain running")
    else:
        out.print(f"{info.kind} running at {info.url} (chain id {info.chain_id}, pid {info.pid})")
    if info is None:
        raise typer.Exit(1)


# ------------------------------------------------------------------ compile / deploy


@app.command("compile")
def compile_cmd(
    force: Annotated[bool, typer.Option(help="Ignore the cache.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compile the contracts with py-solc-x (same standard-JSON input as Hardhat)."""
    from eth_utils import keccak

    from ledger.chain.compiler import compile_contracts

    with console.status("compiling"):
        result = compile_contracts(use_cache=not force)
    rows = []
    for name, c in sorted(result.project().items()):
        code = bytes.fromhex(c.deployed_bytecode.removeprefix("0x"))
        rows.append(
            {
                "contract": name,
                "source": c.source,
                "runtime_bytes": len(code),
                "runtime_keccak": "0x" + keccak(code).hex() if code else None,
            }
        )
    if as_json:
        print_json(
            {"solc": result.solc_version, "input_hash": result.input_hash, "contracts": rows}
        )
        return
    table = Table(title=f"solc {result.solc_version}")
    for col in ("contract", "source", "runtime bytes"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["contract"], r["source"], str(r["runtime_bytes"]))
    out.print(table)


@app.command("deploy")
def deploy_cmd(
    rpc_url: RpcUrl = None,
    keystore: Annotated[
        Path | None,
        typer.Option(
            help="Governor keystore (password from LEDGER_KEY_PASSWORD). "
            "Without it, the DEV-ONLY governor key is used, on a local chain only."
        ),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Deployment file to write.")
    ] = None,
    member: Annotated[
        list[str] | None,
        typer.Option(
            help="ROLE:ADDRESS:NAME of a first member (platform, lender, auditor), repeatable; "
            "with members, the registry is then handed to the council's timelock."
        ),
    ] = None,
    delay: Annotated[
        int,
        typer.Option(
            min=0,
            help="The timelock's delay in seconds (default 48 hours; at least 3600 except on the "
            "local dev chain or with --allow-short-delay).",
        ),
    ] = 48 * 3_600,
    chain_id: Annotated[
        int | None,
        typer.Option(help="The chain id the network must report (refused if it differs)."),
    ] = None,
    allow_short_delay: Annotated[
        bool,
        typer.Option(
            help="Accept a delay under one hour on a chain other than the local dev one "
            "(a test network: members get less time to see a change coming)."
        ),
    ] = False,
    state_dir: StateDir = DEFAULT_STATE,
    as_json: JsonOpt = False,
) -> None:
    """Deploy the registry, the ledger, the council and its timelock; admit the first members and
    hand the registry to the council; write the deployment file."""
    from ledger.chain.client import LedgerClient
    from ledger.chain.connect import ChainIdMismatch, check_chain_id, is_dev_chain, web3_for
    from ledger.chain.deployment import (
        MIN_DELAY,
        NotFunded,
        deploy,
        fund,
        hand_over,
        require_funded,
    )
    from ledger.domain import Role
    from ledger.keys import DEV_KEYS_WARNING, dev_account, load_keystore

    url = local_chain_url(rpc_url, state_dir)
    w3 = web3_for(url)
    reported = int(w3.eth.chain_id)
    if chain_id is not None and reported != chain_id:
        raise CliError(f"chain id mismatch: --chain-id {chain_id}, but {url} reports {reported}")
    if keystore is not None:
        governor = load_keystore(keystore)
        try:
            require_funded(w3, [governor.address])
        except NotFunded as exc:
            raise CliError(f"the deployer {exc}") from None
    else:
        if not is_dev_chain(reported):
            raise CliError(
                f"dev keys are for the local dev chain only; chain {reported}: pass --keystore"
            )
        if rpc_url is not None and not rpc_url.startswith(("http://127.", "http://localhost")):
            raise CliError("dev keys are for a local chain only: pass --keystore for " + rpc_url)
        console.print(f"[yellow]{DEV_KEYS_WARNING}[/yellow]")
        governor = dev_account("governor", 0)
        # on the local chain the first members get gas money too
        fund(url, [governor.address, *(m.split(":")[1] for m in member or [] if ":" in m)])
    roles = {"platform": Role.PLATFORM, "lender": Role.LENDER, "auditor": Role.AUDITOR}
    firsts = []
    for item in member or []:
        role, _, rest = item.partition(":")
        address, _, name = rest.partition(":")
        if role not in roles or not address.startswith("0x") or not name:
            raise CliError(f"--member {item!r}: ROLE:ADDRESS:NAME, ROLE one of {', '.join(roles)}")
        firsts.append((address, roles[role], name))
    dev_chain = is_dev_chain(reported)
    if not firsts and not dev_chain:
        raise CliError(
            f"no --member on chain id {reported}: the deployer would keep the registry (one key "
            "governing everything); give the first members with --member ROLE:ADDRESS:NAME"
        )
    if firsts and delay < MIN_DELAY and not dev_chain and not allow_short_delay:
        raise CliError(
            f"--delay {delay} is under the {MIN_DELAY} s floor on chain id {reported} (not the "
            "local dev chain); pass --allow-short-delay for a test network"
        )
    with console.status("deploying"):
        dep = deploy(url, governor)
        try:
            check_chain_id(w3, w3.eth.contract(address=dep.ledger, abi=_ledger_abi()), reported)
        except ChainIdMismatch as exc:
            raise CliError(str(exc)) from None
        if firsts:
            client = LedgerClient(url, dep, governor)
            for address, role, name in firsts:
                client.admit_member(address, role, name)
            client.close()
            hand_over(url, governor, dep, delay, allow_short_delay=allow_short_delay)
    if not firsts:
        console.print(
            "[bold red]DEV CHAIN ONLY: no --member given, so the deployer still owns the registry "
            "and alone can change the policy, admit, remove and unpause; admit the first members "
            "and hand it to the council (ledger.chain.deployment.hand_over)[/bold red]"
        )
    path = out_file or state_dir / "deployment.json"
    dep.save(path)
    if as_json:
        print_json({**dep.to_json(), "file": str(path)})
    else:
        out.print(
            f"registry {dep.registry}\nledger   {dep.ledger}\nblock    {dep.deployment_block}"
            f"\nwritten  {path}"
        )


def _ledger_abi() -> list:
    from ledger.chain.artifacts import load_artifacts

    return load_artifacts()["CoLendingLedger"].abi


# ------------------------------------------------------------------ gas


@app.command("gas")
def gas_cmd(
    write_snapshot: Annotated[
        Path | None, typer.Option(help="Write the figures as the new gas snapshot file.")
    ] = None,
    check: Annotated[
        Path | None, typer.Option(help="Compare with a snapshot; exit 1 on a rise above 2%.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Gas for a co-loan by tranche count (2, 3, 5) and batch size (1, 10, 50), new and existing
    borrower, on a fresh local anvil."""
    from ledger.localnet.gas import compare_snapshot, run, write_snapshot_file

    with console.status("measuring gas on a fresh anvil") as st:
        rows = run(progress=lambda msg: st.update(f"measuring: {msg}"))
    if write_snapshot is not None:
        write_snapshot_file(write_snapshot, rows)
    rises = compare_snapshot(check, rows) if check is not None else []
    if as_json:
        print_json(
            {
                "target_3_tranche_new_borrower": 150_000,
                "rows": [asdict(r) for r in rows],
                "regressions": rises,
            }
        )
    else:
        table = Table(
            title="co-loan gas (per loan; DESIGN §8 target ≤ 150,000 for 3 tranches, new borrower)"
        )
        for col in ("tranches", "batch", "borrower", "gas per loan", "tx gas"):
            table.add_column(col, justify="right")
        for r in rows:
            table.add_row(
                str(r.tranches), str(r.batch), r.borrower, f"{r.gas_per_loan:,}", f"{r.gas_total:,}"
            )
        out.print(table)
        for rise in rises:
            out.print(f"[red]regression[/red] {rise}")
    if rises:
        raise typer.Exit(1)


def _error_line(text: str) -> None:
    # one line, never wrapped by rich: scripts and people both read it whole
    print(" ".join(text.split()), file=sys.stderr)


def _register_commands() -> None:
    # Command groups kept in their own modules add themselves to this module's `app` (which is
    # `__main__`'s under `python -m ledger.cli`, hence a call rather than an import side effect).
    from ledger.cli import audit as cli_audit
    from ledger.cli import bench as cli_bench
    from ledger.cli import gov as cli_gov
    from ledger.cli import index as cli_index
    from ledger.cli import network as cli_network
    from ledger.cli import nodes as cli_nodes

    cli_audit.register(app)
    cli_nodes.register(app)
    cli_index.register(app)
    cli_bench.register(app)
    cli_gov.register(app)
    cli_network.register(app)


def main() -> None:
    from ledger.keys import CryptoBackendError, ensure_coincurve_backend

    _register_commands()
    try:
        ensure_coincurve_backend()
    except CryptoBackendError as exc:
        _error_line(f"error: {exc}")
        sys.exit(2)
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except CliError as exc:
        _error_line(f"error: {exc}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - click usage errors and the rest: one line, no trace
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            _error_line(f"error: {exc.format_message()}")
            sys.exit(exc.exit_code)
        _error_line(f"error: {exc.__class__.__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
