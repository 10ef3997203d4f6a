"""Several HTTP processes for one node (`workers` in its settings, default 1).

The node process (`python -m api --config F`) binds the listening socket, serves on it itself
and starts `workers - 1` more processes serving on the same socket (the kernel hands each
connection to one of them), restarting any that dies (api/service/supervised.py). Everything
they share lives in the node's database: idempotency claims, sign-in nonces, tokens and the
rate-limit buckets (api/buckets.py). The node process alone runs what follows the chain (its
follower process) and the keepers.

Transactions from the member's account: a platform node refuses `workers` > 1, because its
submitter pipelines rounds of co-loans on nonces reserved in one process
(api/service/submitter.py). On lender and auditor nodes each transaction (attestations, freezes,
classifications, a pause, the line keeper's expiries) is sent under the node's account lock
(`AccountLock`, a file lock shared by its processes) with the nonce read afresh from the chain
under it, so two processes never send the same nonce.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from api.service.supervised import Supervised
from api.settings import NodeSettings

log = logging.getLogger("api")

BACKLOG = 2048


def refusal(settings: NodeSettings) -> str | None:
    """Why these settings' `workers` cannot be served (one line), or None."""
    if settings.workers > 1 and settings.role == "platform":
        return (
            f"workers: a platform node serves with 1 worker, not {settings.workers}: its "
            "submitter sends the member's co-loans in pipelined rounds on nonces reserved in one "
            "process (run more workers on lender and auditor nodes)"
        )
    return None


def listen(host: str, port: int) -> socket.socket:
    """The node's listening socket, inherited by its extra workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on connections accepted from a socket whose
    # `proto` says TCP, and `socket.socket(family, SOCK_STREAM)` says 0. Without it every response
    # (headers, then body: two writes) waited on the client's delayed ACK, about 40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


class WorkerPool:
    """The node's extra HTTP workers, each `python -m api --config F --worker-of DIR --fd N`."""

    def __init__(
        self, config: Path, link_dir: Path, sock: socket.socket, count: int, log_level: str
    ) -> None:
        fd = sock.fileno()
        self.link_dir = link_dir

        def argv() -> list[str]:
            return [
                sys.executable, "-m", "api", "--config", str(config), "--log-level", log_level,
                "--worker-of", str(link_dir), "--fd", str(fd), "--parent", str(os.getpid()),
            ]  # fmt: skip

        self.workers = [Supervised(f"http-worker-{i + 1}", argv, (fd,)) for i in range(count)]

    def start(self) -> None:
        for w in self.workers:
            w.start()

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        shutil.rmtree(self.link_dir, ignore_errors=True)


class AccountLock:
    """One sender at a time for the member's account across the node's processes: a thread
    lock within a process (an flock is held per open file, not per thread) and an exclusive
    file lock across them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._thread_lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
