"""Managed local chains: anvil or a Hardhat node, bound to 127.0.0.1, never left running.

Two modes:

* ``LocalChain`` - owned by this Python process (tests, ``ledger up``). The chain dies with us:
  context manager, ``atexit``, and on Linux the kernel's parent-death signal for the cases Python
  cannot see (SIGKILL, OOM kill).
* ``ledger.localnet.detached`` (``up_detached`` / ``status`` / ``down``) - a chain that outlives
  the CLI invocation that started it, tracked through ``<state_dir>/chain.json``.

Anvil can keep its state across restarts (``--state``); a Hardhat node cannot. The command lines
are built in ledger.localnet.chaincmd.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from ledger.chain.rpc import Rpc, RpcError, request
from ledger.localnet.chaincmd import (
    DEFAULT_HARDFORK,
    DEFAULT_MNEMONIC,
    ChainError,
    ChainKind,
    ChainOptions,
    chain_argv,
    child_env,
)
from ledger.localnet.processes import (
    HOST,
    find_project_root,
    free_port,
    group_owns_port,
    kill_group,
    log_tail,
    spawn,
)

__all__ = [
    "DEFAULT_HARDFORK",
    "DEFAULT_MNEMONIC",
    "ChainError",
    "ChainKind",
    "LocalChain",
    "chain_answers",
    "rpc_call",
    "wait_ready",
]


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
# Readiness


def chain_answers(url: str, chain_id: int, timeout: float = 1.0) -> bool:
    """Whether the chain at `url` answers eth_chainId with `chain_id`."""
    return _probe_chain_id(url, timeout) == chain_id


def _port_clash(log_text: str) -> bool:
    return "Address already in use" in log_text or "EADDRINUSE" in log_text


def wait_ready(
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
        self._opts = ChainOptions(
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
        """Where the chain's output goes (a private temp file unless log_path was given)."""
        return self._log_path or (self._workdir / "chain.log" if self._workdir else None)

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "no port"
        return f"<LocalChain {self._kind} {where} {'running' if self._proc else 'stopped'}>"

    # -- lifecycle

    def start(self) -> Self:
        """Start the chain and wait until it answers; a no-op if it is already running."""
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
        """Stop the chain (SIGTERM, then SIGKILL after stop_timeout). Idempotent."""
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
        # A picked port can be taken between our probe and the chain's bind; retry only then
        # (not on a restart, which must come back on the port it had).
        attempts = 3 if self._port is None else 1
        for attempt in range(attempts):
            port = self._port if self._port is not None else free_port()
            argv = chain_argv(
                self._kind,
                root,
                port,
                self._opts,
                state_path=self._state_path,
                workdir=self._workdir,
            )
            with log_path.open("ab") as log:
                offset = log.tell()
                proc = spawn(
                    argv, cwd=root, env=child_env(self._kind), log=log, deathsig=signal.SIGTERM
                )
            # SIGTERM rather than SIGKILL as death signal: anvil then still dumps its state, and
            # the Node wrapper fallback forwards SIGTERM to the native binary.
            with _LIVE_LOCK:
                self._proc = proc
                _LIVE.add(self)
            try:
                wait_ready(
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
