"""The indexer: the contracts' events (registry, ledger and LoanServicing) into the SQL read
model, reorg-safe and resumable.

* **Ranges that adapt** (`ledger.ingest.spans`). One eth_getLogs per block range, for all the
  contracts' addresses, aimed at about 2,000 events. A range the node refuses is halved; an answer
  that outgrows 16 MB is abandoned as it arrives and the range cut to the blocks it had got
  through, so no range holds more than that however dense the chain turns.
* **Read ahead.** While range k is written, range k+1 is read and decoded on a worker thread
  (`ledger.ingest.fetch`); at most one range waits, so memory stays bounded. A range read ahead
  is written only if it still continues the chain as committed (the check below).
* **One transaction per range.** Raw events, derived rows, aggregates, block hashes and the
  cursor commit together, so a process killed at any point (SIGKILL included) leaves the
  database at the end of the last committed range: nothing lost, nothing twice. Raw events are
  unique on (block hash, log index) and the cursor row is locked and checked inside the
  transaction, so a second indexer on the same database cannot apply a range twice either.
* **Reorg-safe.** Before a range is written, the parent hash of its first block must be the hash
  stored for the cursor block, and every log's block hash must match a header fetched after the
  logs. On a mismatch the indexer finds the newest stored block the chain still has (it keeps
  the last `keep_blocks` headers and every block with events), rolls back to it in one
  transaction (`ledger.ingest.rollback`) and ingests again.
* **Confirmations**: how far behind the head to stay (0 for anvil and for QBFT's immediate
  finality).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from ledger.chain.deployment import Deployment
from ledger.chain.events import EventDecoder
from ledger.chain.rpc import NodeUnavailable, ResultTooLarge, Rpc, RpcError
from ledger.ingest import cursor
from ledger.ingest.fetch import ChainMoved, Fetched, Prefetch, fetch_range
from ledger.ingest.heap import older_objects_frozen
from ledger.ingest.rollback import rollback
from ledger.ingest.spans import INITIAL_SPAN, MAX_RANGE_BYTES, MAX_SPAN, TARGET_EVENTS, Spans
from ledger.ingest.writer import prune_blocks, stored_blocks, write_range
from ledger.store.db import upgrade

if TYPE_CHECKING:
    from ledger.chain.client import LedgerClient
    from ledger.ingest.consistency import Mismatch

log = logging.getLogger("ledger.indexer")


class IndexerError(Exception):
    """The indexer cannot go on (wrong database, wrong chain, node gone for too long)."""


class _Reorg(Exception):
    """The chain no longer has the block the cursor points at."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a catch-up stands, handed to the `progress` callback after each range."""

    start_block: int
    block: int
    target: int
    events: int
    elapsed: float


@dataclass(slots=True)
class CatchUpResult:
    """What one catch-up did."""

    start_block: int
    last_block: int
    target: int
    events: int = 0
    ranges: int = 0
    refused_ranges: int = 0
    oversized_ranges: int = 0  # answers abandoned for outgrowing max_range_bytes
    reorgs: int = 0
    rolled_back_events: int = 0
    seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Indexer:
    """Indexes one deployment into one database."""

    def __init__(
        self,
        engine: Engine,
        rpc: str | Rpc,
        deployment: Deployment,
        *,
        confirmations: int = 0,
        span: int = INITIAL_SPAN,
        max_span: int = MAX_SPAN,
        target_events: int = TARGET_EVENTS,
        max_range_bytes: int = MAX_RANGE_BYTES,
        keep_blocks: int = 256,
        retries: int = 8,
        migrate: bool = True,
    ) -> None:
        self.engine = engine
        self.rpc = rpc if isinstance(rpc, Rpc) else Rpc(rpc)
        self.deployment = deployment
        self.confirmations = confirmations
        self.spans = Spans(span, max_span, target_events)
        self.keep_blocks = keep_blocks
        self.retries = retries
        self.decoder = EventDecoder(
            deployment.registry, deployment.ledger, servicing=deployment.servicing
        )
        self.max_range_bytes = max_range_bytes
        self._prefetch = Prefetch(self.rpc, self.decoder, max_range_bytes)
        self._migrate = migrate
        self._prepared = False
        self._last_block = deployment.deployment_block - 1
        self._last_hash: bytes | None = None
        self._pruned_below = 0
        self._retries = 0  # consecutive ranges the chain changed under

    def close(self) -> None:
        self._prefetch.close()
        self.rpc.close()

    @property
    def last_block(self) -> int:
        """The last block whose events are all in the database."""
        return self._last_block

    @property
    def prepared(self) -> bool:
        """The schema is migrated and the cursor loaded (`prepare` has run)."""
        return self._prepared

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """Upgrade the schema, check the database and node are this deployment's, load the
        cursor. Idempotent."""
        if self._prepared:
            return
        if self._migrate:
            upgrade(self.engine)
        dep = self.deployment
        chain_id = self.rpc.chain_id()
        if chain_id != dep.chain_id:
            raise IndexerError(f"the node is chain {chain_id}, the deployment chain {dep.chain_id}")
        with self.engine.begin() as conn:
            row = cursor.claim(conn, dep)
        if (row["chain_id"], row["registry_address"], row["ledger_address"]) != (
            dep.chain_id,
            dep.registry,
            dep.ledger,
        ):
            raise IndexerError(
                f"this database indexes registry {row['registry_address']} and ledger "
                f"{row['ledger_address']} on chain {row['chain_id']}, not this deployment; "
                "use another database"
            )
        self._load_cursor()
        self._follow_servicing(row["servicing_address"])
        self._prepared = True

    def _follow_servicing(self, indexed: str | None) -> None:
        """A database indexed before the indexer followed LoanServicing (its cursor names no
        servicing contract) holds none of its events: it is indexed again from the deployment's
        first block, as a read model can always be (DESIGN §6)."""
        dep = self.deployment
        if indexed is not None and indexed != dep.servicing:
            raise IndexerError(
                f"this database indexes servicing contract {indexed or 'none'}, the deployment "
                f"{dep.servicing or 'none'}; use another database"
            )
        if indexed is None:
            if self._last_block >= dep.deployment_block and dep.servicing:
                log.warning("indexing again from block %d to add LoanServicing's events",
                            dep.deployment_block)  # fmt: skip
                self._rollback(dep.deployment_block - 1, None)
            with self.engine.begin() as conn:
                cursor.follow_servicing(conn, dep.servicing)

    def _load_cursor(self) -> None:
        with self.engine.connect() as conn:
            self._last_block, self._last_hash = cursor.read(conn)

    # ------------------------------------------------------------------ catch-up

    def _target(self, to_block: int | None) -> int:
        safe = self.rpc.block_number() - self.confirmations
        return safe if to_block is None else min(to_block, safe)

    def catch_up(
        self, to_block: int | None = None, progress: Callable[[Progress], None] | None = None
    ) -> CatchUpResult:
        """Index up to `to_block` (default: the head less the confirmations, as of now)."""
        self.prepare()
        t0 = time.perf_counter()
        res = CatchUpResult(self._last_block + 1, self._last_block, self._target(to_block))
        with older_objects_frozen():  # see ledger.ingest.heap
            failures = 0
            while True:
                try:
                    n = self._step(res, to_block)
                except NodeUnavailable as exc:
                    failures += 1
                    if failures > self.retries:
                        raise IndexerError(f"node unavailable: {exc}") from exc
                    log.warning("node unavailable (%s); retrying", exc)
                    time.sleep(min(0.25 * 2**failures, 10.0))
                    continue
                except RpcError as exc:
                    failures += 1
                    if failures > self.retries:
                        raise IndexerError(
                            f"the node refuses block {self._last_block + 1}: {exc}"
                        ) from exc
                    time.sleep(min(0.25 * 2**failures, 10.0))
                    continue
                if n is None:
                    break
                failures = 0
                if progress is not None and n >= 0:
                    elapsed = time.perf_counter() - t0
                    progress(
                        Progress(res.start_block, self._last_block, res.target, res.events, elapsed)
                    )
        res.last_block = self._last_block
        res.seconds = time.perf_counter() - t0
        return res

    def _step(self, res: CatchUpResult, to_block: int | None) -> int | None:
        """One range (or one reorg). Returns the events ingested, -1 when nothing was ingested
        but there is more to do, None when caught up."""
        if self._last_block >= res.target:
            if self._tip_matches():
                return None
            self._reorg(res)
            res.target = self._target(to_block)
            return -1
        frm = self._last_block + 1
        to = min(res.target, frm + self.spans.span - 1)
        ahead = self._prefetch.take(frm)
        if ahead is not None:
            to = ahead[0]
        try:
            r = self._advance(frm, to, ahead, res.target)
        except _Reorg:
            self._reorg(res)
            res.target = self._target(to_block)
            return -1
        except ChainMoved:
            self._retries += 1
            if self._retries > 50:
                raise IndexerError(
                    "the node's logs and block headers keep disagreeing; is it a load balancer "
                    "over nodes at different heights?"
                ) from None
            res.target = self._target(to_block)
            return -1
        except cursor.CursorMoved:
            self._load_cursor()
            return -1
        except ResultTooLarge as exc:
            self.spans.oversized(frm, to, exc.reached)
            res.oversized_ranges += 1
            return -1
        except RpcError as exc:
            if isinstance(exc, NodeUnavailable) or to == frm:
                raise
            self.spans.refused(frm, to)
            res.refused_ranges += 1
            return -1
        n = len(r.events)
        self._retries = 0
        res.events += n
        res.ranges += 1
        res.last_block = self._last_block
        return n

    def _advance(
        self, frm: int, to: int, ahead: tuple[int, Future[Fetched]] | None, target: int
    ) -> Fetched:
        """Read [frm, to] (or take it from the read-ahead), start reading the next range, then
        write this one."""
        try:
            r = (
                fetch_range(self.rpc, self.decoder, frm, to, self.max_range_bytes)
                if ahead is None
                else ahead[1].result()
            )
            self.spans.read(len(r.events))
            if r.to < target:
                self._prefetch.start(r.to + 1, min(target, r.to + self.spans.span))
            self._write(r)
        except BaseException:
            self._prefetch.drop()  # read ahead of a range that was not written
            raise
        return r

    def _tip_matches(self) -> bool:
        if self._last_hash is None:
            return True
        h = self.rpc.headers([self._last_block])[self._last_block]
        return h is not None and h.hash == self._last_hash

    def _write(self, r: Fetched) -> None:
        """Commit one range read by `fetch_range`, if it continues the indexed chain."""
        if self._last_hash is not None and r.parent_hash != self._last_hash:
            raise _Reorg
        with self.engine.begin() as conn:
            cursor.lock(conn, (self._last_block, self._last_hash))
            write_range(conn, r.events, r.headers, r.to)
            # blocks without events are only needed near the head, to find a common ancestor
            below = r.to - self.keep_blocks
            if below > self._pruned_below:
                prune_blocks(conn, self._pruned_below, below)
                self._pruned_below = below
            cursor.move(conn, r.to, r.last.hash)
        self._last_block, self._last_hash = r.to, r.last.hash

    # ------------------------------------------------------------------ reorgs

    def _find_ancestor(self) -> tuple[int, bytes | None]:
        """The newest stored block the chain still has, else just before the deployment."""
        upper = self._last_block
        while True:
            with self.engine.connect() as conn:
                stored = stored_blocks(conn, upper)
            if not stored:
                return self.deployment.deployment_block - 1, None
            chain = self.rpc.headers(n for n, _ in stored)
            for number, block_hash in stored:
                h = chain[number]
                if h is not None and h.hash == block_hash:
                    return number, block_hash
            upper = stored[-1][0] - 1

    def _reorg(self, res: CatchUpResult) -> None:
        ancestor, ancestor_hash = self._find_ancestor()
        old = self._last_block
        removed = self._rollback(ancestor, ancestor_hash)
        log.warning("reorg: rolled back from block %d to %d (%d events)", old, ancestor, removed)
        res.reorgs += 1
        res.rolled_back_events += removed

    def _rollback(self, block: int, block_hash: bytes | None) -> int:
        with self.engine.begin() as conn:
            cursor.lock(conn, (self._last_block, self._last_hash))
            removed = rollback(conn, block)
            cursor.move(conn, block, block_hash)
        self._last_block, self._last_hash = block, block_hash
        self._pruned_below = min(self._pruned_below, max(0, block - self.keep_blocks))
        return removed

    def rollback_to(self, block: int) -> int:
        """Forget everything above `block` (to index it again), in one transaction.
        Returns the number of events removed."""
        self.prepare()
        if block >= self._last_block:
            return 0
        if block < self.deployment.deployment_block:
            return self._rollback(self.deployment.deployment_block - 1, None)
        h = self.rpc.headers([block])[block]
        if h is None:
            raise IndexerError(f"the node has no block {block}")
        return self._rollback(block, h.hash)

    # ------------------------------------------------------------------ follow and check

    def follow(
        self,
        poll_interval: float = 1.0,
        stop: threading.Event | None = None,
        progress: Callable[[Progress], None] | None = None,
        *,
        wake: threading.Event | None = None,
        idle_interval: float | None = None,
    ) -> None:
        """Keep indexing new blocks until `stop` is set; a node or database outage is waited
        out. While the chain makes no new blocks the pause between polls doubles, from
        `poll_interval` up to `idle_interval` (default: no backing off), so an idle node costs
        next to nothing; setting `wake` (a reader waiting for a block) polls at once."""
        stop = stop or threading.Event()
        wake = wake or stop
        idle_interval = max(idle_interval or poll_interval, poll_interval)
        interval = poll_interval
        failures = 0
        while not stop.is_set():
            try:
                res = self.catch_up(progress=progress)
                failures = 0
            except (IndexerError, NodeUnavailable) as exc:
                if not isinstance(exc, NodeUnavailable) and not isinstance(
                    exc.__cause__, NodeUnavailable
                ):
                    raise
                failures += 1
                log.warning("node unavailable, waiting (%s)", exc)
                stop.wait(min(2.0**failures, 30.0))
                continue
            except (OperationalError, InterfaceError) as exc:
                # the database went away (a restart, a failover): nothing half-written stays,
                # each range commits with the cursor; carry on from the cursor once it is back
                failures += 1
                log.warning("database unavailable, waiting (%s)", type(exc.orig).__name__)
                stop.wait(min(0.5 * 2.0**failures, 10.0))
                continue
            moved = res.last_block >= res.start_block
            interval = poll_interval if moved else min(interval * 2, idle_interval)
            if wake.wait(interval) and wake is not stop:
                wake.clear()

    def check_consistency(self, client: LedgerClient, block: int | None = None) -> list[Mismatch]:
        """Every maintained aggregate, loan, line and member against the contracts' views at
        `block` (default: the block the database is indexed to). Empty when they agree."""
        from ledger.ingest.consistency import check

        self.prepare()
        return check(self.engine, self.rpc, client, block)
