"""What `ledger up`, `status`, `demo` and `down` share about the local consortium in a state
directory: its summary, how it is printed, and which profile started it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ledger.cli.common import out


def deployed(url: str, dep: Any) -> bool:
    from ledger.chain.connect import web3_for

    try:
        w3 = web3_for(url)
        return w3.eth.chain_id == dep.chain_id and len(w3.eth.get_code(dep.ledger)) > 0
    except Exception:  # noqa: BLE001 - any failure means "not there"
        return False


def rpc_url_file(state_dir: Path) -> Path:
    return state_dir / "rpc-url"


def summary(state_dir: Path) -> dict[str, Any]:
    from ledger.chain.deployment import Deployment
    from ledger.localnet import nodes
    from ledger.localnet.detached import status

    chain = status(state_dir)
    dep_file = state_dir / "deployment.json"
    external = rpc_url_file(state_dir)
    return {
        "chain": asdict(chain) if chain else None,
        "rpc_url": chain.url
        if chain
        else (external.read_text().strip() if external.exists() else None),
        "deployment": Deployment.load(dep_file).to_json() if dep_file.exists() else None,
        "nodes": nodes.status(state_dir),
        "key_service": nodes.key_service_status(state_dir),
        "profile": "production-like" if is_production_like(state_dir) else "dev",
    }


def is_production_like(state_dir: Path) -> bool:
    """Whether `ledger up --profile production-like` started what runs in `state_dir`."""
    from ledger.localnet.prodlike import PROFILE_FILE

    marker = state_dir / PROFILE_FILE
    return marker.exists() and marker.read_text().strip() == "production-like"


def print_nodes(summary: dict[str, Any]) -> None:
    # Plain aligned lines rather than a table: addresses and URLs must never be cut off.
    out.print(f"chain     {summary['rpc_url']}", highlight=False)
    if summary["deployment"]:
        out.print(f"registry  {summary['deployment']['registry']}", highlight=False)
        out.print(f"ledger    {summary['deployment']['ledger']}", highlight=False)
    keys = "keystores" if summary.get("profile") == "production-like" else "DEV-ONLY keys"
    out.print(f"nodes ({keys}), then the key service (the pepper's only holder):")
    ks = summary.get("key_service")
    for n in [*summary["nodes"], *([ks] if ks else [])]:
        ready = "ready" if n["ready"] else ("running, not ready" if n["running"] else "stopped")
        out.print(
            f"  {n['name']:<9} {n['role']:<9} {n['address']}  {n['url']:<24} pid {n['pid']:<7} "
            f"{ready}",
            highlight=False,
            soft_wrap=True,
        )
    if summary["nodes"]:
        out.print("web console on every node (sign in with a token from `ledger token MEMBER`):")
        for n in summary["nodes"]:
            out.print(f"  {n['name']:<9} {n['url']}/console/", highlight=False, soft_wrap=True)


def ensure_nodes(
    state_dir: Path,
    url: str,
    *,
    database_url: str | None,
    fresh: bool,
    keystores: dict[str, Path] | None = None,
    addresses: dict[str, str] | None = None,
) -> None:
    """The key service and the six nodes (five members and the guarantor) running and ready:
    left alone when they are, else (re)started on their earlier ports, with
    `keystores`/`addresses` when the members are not the DEV-ONLY ones (without a guarantor's
    keystore, the five others). A state directory whose recorded nodes are not exactly these
    (an older run's five) is restarted with all of them."""
    from ledger.cli.common import console
    from ledger.localnet import nodes

    running = nodes.status(state_dir)
    keys = nodes.key_service_status(state_dir)
    members = tuple(m for m in nodes.UP_MEMBERS if keystores is None or m.name in keystores)
    wanted = {m.name for m in members}
    if (
        running
        and {n["name"] for n in running} == wanted
        and all(n["ready"] for n in running)
        and keys
        and keys["ready"]
    ):
        return
    nodes.down(state_dir)
    with console.status(f"starting the key service and {len(wanted)} nodes"):
        configs = nodes.write_configs(
            state_dir,
            url,
            database_url=database_url,
            ports=nodes.ports_of(state_dir),
            fresh=fresh,
            keystores=keystores,
            addresses=addresses,
            members=members,
        )
        nodes.start(state_dir, configs, addresses=addresses)
