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
