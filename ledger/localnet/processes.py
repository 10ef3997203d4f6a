"""Supervision of the local processes the tooling starts (chains and member nodes): process
groups, /proc start times (so a reused pid is never mistaken for ours), parent-death signals,
kill with grace, loopback ports, log tails. Local tooling only; production nodes never import it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

HOST = "127.0.0.1"
SETUP_HINT = "run `bash scripts/setup.sh`"
_LOG_TAIL_CHARS = 4000

T = TypeVar("T")


class ProcessError(RuntimeError):
    """A local process (a chain or a member's node) could not be found, started or stopped."""


# --------------------------------------------------------------------------------------------
# Project layout and binaries


def find_project_root() -> Path:
    """The directory holding hardhat.config.js; ``LEDGER_ROOT`` overrides the search."""
    env = os.environ.get("LEDGER_ROOT")
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / "hardhat.config.js").is_file():
            raise ProcessError(f"LEDGER_ROOT={env} has no hardhat.config.js")
        return root
    # The package is normally used from a checkout (editable install), so the file's own location
    # is the reliable anchor; the cwd is a fallback for unusual installs.
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "hardhat.config.js").is_file():
                return candidate
    raise ProcessError("cannot find the project root (no hardhat.config.js); set LEDGER_ROOT")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Process inspection (Linux /proc, with a portable fallback)

_HAVE_PROC = Path("/proc/self/stat").exists()


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgrp, starttime) of a process, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses, so split after the last ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[2]), int(rest[19])


def pid_alive(pid: int) -> bool:
    if _HAVE_PROC:
        st = proc_stat(pid)
        # Zombies count as dead: orphans are reparented to an init that may reap them late.
        return st is not None and st[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_ours(pid: int, pgid: int, started: int | None) -> bool:
    """Whether `pid` is still the process we recorded: alive, in its group, and (where /proc
    tells) started at the same kernel tick, so a reused pid is never mistaken for ours."""
    if not pid_alive(pid):
        return False
    st = proc_stat(pid) if _HAVE_PROC else None
    if st is None:
        return True
    return st[1] == pgid and (started is None or st[2] == started)


def start_ticks(pid: int) -> int | None:
    st = proc_stat(pid) if _HAVE_PROC else None
    return st[2] if st else None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    if not _HAVE_PROC:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st is not None and st[1] == pgid and st[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def _listening_inodes(port: int) -> set[int]:
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(f[9]))
    return inodes


def group_owns_port(pgid: int, port: int) -> bool:
    """Whether the listener on ``port`` belongs to our process group.

    An answer on the port alone proves nothing: another chain may already hold it while ours is
    about to die with EADDRINUSE.
    """
    if not _HAVE_PROC:
        return True
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for pid in group_members(pgid):
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"{fd_dir}/{fd}") in wanted:
                    return True
    return False


def log_tail(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(offset, fh.tell() - _LOG_TAIL_CHARS))
            text = fh.read().decode("utf-8", "replace").strip()
    except OSError as exc:
        return f"<log unavailable: {exc}>"
    return text or "<log is empty>"


# --------------------------------------------------------------------------------------------
# Spawning and killing


def _deathsig_preexec(sig: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    # Resolve prctl before fork: the child of a threaded parent should not load libraries.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        if prctl(pr_set_pdeathsig, sig, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent may have died between fork and prctl; the signal would then never come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class _Spawner:
    """Runs Popen on a thread that lives as long as the process.

    PR_SET_DEATHSIG fires when the *thread* that forked the child exits, not the process: a chain
    started from a worker thread (thread pools, anyio.to_thread) would be killed as soon as that
    worker retires. The main thread and this daemon thread both last until the process exits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is threading.main_thread():
            return fn()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ledger-chain-spawner", daemon=True
                )
                self._thread.start()
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def _run(self) -> None:
        while True:
            fn, fut = self._jobs.get()
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                fut.set_exception(exc)


_spawner = _Spawner()


def spawn(
    argv: list[str], *, cwd: Path, env: dict[str, str], log: IO[bytes], deathsig: int | None
) -> subprocess.Popen[bytes]:
    preexec = _deathsig_preexec(deathsig) if deathsig is not None else None

    def go() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own session and process group: the terminal's Ctrl-C does not reach the chain
            # directly (we stop it in order), and killpg reaches any wrapper's grandchildren.
            start_new_session=True,
            preexec_fn=preexec,
        )

    try:
        return _spawner.call(go) if preexec is not None else go()
    except OSError as exc:
        raise ProcessError(f"cannot start {argv[0]}: {exc}; {SETUP_HINT}") from exc


def kill_group(
    pgid: int, proc: subprocess.Popen[bytes] | None, grace: float, kill_wait: float = 5.0
) -> None:
    """SIGTERM the group, SIGKILL whatever is left after ``grace``, reap our own child."""

    def gone(deadline: float) -> bool:
        while True:
            if proc is not None:
                proc.poll()  # reap the leader so it does not linger as a zombie
            if not group_members(pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        if not gone(time.monotonic() + grace):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            if not gone(time.monotonic() + kill_wait):
                raise ProcessError(f"process group {pgid} survived SIGKILL")
    except BaseException:
        # A second Ctrl-C while waiting must not leave the chain behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        raise
    finally:
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=kill_wait)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the nodes do: our own earlier connections in TIME_WAIT must not count as "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


# --------------------------------------------------------------------------------------------
# Records of started processes (a detached chain's chain.json, the nodes' nodes.json)


def write_record(path: Path, text: str) -> None:
    """Write a process record so that readers never see a half-written file."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def stop_recorded(
    pid: int,
    pgid: int,
    started: int | None,
    started_here: dict[int, subprocess.Popen[bytes]],
    timeout: float,
) -> bool:
    """Stop a recorded process group if it is still ours; True if it was running. `started_here`
    holds the Popen objects this process started, so that one that is stopped (or died on its
    own) is reaped rather than left as a zombie."""
    proc = started_here.pop(pid, None)
    if is_ours(pid, pgid, started):
        kill_group(pgid, proc, timeout)
        return True
    if proc is not None:
        proc.wait()  # exited on its own: reap it
    return False
