"""What every `ledger` command module shares: consoles, the one-line error type, common options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)
out = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
StateDir = Annotated[
    Path, typer.Option("--state-dir", help="Where the local chain and deployment are recorded.")
]
RpcUrl = Annotated[str | None, typer.Option(help="JSON-RPC URL (default: the local chain).")]
DeploymentFile = Annotated[
    Path | None, typer.Option("--deployment", help="Deployment file (default: state dir).")
]
DEFAULT_STATE = Path(".ledger")


class CliError(Exception):
    """One readable line for the user, non-zero exit."""


def print_json(data: object) -> None:
    out.print_json(json.dumps(data, default=str))


def local_chain_url(rpc_url: str | None, state_dir: Path) -> str:
    """The given JSON-RPC URL, else the local chain recorded in the state dir."""
    from ledger.localnet.detached import status

    if rpc_url is not None:
        return rpc_url
    info = status(state_dir)
    if info is None:
        raise CliError("no --rpc-url given and no local chain running (ledger chain up)")
    return info.url


def rpc_and_deployment(rpc_url: str | None, deployment_file: Path | None, state_dir: Path):
    """The chain to talk to and the deployment on it: the given ones, else the local chain and
    the deployment file recorded in the state dir."""
    from ledger.chain.deployment import Deployment

    path = deployment_file or state_dir / "deployment.json"
    if not path.exists():
        raise CliError(f"no deployment file at {path} (--deployment FILE)")
    return local_chain_url(rpc_url, state_dir), Deployment.load(path)


def chain_id_at(url: str) -> int:
    """The chain id the node at `url` answers with; a CliError line when it cannot be reached."""
    from ledger.localnet.chains import ChainError, rpc_call

    try:
        return int(rpc_call(url, "eth_chainId"), 16)
    except ChainError as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
