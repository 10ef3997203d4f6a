"""`ledger network init`: the Besu QBFT profile for a real consortium (ledger.network.besu)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import CliError, JsonOpt, out, print_json

network_app = typer.Typer(help="Production network profiles (Hyperledger Besu QBFT).")


@network_app.command("init")
def init_cmd(
    members: Annotated[
        str, typer.Option(help="Comma-separated member names; platform and auditor by name.")
    ] = "platform,bank-a,bank-b,bank-c,auditor",
    validators: Annotated[int, typer.Option(help="How many members run a QBFT validator.")] = 4,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the profile to.")] = (
        Path("deploy/besu-qbft")
    ),
    chain_id: Annotated[int, typer.Option(help="The network's chain id.")] = 1515,
    block_period: Annotated[int, typer.Option(min=1, help="Seconds between blocks.")] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Generate genesis, Besu configs, member node configs, docker-compose.yml and the members'
    keys (under OUT/secrets, never to be committed)."""
    from ledger.network.besu import init_network

    if (out_dir / "secrets").exists():
        raise CliError(f"{out_dir / 'secrets'} exists: refusing to replace a network's keys")
    try:
        summary = init_network(
            members.split(","), validators, out_dir, chain_id=chain_id, block_period_s=block_period
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        print_json({**summary, "out": str(out_dir)})
        return
    out.print(f"chain id {chain_id}, QBFT, {block_period} s blocks, written to {out_dir}")
    for m in summary["members"]:
        v = next((x["address"] for x in summary["validators"] if x["member"] == m["member"]), "")
        out.print(
            f"  {m['member']:<9} {m['role']:<9} account {m['account']}"
            + (f"  validator {v}" if v else ""),
            highlight=False,
        )
    out.print(f"keys in {out_dir / 'secrets'} (mode 0600): hand each member only its own")


def register(app: typer.Typer) -> None:
    app.add_typer(network_app, name="network")
