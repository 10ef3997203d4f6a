"""The local consortium's node processes (five, and a guarantor's under `ledger up`): configs,
start, readiness, status, stop.

Each node is `python -m api --config <state>/nodes/<name>/config.json`, a process of its own in
its own process group (so `down` reaches anything it spawns), logging to a file beside its
config, with its own SQLite file (or a schema of its own in one PostgreSQL database). What runs
is recorded in `<state>/nodes.json` with each pid's kernel start time, so a reused pid is never
mistaken for a node. DEV-ONLY: the members use the public dev keys.

Beside them runs the key service (`python -m keyservice`, DESIGN §3), started first: the only
holder of the consortium pepper, a random one made for this state directory and kept in
`<state>/keyservice/pepper.hex` (mode 0600), which no node's config names. The nodes' configs
carry its URL; it is recorded in `keyservice.json` as a node is in `nodes.json`, and `down`
stops it after the nodes.

This module starts processes and speaks HTTP to them; it never imports `api/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ledger.keys import dev_account
from ledger.localnet.processes import (
    HOST,
    find_project_root,
    free_port,
    is_ours,
    kill_group,
    log_tail,
    port_is_free,
    spawn,
    start_ticks,
    stop_recorded,
    write_record,
)

NODES_FILE = "nodes.json"
KEY_SERVICE_FILE = "keyservice.json"

# Popen objects of nodes this process started, so down() in the same process reaps them rather
# than leaving zombies behind (tests start and stop nodes in one process).
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class DevMember:
    """A DEV-ONLY member of the local consortium: its node name, role, dev key and (for banks)
    appetite."""

    name: str
    role: str
    key_role: str
    key_index: int
    display: str
    appetite: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return dev_account(self.key_role, self.key_index).address


# Appetites differ on purpose, so the demo can show a bank refusing by its own policy:
# Bank C funds consumer loans only, in tranches of at most 20,000 CNY.
MEMBERS: tuple[DevMember, ...] = (
    DevMember("platform", "platform", "platform", 0, "Platform (dev)"),
    DevMember("bank-a", "lender", "lender", 0, "Bank A (dev)",
              {"max_tranche": 50_000_000, "products": ["consumer", "business"]}),
    DevMember("bank-b", "lender", "lender", 1, "Bank B (dev)",
              {"max_tranche": 10_000_000, "products": ["consumer", "business"]}),
    DevMember("bank-c", "lender", "lender", 2, "Bank C (dev)",
              {"max_tranche": 2_000_000, "products": ["consumer"]}),
    DevMember("auditor", "auditor", "auditor", 0, "Auditor (dev)"),
)  # fmt: skip
#: The guarantee company `ledger up` admits at bootstrap and runs a node for; the test
#: consortium (tests/api_support) leaves it out, as its modules admit their own.
GUARANTOR = DevMember("guarantor", "guarantor", "guarantor", 0, "Guarantor (dev)")
#: What `ledger up` runs: the five members and the guarantor.
UP_MEMBERS: tuple[DevMember, ...] = (*MEMBERS, GUARANTOR)
GOVERNOR = DevMember("governor", "governor", "governor", 0, "Governor (dev)")
#: The key service: not a member (no role on chain); its own DEV-ONLY key.
KEY_SERVICE = DevMember("keyservice", "keyservice", "keyservice", 0, "Key service (dev)")


def member(name: str) -> DevMember:
    for m in (*UP_MEMBERS, GOVERNOR):
        if m.name == name:
            return m
    names = ", ".join(m.name for m in (*UP_MEMBERS, GOVERNOR))
    raise KeyError(f"no member {name!r} in the dev consortium (members: {names})")


@dataclass(frozen=True)
class NodeInfo:
    name: str
    role: str
    address: str
    url: str
    port: int
    pid: int
    pgid: int
    start_ticks: int | None
    config: str
    log: str


class NodesError(RuntimeError):
    pass


def _database_url(
    template: str | None, state_dir: Path, name: str, fresh: bool, prefix: str = "ledger_"
) -> str:
    """The node's database: its own SQLite file by default; with a PostgreSQL URL, its own
    schema in that database (created here), or its own database where the URL says `{node}`.
    `fresh` (a new deployment) empties it: a read model and idempotency records of another
    deployment must not survive into this one."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    ident = name.replace("-", "_")
    if template is None:
        path = state_dir / "nodes" / name / "node.db"
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    if "{node}" in template:
        return template.replace("{node}", ident)
    url = make_url(template.replace("postgresql://", "postgresql+psycopg://", 1))
    if url.get_backend_name() != "postgresql":
        raise NodesError("--database-url: one database for five nodes needs PostgreSQL (or {node})")
    schema = f"{prefix}{ident}"
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if fresh:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


def write_configs(
    state_dir: Path,
    rpc_url: str,
    *,
    database_url: str | None = None,
    ports: dict[str, int] | None = None,
    fresh: bool = True,
    schema_prefix: str = "ledger_",
    keystores: dict[str, Path] | None = None,
    addresses: dict[str, str] | None = None,
    members: tuple[DevMember, ...] = MEMBERS,
) -> dict[str, Path]:
    """One config file per member of `members` (`UP_MEMBERS`: the guarantor too); ports are
    reused from `ports` where still free. `fresh` empties the nodes' databases (for a new
    deployment). With `keystores` (member name ->
    keystore file, password in LEDGER_KEY_PASSWORD) and their `addresses`, the members sign
    with those keys instead of the DEV-ONLY ones, and each node gets a document key of its own
    (a dev node makes one on first start; any other is provisioned)."""
    state_dir = state_dir.resolve()
    chosen: dict[str, int] = {}
    for m in (KEY_SERVICE, *members):
        p = (ports or {}).get(m.name)
        if p is None or not port_is_free(p) or p in chosen.values():
            p = free_port()
            while p in chosen.values():
                p = free_port()
        chosen[m.name] = p
    address = {m.name: (addresses or {}).get(m.name, m.address) for m in members}
    peers = {
        address[m.name]: f"http://{HOST}:{chosen[m.name]}" for m in members if m.role == "lender"
    }

    def key(m: DevMember) -> dict[str, Any]:
        if keystores is None:
            return {"kind": "dev", "role": m.key_role, "index": m.key_index}
        return {"kind": "keystore", "path": str(Path(keystores[m.name]).resolve())}

    key_service_url = f"http://{HOST}:{chosen[KEY_SERVICE.name]}"
    paths = {KEY_SERVICE.name: _write_key_service_config(
        state_dir, rpc_url, chosen[KEY_SERVICE.name],
        _database_url(database_url, state_dir, KEY_SERVICE.name, fresh, schema_prefix),
        key(KEY_SERVICE),
    )}  # fmt: skip
    for m in members:
        home = state_dir / "nodes" / m.name
        home.mkdir(parents=True, exist_ok=True)
        config = {
            "name": m.name,
            "role": m.role,
            "rpc_url": rpc_url,
            "deployment_file": str(state_dir / "deployment.json"),
            "database_url": _database_url(database_url, state_dir, m.name, fresh, schema_prefix),
            "key": key(m),
            "host": HOST,
            "port": chosen[m.name],
            "peers": peers if m.role == "platform" else {},
            "appetite": m.appetite or {"max_tranche": None},
            "key_service": {"url": key_service_url},
            "document_key_dir": str(home / "document-keys"),
            "document_dir": str(home / "documents"),
        }
        if keystores is not None and not any((home / "document-keys").glob("*.key")):
            from ledger.keyring import DocumentKey, write_key_file

            write_key_file(home / "document-keys", DocumentKey.generate("k1"))
        path = home / "config.json"
        path.write_text(json.dumps(config, indent=2) + "\n")
        paths[m.name] = path
    return paths


def _write_key_service_config(
    state_dir: Path, rpc_url: str, port: int, database_url: str, key: dict[str, Any]
) -> Path:
    """The key service's config and, once per state directory, its random pepper (never in a
    config, never in a node's directory)."""
    from ledger.secretfile import atomic_write

    home = state_dir / "nodes" / KEY_SERVICE.name
    home.mkdir(parents=True, exist_ok=True)
    pepper = home / "pepper.hex"
    if not pepper.exists():
        atomic_write(pepper, os.urandom(32).hex().encode() + b"\n")
    pepper.chmod(0o600)
    config = {
        "name": KEY_SERVICE.name,
        "rpc_url": rpc_url,
        "deployment_file": str(state_dir / "deployment.json"),
        "database_url": database_url,
        "key": key,
        "host": HOST,
        "port": port,
        "pepper_file": str(pepper),
    }
    path = home / "config.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _spawn(config: Path) -> subprocess.Popen[bytes]:
    # Own session and process group, no death signal: the node outlives the CLI, and killpg
    # reaches all of it.
    module = "keyservice" if config.parent.name == KEY_SERVICE.name else "api"
    argv = [sys.executable, "-m", module, "--config", str(config), "--log-level", "info"]
    with (config.parent / "node.log").open("ab") as log:
        return spawn(argv, cwd=find_project_root(), env=dict(os.environ), log=log, deathsig=None)


def start(
    state_dir: Path,
    configs: dict[str, Path],
    *,
    timeout: float = 60.0,
    addresses: dict[str, str] | None = None,
) -> list[NodeInfo]:
    """Start the key service and every node, wait until each answers /readyz, record them
    (with `addresses` when the members are not the DEV-ONLY ones). On failure, stop all."""
    state_dir = state_dir.resolve()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    infos: list[NodeInfo] = []
    everyone = [m for m in (KEY_SERVICE, *UP_MEMBERS) if m.name in configs]
    try:
        for m in everyone:
            procs[m.name] = _spawn(configs[m.name])
        for m in everyone:
            cfg = json.loads(configs[m.name].read_text())
            proc = procs[m.name]
            url = f"http://{HOST}:{cfg['port']}"
            addr = (addresses or {}).get(m.name, m.address)
            infos.append(
                NodeInfo(m.name, m.role, addr, url, cfg["port"], proc.pid, proc.pid,
                         start_ticks(proc.pid), str(configs[m.name]),
                         str(configs[m.name].parent / "node.log"))
            )  # fmt: skip
        _record(state_dir, [i for i in infos if i.name != KEY_SERVICE.name])
        _record(state_dir, [i for i in infos if i.name == KEY_SERVICE.name], KEY_SERVICE_FILE)
        deadline = time.monotonic() + timeout
        for info in infos:
            _wait_ready(info, procs[info.name], deadline)
    except BaseException:
        for proc in procs.values():
            kill_group(proc.pid, proc, 5.0)
        (state_dir / NODES_FILE).unlink(missing_ok=True)
        (state_dir / KEY_SERVICE_FILE).unlink(missing_ok=True)
        raise
    _STARTED.update({p.pid: p for p in procs.values()})
    return infos


def _wait_ready(info: NodeInfo, proc: subprocess.Popen[bytes], deadline: float) -> None:
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while True:
            if proc.poll() is not None:
                raise NodesError(
                    f"node {info.name} exited with code {proc.returncode}\n"
                    f"--- last output of {info.name} ---\n{log_tail(Path(info.log))}"
                )
            try:
                if http.get(f"{info.url}/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise NodesError(
                    f"node {info.name} not ready at {info.url}\n{log_tail(Path(info.log))}"
                )
            time.sleep(0.1)


def _record(state_dir: Path, infos: list[NodeInfo], name: str = NODES_FILE) -> None:
    write_record(state_dir / name, json.dumps([asdict(i) for i in infos], indent=2) + "\n")


def recorded(state_dir: Path, name: str = NODES_FILE) -> list[NodeInfo]:
    """The recorded nodes (or, with `name=KEY_SERVICE_FILE`, the key service)."""
    try:
        data = json.loads((Path(state_dir) / name).read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [NodeInfo(**d) for d in data]


def alive(info: NodeInfo) -> bool:
    return is_ours(info.pid, info.pgid, info.start_ticks)


def ready(info: NodeInfo) -> bool:
    try:
        with httpx.Client(timeout=2.0, trust_env=False) as http:
            return http.get(f"{info.url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def status(state_dir: Path, name: str = NODES_FILE) -> list[dict[str, Any]]:
    return [{**asdict(i), "running": alive(i), "ready": alive(i) and ready(i)}
            for i in recorded(state_dir, name)]  # fmt: skip


def key_service_status(state_dir: Path) -> dict[str, Any] | None:
    """The key service's record with `running` and `ready`, or None if none is recorded."""
    found = status(state_dir, KEY_SERVICE_FILE)
    return found[0] if found else None


def down(state_dir: Path, *, timeout: float = 10.0) -> int:
    """Stop every recorded node, then the key service (SIGTERM, then SIGKILL after `timeout`);
    how many nodes were running."""
    stopped = sum(
        stop_recorded(i.pid, i.pgid, i.start_ticks, _STARTED, timeout) for i in recorded(state_dir)
    )
    (Path(state_dir) / NODES_FILE).unlink(missing_ok=True)
    for i in recorded(state_dir, KEY_SERVICE_FILE):
        stop_recorded(i.pid, i.pgid, i.start_ticks, _STARTED, timeout)
    (Path(state_dir) / KEY_SERVICE_FILE).unlink(missing_ok=True)
    return stopped


def ports_of(state_dir: Path) -> dict[str, int]:
    """The ports of the previous run, from the configs, so URLs stay stable across down/up."""
    out = {}
    for m in (KEY_SERVICE, *UP_MEMBERS):
        try:
            cfg = json.loads((Path(state_dir) / "nodes" / m.name / "config.json").read_text())
            out[m.name] = int(cfg["port"])
        except (OSError, ValueError, KeyError):
            continue
    return out
