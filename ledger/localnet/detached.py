"""Detached chains (`ledger chain up|down|status`, `ledger up`): a chain that outlives the CLI
invocation that started it, tracked through ``<state_dir>/chain.json`` under a file lock.

Anvil keeps its state in ``<state_dir>/anvil-state.json`` across down/up.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from ledger.localnet.chaincmd import ChainError, ChainKind, ChainOptions, chain_argv, child_env
from ledger.localnet.chains import chain_answers, wait_ready
from ledger.localnet.processes import (
    HOST,
    find_project_root,
    free_port,
    is_ours,
    kill_group,
    port_is_free,
    spawn,
    start_ticks,
    stop_recorded,
    write_record,
)

__all__ = ["ChainInfo", "down", "record_info", "status", "up_detached"]

_INFO_FILE = "chain.json"
_LOCK_FILE = "chain.lock"
_LOG_FILE = "chain.log"
_ANVIL_STATE_FILE = "anvil-state.json"
_PORT_FILE = "last-port"

# Popen objects of detached chains started by this process, so that down() in the same process
# reaps them instead of leaving zombies (and subprocess does not warn about them while we live).
_DETACHED: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ChainInfo:
    """What ``<state_dir>/chain.json`` records about a detached chain."""

    kind: ChainKind
    pid: int
    pgid: int
    port: int
    url: str
    chain_id: int
    started_at: str  # ISO 8601, UTC
    state_path: str | None  # anvil's --state file; None for hardhat
    log_path: str
    # Kernel start time of pid (clock ticks since boot); tells a reused pid from ours.
    start_ticks: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ChainInfo:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("kind") not in ("anvil", "hardhat"):
            raise ValueError(f"not a chain record: {text[:200]!r}")
        # Ignore keys we do not know: a record from a newer version still names a live chain.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    # Serialises up/down/status across CLI invocations so two `up`s cannot start two chains.
    import fcntl  # POSIX only, hence imported here

    with (state_dir / _LOCK_FILE).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_info(state_dir: Path) -> ChainInfo | None:
    path = state_dir / _INFO_FILE
    try:
        return ChainInfo.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        # Unreadable: nothing can be checked or stopped through it, so it is garbage.
        path.unlink(missing_ok=True)
        return None


def _write_info(state_dir: Path, info: ChainInfo) -> None:
    write_record(state_dir / _INFO_FILE, info.to_json())


def record_info(state_dir: Path, info: ChainInfo) -> None:
    """Record a chain another process runs (the production-like chain's own process), so
    status() and down() find it as they find one started here."""
    with _locked(state_dir):
        _write_info(state_dir, info)


def _status_locked(state_dir: Path) -> tuple[ChainInfo | None, ChainInfo | None]:
    """(healthy chain, recorded-but-unhealthy chain whose process is still alive)."""
    info = _read_info(state_dir)
    if info is None:
        return None, None
    if not is_ours(info.pid, info.pgid, info.start_ticks):
        (state_dir / _INFO_FILE).unlink(missing_ok=True)
        return None, None
    if chain_answers(info.url, info.chain_id, timeout=2.0):
        return info, None
    return None, info


def status(state_dir: Path) -> ChainInfo | None:
    """The detached chain recorded in state_dir if its process is alive and its RPC answers.

    A record whose process is gone is deleted. A live process that does not answer is reported
    as None but kept on record, so that down() or up_detached() can still stop it.
    """
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return None
    with _locked(state_dir):
        return _status_locked(state_dir)[0]


def _down_locked(state_dir: Path, timeout: float) -> bool:
    info = _read_info(state_dir)
    if info is None:
        return False
    stopped = stop_recorded(info.pid, info.pgid, info.start_ticks, _DETACHED, timeout)
    (state_dir / _INFO_FILE).unlink(missing_ok=True)
    return stopped


def down(state_dir: Path, *, timeout: float = 10.0) -> bool:
    """Stop the detached chain of state_dir; True if one was running. Anvil dumps its state."""
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        return False
    with _locked(state_dir):
        return _down_locked(state_dir, timeout)


def up_detached(
    kind: ChainKind = "anvil",
    port: int | None = None,
    *,
    state_dir: Path,
    chain_id: int = 31337,
    startup_timeout: float = 60.0,
) -> ChainInfo:
    """Start a chain that outlives this process, or return the one already running.

    Anvil keeps its state in ``state_dir/anvil-state.json`` across down/up. Without ``port``,
    the port of the previous run is reused if it is free, else a free one is picked.
    Raises ChainError if a chain of another kind, port or chain id is already running there.
    """
    if kind not in ("anvil", "hardhat"):
        raise ValueError(f"kind must be 'anvil' or 'hardhat', not {kind!r}")
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        running, unhealthy = _status_locked(state_dir)
        if running is not None:
            if (running.kind, running.chain_id) != (kind, chain_id) or port not in (
                None,
                running.port,
            ):
                raise ChainError(
                    f"a {running.kind} chain (id {running.chain_id}) is already running at "
                    f"{running.url} for {state_dir}; stop it first (ledger chain down)"
                )
            return running
        if unhealthy is not None:
            _down_locked(state_dir, 10.0)
        return _start_detached(kind, port, state_dir, chain_id, startup_timeout)


def _previous_port(state_dir: Path) -> int | None:
    # Coming back on the same port keeps the URL stable across down/up, as the state is.
    try:
        port = int((state_dir / _PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 and port_is_free(port) else None


def _start_detached(
    kind: ChainKind, port: int | None, state_dir: Path, chain_id: int, timeout: float
) -> ChainInfo:
    root = find_project_root()
    log_path = state_dir / _LOG_FILE
    chosen = port if port is not None else (_previous_port(state_dir) or free_port())
    state_path = state_dir / _ANVIL_STATE_FILE if kind == "anvil" else None
    argv = chain_argv(
        kind, root, chosen, ChainOptions(chain_id), state_path=state_path, workdir=state_dir
    )
    with log_path.open("ab") as log:
        offset = log.tell()
        # No death signal: this chain is meant to survive the CLI process.
        proc = spawn(argv, cwd=root, env=child_env(kind), log=log, deathsig=None)
    try:
        wait_ready(
            proc,
            kind=kind,
            port=chosen,
            chain_id=chain_id,
            timeout=timeout,
            log_path=log_path,
            log_offset=offset,
        )
        info = ChainInfo(
            kind=kind,
            pid=proc.pid,
            pgid=proc.pid,
            port=chosen,
            url=f"http://{HOST}:{chosen}",
            chain_id=chain_id,
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            state_path=str(state_path) if state_path is not None else None,
            log_path=str(log_path),
            start_ticks=start_ticks(proc.pid),
        )
        _write_info(state_dir, info)
        (state_dir / _PORT_FILE).write_text(f"{chosen}\n")
    except BaseException:
        kill_group(proc.pid, proc, 10.0)
        raise
    _DETACHED[proc.pid] = proc
    return info
