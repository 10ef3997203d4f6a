"""Reading one block range from the node, and reading the next while the last is written.

A range is read as: the headers of its first and last blocks, the logs, then the headers of
every block with events and of the last block again. Logs whose block hash is not the header's,
or a last block that changed meanwhile, mean the chain moved under the read (`ChainMoved`): it
is read again. Whether the range continues the indexed chain (its first block's parent is the
cursor block) is for the writer to check, against the cursor as committed.

Reading (the node's time, JSON and ABI decoding) and writing (the database's time) use different
resources, so the indexer reads range k+1 on a worker thread while it writes range k
(`Prefetch`). At most one range waits read but unwritten, so memory stays bounded by two ranges.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ledger.chain.events import ChainEvent, EventDecoder
from ledger.chain.rpc import Header, Rpc


class ChainMoved(Exception):
    """The chain changed while a range was being read; read it again."""


@dataclass(slots=True)
class Fetched:
    """One block range as read: its events (with timestamps) and the headers they need."""

    frm: int
    to: int
    parent_hash: bytes  # of block `frm`, as read
    last: Header  # block `to`
    events: list[ChainEvent]
    headers: dict[int, Header | None]  # every block with events, and `to`


def fetch_range(
    rpc: Rpc, decoder: EventDecoder, frm: int, to: int, max_bytes: int | None = None
) -> Fetched:
    """The decoded events of [frm, to] with the headers they were read against. ResultTooLarge
    when the node's answer for more than one block outgrows `max_bytes`."""
    before = rpc.headers([frm, to])
    h_frm, h_to = before[frm], before[to]
    if h_frm is None or h_to is None:
        raise ChainMoved  # the chain is shorter than it was
    logs = rpc.get_logs(frm, to, decoder.addresses, max_bytes=max_bytes)
    events = [ev for ev in map(decoder.decode, logs) if ev is not None]
    after = rpc.headers({ev.block_number for ev in events} | {to})
    if after[to] is None or after[to].hash != h_to.hash:  # type: ignore[union-attr]
        raise ChainMoved
    for ev in events:
        h = after[ev.block_number]
        if h is None or h.hash != ev.block_hash:
            raise ChainMoved
        ev.timestamp = h.timestamp
    return Fetched(frm, to, h_frm.parent_hash, h_to, events, after)


class Prefetch:
    """At most one range being read in the background."""

    def __init__(self, rpc: Rpc, decoder: EventDecoder, max_bytes: int | None = None) -> None:
        self._rpc, self._decoder, self._max_bytes = rpc, decoder, max_bytes
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[int, int, Future[Fetched]] | None = None

    def start(self, frm: int, to: int) -> None:
        """Begin reading [frm, to] (dropping any other range being read)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="ledger-index-fetch")
        self.drop()
        future = self._pool.submit(fetch_range, self._rpc, self._decoder, frm, to, self._max_bytes)
        self._pending = (frm, to, future)

    def take(self, frm: int) -> tuple[int, Future[Fetched]] | None:
        """The range being read from `frm` (its last block and its future), if there is one."""
        pending = self._pending
        if pending is None or pending[0] != frm:
            self.drop()
            return None
        self._pending = None
        return pending[1], pending[2]

    def drop(self) -> None:
        """Forget the range being read (its result, or error, is never looked at)."""
        if self._pending is not None:
            self._pending[2].cancel()
            self._pending = None

    def close(self) -> None:
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
