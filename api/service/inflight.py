"""The platform node's originations in flight: loans it has accepted (their id claimed) but whose
record is not yet settled on chain, with their state and age, for `GET /v1/originations/pending`
and the console's platform page.

A request's loans are tracked in memory from the moment it is accepted until its answer is
settled (`InFlight.tracking`, around the idempotent write): first while they are pre-checked and
co-signed (`gathering_cosignatures`), then signed and waiting for a submission round (`queued`,
api/service/submitter.py), then sent in a transaction whose receipt is awaited (`submitted`, with
the transaction's hash). Loans whose idempotency claim survives in the node's database without
any request working on them (a crash, or a receipt that timed out) are listed as `unsettled`: sent,
outcome unknown, settled by retrying the same request; or `claimed` if nothing was sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from api.store import IdempotencyRecord

GATHERING = "gathering_cosignatures"
QUEUED = "queued"
SUBMITTED = "submitted"
UNSETTLED = "unsettled"
CLAIMED = "claimed"


@dataclass(slots=True)
class Entry:
    loan_id: str  # 0x hex, the on-chain id
    state: str
    since: float  # unix seconds: when the node accepted it
    tx_hash: str | None = None

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "loan_id": self.loan_id,
            "state": self.state,
            "accepted_at": int(self.since),
            "age_s": round(max(now - self.since, 0.0), 3),
            "tx_hash": self.tx_hash,
        }


class InFlight:
    """The loans requests are working on, by id (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._refs: dict[str, int] = {}  # requests tracking each id

    def mark(self, loan_ids: Iterable[str], state: str, tx_hash: str | None = None) -> None:
        """A tracked loan moved on (one no request tracks is not listed)."""
        with self._lock:
            for i in loan_ids:
                e = self._entries.get(i)
                if e is not None:
                    e.state, e.tx_hash = state, tx_hash

    @contextmanager
    def tracking(self, loan_ids: list[str]) -> Iterator[None]:
        """The loans of one request, from its acceptance until its answer is settled. Counted:
        a second request for the same id (refused as in progress, or replayed) leaves the first
        one's entry in place."""
        now = self._clock()
        with self._lock:
            for i in loan_ids:
                self._refs[i] = self._refs.get(i, 0) + 1
                if i not in self._entries:
                    self._entries[i] = Entry(i, GATHERING, now)
        try:
            yield
        finally:
            with self._lock:
                for i in loan_ids:
                    n = self._refs.get(i, 1) - 1
                    if n > 0:
                        self._refs[i] = n
                    else:
                        self._refs.pop(i, None)
                        self._entries.pop(i, None)

    def entries(self) -> dict[str, Entry]:
        with self._lock:
            return {
                k: Entry(e.loan_id, e.state, e.since, e.tx_hash) for k, e in self._entries.items()
            }

    def now(self) -> float:
        return self._clock()


def _claimed(engine: Engine) -> list[Entry]:
    """Loan ids claimed in the node's database and not settled."""
    with Session(engine) as s:
        rows = s.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.kind == "loan", IdempotencyRecord.state == "pending"
            )
        ).all()
    out = []
    for r in rows:
        pending = json.loads(r.pending) if r.pending else {}
        state = UNSETTLED if pending.get("submitted") else CLAIMED
        out.append(Entry(r.key, state, float(r.updated_at)))
    return out


def pending(inflight: InFlight, engine: Engine, offset: int, limit: int) -> dict[str, Any]:
    """One page of the originations in flight, oldest first."""
    live = inflight.entries()
    everything = list(live.values()) + [e for e in _claimed(engine) if e.loan_id not in live]
    everything.sort(key=lambda e: (e.since, e.loan_id))
    page = everything[offset : offset + limit]
    now = inflight.now()
    nxt = offset + len(page)
    return {
        "items": [e.to_json(now) for e in page],
        "total": len(everything),
        "next_offset": nxt if nxt < len(everything) else None,
        "as_of": int(now),
    }
