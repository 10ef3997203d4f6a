"""`ledger up --profile production-like`: the consortium on the production-like chain
(ledger.localnet.prodlike) with the members' keystores; `ledger demo` signs in with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.cli.common import CliError, console, out, print_json


def up_production_like(
    state_dir: Path,
    block_time: float,
    database_url: str | None,
    as_json: bool,
    rpc_url: str | None = None,
    keystores: Path | None = None,
) -> None:
    """`ledger up --profile production-like`: the chain of ledger.localnet.prodlike, the
    members' keystores (its genesis funds them), the same deployment and nodes as the dev
    profile, with the timelock's short local delay waited out, never skipped."""
    from ledger.chain.deployment import Deployment
    from ledger.cli.consortium import (
        deployed,
        ensure_nodes,
        print_nodes,
        rpc_url_file,
    )
    from ledger.cli.consortium import summary as consortium_summary
    from ledger.localnet import nodes
    from ledger.localnet.consortium import bootstrap
    from ledger.localnet.prodlike import PRODUCTION_LIKE_DELAY, PROFILE_FILE
    from ledger.localnet.prodlike import up_production_like as start_chain

    if rpc_url is None:
        with console.status("starting the production-like chain"):
            url = start_chain(state_dir, block_time)
        rpc_url_file(state_dir).unlink(missing_ok=True)
    else:  # any chain: its id is whatever it reports; the members' accounts must be funded
        url = rpc_url.rstrip("/")
        rpc_url_file(state_dir).write_text(url + "\n")
        (state_dir / PROFILE_FILE).write_text("production-like\n")
    keys, accounts = keystore_members(state_dir, keystores)
    dep_file = state_dir / "deployment.json"
    fresh = not (dep_file.exists() and deployed(url, Deployment.load(dep_file)))
    if fresh:
        with console.status("deploying, admitting members, attesting capital (a block a second)"):
            cx = bootstrap(url, keys=_as_consortium(accounts), delay=PRODUCTION_LIKE_DELAY)
        cx.deployment.save(dep_file)
        nodes.down(state_dir)
    addresses = {name: a.address for name, a in accounts.items()}
    ensure_nodes(
        state_dir,
        url,
        database_url=database_url,
        fresh=fresh,
        keystores={n: keys.path(n) for n in accounts},
        addresses=addresses,
    )
    summary = consortium_summary(state_dir)
    if as_json:
        print_json(summary)
        return
    print_nodes(summary)
    out.print(f"keystores {keys.directory} (password in {keys.directory / 'PASSWORD'})")
    out.print("next: ledger demo    stop: ledger down")


def keystore_members(state_dir: Path, directory: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The production-like profile's member keys (ledger.localnet.prodlike.MemberKeys) and
    accounts; the password is exported for the nodes this process starts."""
    from ledger.keys import KeystoreError
    from ledger.localnet.prodlike import MemberKeys

    if directory is None:
        recorded = state_dir / "keystores"
        directory = Path(recorded.read_text().strip()) if recorded.exists() else None
    else:
        (state_dir / "keystores").write_text(f"{Path(directory).resolve()}\n")
    keys = MemberKeys(directory or state_dir / "chain" / "keys")
    try:
        return keys, keys.accounts()
    except (OSError, KeystoreError) as exc:
        raise CliError(f"cannot open the members' keystores: {exc}") from None


def _as_consortium(accounts: dict[str, Any]) -> Any:
    from ledger.keys import DevConsortium

    return DevConsortium(
        governor=accounts["governor"],
        platform=accounts["platform"],
        lenders=[accounts["bank-a"], accounts["bank-b"], accounts["bank-c"]],
        auditor=accounts["auditor"],
        **({"guarantor": accounts["guarantor"]} if "guarantor" in accounts else {}),
    )
