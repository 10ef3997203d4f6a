"""Managed local chains: anvil or a Hardhat node, bound to 127.0.0.1, never left running.

Two modes:

* ``LocalChain`` - owned by this Python process (tests, ``ledger up``). The chain dies with us:
  context manager, ``atexit``, and on Linux the kernel's parent-death signal for the cases Python
  cannot see (SIGKILL, OOM kill).
* ``up_detached`` / ``status`` / ``down`` - a chain that outlives the CLI invocation that started
  it, tracked through ``<state_dir>/chain.json``.

Anvil can keep its state across restarts (``--state``); a Hardhat node cannot.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from ledger.chain.rpc import Rpc, RpcError, request
from ledger.localnet.processes import (
    HOST,
    SETUP_HINT,
    ProcessError,
    find_project_root,
    free_port,
    group_owns_port,
    is_ours,
    kill_group,
    log_tail,
    port_is_free,
    spawn,
    start_ticks,
)

__all__ = [
    "DEFAULT_HARDFORK",
    "DEFAULT_MNEMONIC",
    "ChainError",
    "ChainInfo",
    "ChainKind",
    "LocalChain",
    "down",
        "rpc_call",
    "status",
    "up_detached",
]

ChainKind = Literal["anvil", "hardhat"]

# Both nodes derive their dev accounts from this mnemonic by default; passing it explicitly keeps
# the two kinds interchangeable even if one of them changes its default.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
# contracts/compiler.json targets cancun and hardhat.config.js runs the Hardhat network on cancun;
# anvil's default is "latest", so without this the two kinds would execute different EVMs.
DEFAULT_HARDFORK = "cancun"



class ChainError(ProcessError):
    """A chain could not be started, probed or stopped."""


def _anvil_binary(root: Path) -> Path:
    # node_modules/.bin/anvil is a Node wrapper that spawns the native binary as a grandchild.
    # The parent-death signal would only reach the wrapper, so prefer the native binary from the
    # platform package and keep the wrapper (which forwards SIGTERM/SIGINT) as a fallback.
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), ""
    )
    name = "anvil.exe" if sys.platform == "win32" else "anvil"
    native = root / "node_modules" / "@foundry-rs" / f"anvil-{sys.platform}-{arch}" / "bin" / name
    for candidate in (native, root / "node_modules" / ".bin" / "anvil"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ChainError(f"anvil is not installed under {root / 'node_modules'}; {SETUP_HINT}")


def _hardhat_binary(root: Path) -> Path:
    candidate = root / "node_modules" / ".bin" / "hardhat"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    raise ChainError(f"hardhat is not installed under {root / 'node_modules'}; {SETUP_HINT}")


# --------------------------------------------------------------------------------------------
# JSON-RPC


def rpc_call(url: str, method: str, params: Sequence[Any] = (), *, timeout: float = 5.0) -> Any:
    """One JSON-RPC request over plain HTTP; returns ``result`` or raises ChainError."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ChainError(f"only http:// URLs are supported, got {url!r}")
    # Never through a proxy: a configured HTTP(S)_PROXY must never see loopback probes, and a
    # proxy answering for a dead chain would make it look alive. Not retried: it may be a write.
    with Rpc(url, timeout=timeout, trust_env=False) as rpc:
        try:
            payload = rpc.post(request(method, params), method, retry=False)
        except RpcError as exc:
            raise ChainError(f"{method} on {url} failed: {exc.error}") from exc
    if not isinstance(payload, dict) or "error" in payload or "result" not in payload:
        raise ChainError(f"{method} on {url} returned {payload!r}")
    return payload["result"]


def _probe_chain_id(url: str, timeout: float = 1.0) -> int | None:
    try:
        return int(rpc_call(url, "eth_chainId", timeout=timeout), 16)
    except (ChainError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Command lines


@dataclass(frozen=True)
class _Options:
    chain_id: int
    accounts: int
    balance_eth: int
    mnemonic: str
    hardfork: str
    block_time: float | None
    extra_args: tuple[str, ...] = ()


def _anvil_argv(root: Path, port: int, opts: _Options, state_path: Path | None) -> list[str]:
    argv = [
        str(_anvil_binary(root)),
        "--host", HOST,
        "--port", str(port),
        "--chain-id", str(opts.chain_id),
        "--accounts", str(opts.accounts),
        "--balance", str(opts.balance_eth),
        "--mnemonic", opts.mnemonic,
        "--hardfork", opts.hardfork,
        "--color", "never",
    ]  # fmt: skip
    if opts.block_time is not None:
        argv += ["--block-time", f"{opts.block_time:g}"]
    argv += list(opts.extra_args)
    if state_path is not None:
        # --state = --load-state + --dump-state: loads the file if present, dumps on SIGTERM or
        # SIGINT. --preserve-historical-states also keeps per-block states so eth_call and
        # eth_getBalance at past blocks still work after a restart.
        argv += ["--state", str(state_path), "--preserve-historical-states"]
    return argv


def _hardhat_config(root: Path, opts: _Options) -> str:
    # `hardhat node` has no flags for chain id, accounts or mining; a config that extends the
    # project's one keeps its solc set-up and paths and overrides only the network.
    if opts.block_time is None:
        mining: dict[str, Any] = {"auto": True, "interval": 0}
    else:
        mining = {"auto": False, "interval": max(1, round(opts.block_time * 1000))}
    network = {
        "chainId": opts.chain_id,
        "hardfork": opts.hardfork,
        "accounts": {
            "mnemonic": opts.mnemonic,
            "count": opts.accounts,
            "accountsBalance": str(opts.balance_eth * 10**18),
        },
        "mining": mining,
    }
    base = json.dumps(str(root / "hardhat.config.js"))
    return (
        "// Generated by ledger.localnet.chains; extends the project's config for one node run.\n"
        f"const base = require({base});\n"
        "const networks = base.networks || {};\n"
        "module.exports = {\n"
        "  ...base,\n"
        f"  paths: {{ ...(base.paths || {{}}), root: {json.dumps(str(root))} }},\n"
        "  networks: {\n"
        "    ...networks,\n"
        f"    hardhat: {{ ...(networks.hardhat || {{}}), ...{json.dumps(network)} }},\n"
        "  },\n"
        "};\n"
    )


def _hardhat_argv(root: Path, port: int, config_path: Path) -> list[str]:
    return [
        str(_hardhat_binary(root)),
        "--config", str(config_path),
        "node",
        # Without --hostname, Hardhat 2 listens on 0.0.0.0.
        "--hostname", HOST,
        "--port", str(port),
    ]  # fmt: skip


def _child_env(kind: ChainKind) -> dict[str, str]:
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    if kind == "hardhat":
        env["FORCE_COLOR"] = "0"
        env["HARDHAT_DISABLE_TELEMETRY_PROMPT"] = "true"
    return env


def _port_clash(log_text: str) -> bool:
    return "Address already in use" in log_text or "EADDRINUSE" in log_text


def _wait_ready(
    proc: subprocess.Popen[bytes],
    *,
    kind: ChainKind,
    port: int,
    chain_id: int,
    timeout: float,
    log_path: Path,
    log_offset: int,
) -> None:
    """Block until the chain we spawned answers eth_chainId; raise ChainError otherwise."""
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise ChainError(
                f"{kind} exited with code {code} before answering on {url}\n"
                f"--- last output of {kind} ---\n{log_tail(log_path, log_offset)}"
            )
        answered = _probe_chain_id(url)
        if answered is not None and group_owns_port(proc.pid, port):
            if answered != chain_id:
                raise ChainError(f"{kind} on {url} reports chain id {answered}, not {chain_id}")
            return
        if time.monotonic() >= deadline:
            raise ChainError(
                f"{kind} did not answer eth_chainId on {url} within {timeout:g}s\n"
                f"--- last output of {kind} ---\n{log_tail(log_path, log_offset)}"
            )
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Owned chains

_LIVE: set[LocalChain] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        chains = list(_LIVE)
    for chain in chains:
        # A forked child inherits _LIVE; only the process that started a chain may stop it.
        if chain._owner_pid == os.getpid():
            with contextlib.suppress(Exception):
                chain.stop()


class LocalChain:
    """A local chain owned by this process. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        kind: ChainKind = "anvil",
        *,
        port: int | None = None,
        chain_id: int = 31337,
        state_path: Path | None = None,
        block_time: float | None = None,
        accounts: int = 10,
        balance_eth: int = 10_000,
        mnemonic: str = DEFAULT_MNEMONIC,
        hardfork: str = DEFAULT_HARDFORK,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if kind not in ("anvil", "hardhat"):
            raise ValueError(f"kind must be 'anvil' or 'hardhat', not {kind!r}")
        if state_path is not None and kind != "anvil":
            raise ValueError("state_path needs kind='anvil': a Hardhat node cannot persist state")
        if block_time is not None and block_time <= 0:
            raise ValueError("block_time must be positive (None means automine)")
        self._kind: ChainKind = kind
        self._requested_port = port
        self._port = port
        if extra_args and kind != "anvil":
            raise ValueError("extra_args are anvil flags; a Hardhat node takes its config instead")
        self._opts = _Options(
            chain_id, accounts, balance_eth, mnemonic, hardfork, block_time, tuple(extra_args)
        )
        self._state_path = state_path.resolve() if state_path is not None else None
        self._log_path = log_path.resolve() if log_path is not None else None
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._owner_pid = os.getpid()

    # -- read-only surface

    @property
    def kind(self) -> ChainKind:
        return self._kind

    @property
    def chain_id(self) -> int:
        return self._opts.chain_id

    @property
    def port(self) -> int:
        if self._port is None:
            raise ChainError("no port yet: the chain has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ChainError("the chain is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def state_path(self) -> Path | None:
        return self._state_path

    @property
    def log_path(self) -> Path | None:
        """Where the node's output goes (a private temp file unless log_path was given)."""
        return self._log_path or (self._workdir / "chain.log" if self._workdir else None)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "no port"
        return f"<LocalChain {self._kind} {where} {'running' if self._proc else 'stopped'}>"

    # -- lifecycle

    def start(self) -> Self:
        """Start the node and wait until it answers; a no-op if it is already running."""
        if self._proc is not None:
            return self
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"ledger-{self._kind}-"))
        try:
            self._launch()
        except BaseException:
            self._cleanup_workdir()
            raise
        return self

    def stop(self) -> None:
        """Stop the node (SIGTERM, then SIGKILL after stop_timeout). Idempotent."""
        try:
            self._terminate()
        finally:
            self._cleanup_workdir()

    def restart(self) -> None:
        """Stop and start again on the same port, keeping the chain state (anvil with state_path).

        Blocks, balances, nonces, contract code and storage, receipts and logs survive.
        """
        if self._kind == "hardhat":
            raise NotImplementedError(
                "a Hardhat node keeps its state only in memory, so it cannot be restarted with its "
                "state; use LocalChain('anvil', state_path=...) for restarts"
            )
        if self._state_path is None:
            raise ChainError("restart() keeps state only with state_path=...; none was given")
        if self._proc is None:
            raise ChainError("restart() needs a running chain; call start() first")
        self._terminate()
        if not self._state_path.is_file():
            raise ChainError(f"anvil exited without dumping its state to {self._state_path}")
        self._launch()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals

    def _launch(self) -> None:
        assert self._workdir is not None
        root = find_project_root()
        log_path = self._log_path or self._workdir / "chain.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if self._state_path is not None:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
        # A picked port can be taken between our probe and the node's bind; retry only then
        # (not on a restart, which must come back on the port it had).
        attempts = 3 if self._port is None else 1
        for attempt in range(attempts):
            port = self._port if self._port is not None else free_port()
            if self._kind == "anvil":
                argv = _anvil_argv(root, port, self._opts, self._state_path)
            else:
                config = self._workdir / "hardhat.config.js"
                config.write_text(_hardhat_config(root, self._opts))
                argv = _hardhat_argv(root, port, config)
            with log_path.open("ab") as log:
                offset = log.tell()
                proc = spawn(
                    argv, cwd=root, env=_child_env(self._kind), log=log, deathsig=signal.SIGTERM
                )
            # SIGTERM rather than SIGKILL as death signal: anvil then still dumps its state, and
            # the Node wrapper fallback forwards SIGTERM to the native binary.
            with _LIVE_LOCK:
                self._proc = proc
                _LIVE.add(self)
            try:
                _wait_ready(
                    proc,
                    kind=self._kind,
                    port=port,
                    chain_id=self._opts.chain_id,
                    timeout=self._startup_timeout,
                    log_path=log_path,
                    log_offset=offset,
                )
            except BaseException as exc:
                self._terminate()
                retry = (
                    isinstance(exc, ChainError)
                    and attempt + 1 < attempts
                    and _port_clash(log_tail(log_path, offset))
                )
                if not retry:
                    raise
                continue
            self._port = port
            return

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            kill_group(proc.pid, proc, self._stop_timeout)
        finally:
            with _LIVE_LOCK:
                self._proc = None
                _LIVE.discard(self)

    def _cleanup_workdir(self) -> None:
        if self._workdir is not None and self._proc is None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


# --------------------------------------------------------------------------------------------
# Detached chains (ledger chain up|down|status)

_INFO_FILE = "chain.json"
_LOCK_FILE = "chain.lock"
_LOG_FILE = "chain.log"
_ANVIL_STATE_FILE = "anvil-state.json"
_HARDHAT_CONFIG_FILE = "hardhat.config.js"
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
    tmp = state_dir / f".{_INFO_FILE}.{os.getpid()}.tmp"
    tmp.write_text(info.to_json())
    os.replace(tmp, state_dir / _INFO_FILE)  # readers never see a half-written file


def _is_our_process(info: ChainInfo) -> bool:
    return is_ours(info.pid, info.pgid, info.start_ticks)


def _status_locked(state_dir: Path) -> tuple[ChainInfo | None, ChainInfo | None]:
    """(healthy chain, recorded-but-unhealthy chain whose process is still alive)."""
    info = _read_info(state_dir)
    if info is None:
        return None, None
    if not _is_our_process(info):
        (state_dir / _INFO_FILE).unlink(missing_ok=True)
        return None, None
    if _probe_chain_id(info.url, timeout=2.0) == info.chain_id:
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
    proc = _DETACHED.pop(info.pid, None)
    stopped = _is_our_process(info)
    if stopped:
        kill_group(info.pgid, proc, timeout)
    elif proc is not None:
        proc.wait()  # died on its own; reap it
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
    opts = _Options(chain_id, 10, 10_000, DEFAULT_MNEMONIC, DEFAULT_HARDFORK, None)
    log_path = state_dir / _LOG_FILE
    chosen = port if port is not None else (_previous_port(state_dir) or free_port())
    state_path: Path | None = None
    if kind == "anvil":
        state_path = state_dir / _ANVIL_STATE_FILE
        argv = _anvil_argv(root, chosen, opts, state_path)
    else:
        config = state_dir / _HARDHAT_CONFIG_FILE
        config.write_text(_hardhat_config(root, opts))
        argv = _hardhat_argv(root, chosen, config)
    with log_path.open("ab") as log:
        offset = log.tell()
        # No death signal: this chain is meant to survive the CLI process.
        proc = spawn(argv, cwd=root, env=_child_env(kind), log=log, deathsig=None)
    try:
        _wait_ready(
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
