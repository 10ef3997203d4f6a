"""A child process of a node, started and kept running by the node process: its follower (the
indexer and the alert watcher) and its extra HTTP workers. A child that dies is started again
after 1 s, doubling to 30 s while it keeps dying, and `error` says so meanwhile; `stop` ends
it (SIGTERM, then SIGKILL after a grace period). A child also dies with its parent
(`die_with_parent`, PR_SET_PDEATHSIG on Linux), so a killed node leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("api")

MAX_BACKOFF_S = 30.0
STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGTERM this process when its parent dies (Linux); exit now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the parent's stop() still ends it
    if os.getppid() != parent:
        sys.exit(0)


class Supervised:
    def __init__(
        self,
        name: str,
        argv: Callable[[], list[str]],
        pass_fds: Sequence[int] = (),
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._on_exit = on_exit
        self._argv = argv
        self._pass_fds = tuple(pass_fds)
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.exits = 0  # how many times it died and was started again
        self.error: str | None = None

    def start(self) -> None:
        self._proc = self._launch()
        self._thread = threading.Thread(target=self._supervise, name=self.name, daemon=True)
        self._thread.start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _launch(self) -> subprocess.Popen[bytes]:
        # its output goes where the node's does (the node's log)
        return subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, pass_fds=self._pass_fds)

    def _supervise(self) -> None:
        backoff = 1.0
        while True:
            proc = self._proc
            assert proc is not None
            started = time.monotonic()
            code = proc.wait()
            if self._stop.is_set():
                return
            self.exits += 1
            if self._on_exit is not None:
                self._on_exit()
            if time.monotonic() - started > 2 * MAX_BACKOFF_S:
                backoff = 1.0  # it had been running well: a fresh failure
            self.error = (
                f"the {self.name} process exited with code {code}; restarting it in {backoff:g} s"
            )
            log.error("%s (see its output above)", self.error)
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            self._proc = self._launch()
            self.error = None
            if self._stop.is_set():  # stopped while it was being started
                self._proc.terminate()
                self._proc.wait()
                return

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=STOP_GRACE_S)
