"""The loopback signal between a node's HTTP process(es) and its follower process (the indexer
and the alert watcher, api/follower.py), so a reader can wait for a newer block without
polling the database and an idle node sends nothing at all.

Unix datagram sockets in one private directory per node (made by the node process, 0700):
- the follower binds `follower.sock`; each HTTP process binds `http-<pid>.sock`;
- HTTP -> follower: `w` (a reader needs a newer block: poll the chain now, and answer with the
  cursor), `r` (look for due webhook deliveries now), `p` (a liveness probe, ignored);
- follower -> every `http-*.sock` in the directory, after each indexed range and in answer to
  `w`: `<indexer cursor> <alert watcher's block>` (-1 while unknown). A socket nobody listens
  on any more is removed.
A lost datagram costs a reader at most its wait (`IndexedReads.as_of`'s timeout), never a
wrong answer: every answer still says the block it is as of.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

log = logging.getLogger("api.follow")

FOLLOWER = "follower.sock"
WAKE, RETRY, PROBE = b"w", b"r", b"p"


def _socket(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path.unlink(missing_ok=True)
    s.bind(str(path))
    return s


def encode(block: int, alerts_block: int) -> bytes:
    return f"{block} {alerts_block}".encode()


class HttpLink:
    """The HTTP process's end: the follower's latest cursor, and waiting for a newer one."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / f"http-{os.getpid()}.sock"
        self._sock = _socket(self.path)
        self._changed = threading.Condition()
        self.block = -1  # the follower's indexer cursor; -1 until it has migrated the schema
        self.alerts_block: int | None = None
        self.heard = False  # from the follower since it was (re)started
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name="follow-link", daemon=True)
        self._thread.start()
        self.send(WAKE)  # ask for the cursor now (a follower starting later announces it)

    def send(self, message: bytes) -> bool:
        """True when the follower's socket took it (a liveness check as well)."""
        try:
            self._sock.sendto(message, str(self.directory / FOLLOWER))
            return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.send(PROBE)

    def wait_for(self, block: int, timeout: float) -> int:
        """Until the follower reports `block` indexed or `timeout` passes; the cursor."""
        with self._changed:
            if self.block >= block:
                return self.block
        self.send(WAKE)
        with self._changed:
            self._changed.wait_for(lambda: self.block >= block or self._closed, timeout)
            return self.block

    def _receive(self) -> None:
        while True:
            try:
                data = self._sock.recv(64)
            except OSError:
                return  # closed
            try:
                cursor, alerts = (int(x) for x in data.split())
            except ValueError:
                continue
            with self._changed:
                self.heard = True
                self.block = cursor
                self.alerts_block = None if alerts < 0 else alerts
                self._changed.notify_all()

    def forget(self) -> None:
        """The follower died: not heard from again until its successor reports."""
        self.heard = False

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._sock.close()
        self.path.unlink(missing_ok=True)


class FollowerLink:
    """The follower's end: wakes from HTTP processes in, cursors out to each of them."""

    def __init__(
        self, directory: Path, on_wake: threading.Event, on_retry: threading.Event
    ) -> None:
        self.directory = Path(directory)
        self._sock = _socket(self.directory / FOLLOWER)
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._lock = threading.Lock()
        self.on_wake, self.on_retry = on_wake, on_retry
        self.block, self.alerts_block = -1, -1
        self._thread = threading.Thread(target=self._receive, name="follow-link", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while True:
            try:
                data, sender = self._sock.recvfrom(16)
            except OSError:
                return
            if data == WAKE:
                self.on_wake.set()
                if sender:
                    self._send(Path(sender))
            elif data == RETRY:
                self.on_retry.set()

    def announce(self, block: int | None = None, alerts_block: int | None = None) -> None:
        """Tell every HTTP process the cursor (and the alert watcher's block), if changed."""
        with self._lock:
            changed = False
            if block is not None and block != self.block:
                self.block, changed = block, True
            if alerts_block is not None and alerts_block != self.alerts_block:
                self.alerts_block, changed = alerts_block, True
            if not changed:
                return
            for path in self.directory.glob("http-*.sock"):
                self._send(path)

    def _send(self, path: Path) -> None:
        try:
            self._out.sendto(encode(self.block, self.alerts_block), str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # that HTTP process has gone
        except BlockingIOError:
            pass  # its queue is full: it will ask again (`w`) when it needs to
        except OSError as exc:
            log.debug("cannot signal %s: %s", path.name, exc)

    def close(self) -> None:
        self._sock.close()
        self._out.close()
        (self.directory / FOLLOWER).unlink(missing_ok=True)
