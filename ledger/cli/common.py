"""What every `ledger` command module shares: consoles, the one-line error type, common options."""

from __future__ import annotations

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
DEFAULT_STATE = Path(".ledger")


class CliError(Exception):
    """One readable line for the user, non-zero exit."""


def rpc_and_deployment(rpc_url: str | None, deployment_file: Path | None, state_dir: Path):
    """The chain to talk to and the deployment on it: the given ones, else the local chain and
    the deployment file recorded in the state dir."""
    from ledger.chain.deployment import Deployment
    from ledger.localnet.chains import status

    path = deployment_file or state_dir / "deployment.json"
    if not path.exists():
        raise CliError(f"no deployment file at {path} (--deployment FILE)")
    url = rpc_url
    if url is None:
        info = status(state_dir)
        if info is None:
            raise CliError("no --rpc-url given and no local chain running (ledger chain up)")
        url = info.url
    return url, Deployment.load(path)
