"""Rate-limit buckets in the node's database (api/limits.py says what is limited and why), so a
limit holds across every HTTP process of a node (`workers`, and any second process serving the
same node's database), not once per process.

One row per (scope, key): the tokens left and when they were counted. Taking a token is one
atomic upsert that refills the bucket by the time passed, takes a token if there is one and
says whether it did; so two processes taking at once each see the other's take. On PostgreSQL
the table is UNLOGGED (no write-ahead log, no fsync per request: a crash forgets the buckets,
which only refills them) and the statement runs in autocommit. Times are the wall clock (every
process of a node runs on one machine); a bucket never counts time backwards.
"""

from __future__ import annotations

import itertools
import threading
import time

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

TABLE = "api_rate_bucket"
PRUNE_EVERY = 1_000  # takes per process between removals of full (idle) buckets
_MAX_KEYS = 10_000  # keys with tokens leased to this process

_COLUMNS = (
    "scope VARCHAR(16) NOT NULL, key VARCHAR(80) NOT NULL, tokens DOUBLE PRECISION NOT NULL, "
    "at DOUBLE PRECISION NOT NULL, granted DOUBLE PRECISION NOT NULL, PRIMARY KEY (scope, key)"
)


def _refill(lo: str, hi: str) -> str:
    t = TABLE
    return f"{lo}(:burst, {t}.tokens + {hi}(:now - {t}.at, 0) * :rate)"


def _take_sql(lo: str, hi: str) -> str:
    t, r = TABLE, _refill(lo, hi)
    # up to :lease whole tokens, as many as the bucket holds; in ON CONFLICT DO UPDATE every
    # expression sees the row as it was (both databases)
    n = f"{lo}(:lease, floor({r}))"
    return (
        f"INSERT INTO {t} (scope, key, tokens, at, granted) "
        "VALUES (:scope, :key, :burst - :lease, :now, :lease) "
        "ON CONFLICT (scope, key) DO UPDATE SET "
        f"tokens = {r} - {n}, at = {hi}(:now, {t}.at), granted = {n} "
        "RETURNING tokens, granted"
    )


class Buckets:
    """The node's rate buckets in its database; one engine for every scope."""

    def __init__(self, database_url: str) -> None:
        from ledger.store.db import database_url as normalised

        url = normalised(database_url)
        self.postgres = make_url(url).get_backend_name() == "postgresql"
        if self.postgres:
            # one statement per take: autocommit, and no pre-ping (a dead pooled connection is
            # replaced and the statement run once more instead)
            self.engine: Engine = create_engine(url, isolation_level="AUTOCOMMIT")
            ddl = f"CREATE UNLOGGED TABLE IF NOT EXISTS {TABLE} ({_COLUMNS})"
            self._take = text(_take_sql("LEAST", "GREATEST"))
        else:
            from api.store import make_engine

            self.engine = make_engine(url)
            ddl = f"CREATE TABLE IF NOT EXISTS {TABLE} ({_COLUMNS})"
            self._take = text(_take_sql("min", "max"))
        with self.engine.begin() as conn:
            conn.execute(text(ddl))
        self._count = itertools.count()

    def bucket(self, scope: str, rate: float, burst: int) -> DbBucket:
        return DbBucket(self, scope, rate, burst)

    def take(
        self, scope: str, key: str, rate: float, burst: int, lease: int = 1
    ) -> tuple[float, int]:
        """Take `lease` tokens for `key` (fewer if fewer are there): 0.0 and how many were
        taken, or the seconds until one will be and 0."""
        now = time.time()
        params = {"scope": scope, "key": key[:80], "rate": float(rate), "burst": float(burst),
                  "lease": float(lease), "now": now}  # fmt: skip
        try:
            row = self._run(params)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            row = self._run(params)
        if next(self._count) % PRUNE_EVERY == PRUNE_EVERY - 1:
            self._prune(scope, rate, burst, now)
        tokens, granted = float(row[0]), int(row[1])
        return (0.0, granted) if granted else ((1.0 - tokens) / rate, 0)

    def _run(self, params: dict[str, object]) -> tuple[float, float]:
        with self.engine.begin() as conn:
            row = conn.execute(self._take, params).one()
        return row[0], row[1]

    def _prune(self, scope: str, rate: float, burst: int, now: float) -> None:
        """A full bucket is the same as none: drop them, so idle keys do not pile up."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"DELETE FROM {TABLE} WHERE scope = :scope "
                    "AND tokens + (:now - at) * :rate >= :burst"
                ),  # fmt: skip
                {"scope": scope, "now": now, "rate": float(rate), "burst": float(burst)},
            )

    def close(self) -> None:
        self.engine.dispose()


class DbBucket:
    """One scope's buckets, one per key, each holding up to `burst` tokens refilled at `rate` a
    second, shared by every process of the node.

    A process takes tokens from the database a few at a time (`lease`: 1 for a bucket of up to
    127 tokens, so small limits are exact; at most 16) and spends them before it asks again, so
    a busy caller costs the database one statement per `lease` requests. Leased tokens are
    taken from the shared bucket: no process ever serves more than the limit allows; a caller
    can at most be refused while up to `lease - 1` tokens wait unspent in another process."""

    def __init__(self, buckets: Buckets, scope: str, rate: float, burst: int) -> None:
        self.buckets, self.scope = buckets, scope
        self.rate, self.burst = float(rate), int(burst)
        self.lease = max(1, min(16, self.burst // 64))
        self._leased: dict[str, int] = {}
        self._lock = threading.Lock()

    def take_leased(self, key: str) -> bool:
        """Spend a token this process already holds for `key` (no database): True if it did."""
        with self._lock:
            left = self._leased.get(key, 0)
            if left <= 0:
                return False
            self._leased[key] = left - 1
            return True

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 if one was there, else the seconds until one will be."""
        if self.take_leased(key):
            return 0.0
        wait, got = self.buckets.take(self.scope, key, self.rate, self.burst, self.lease)
        if got > 1:
            with self._lock:
                if len(self._leased) >= _MAX_KEYS:
                    self._leased.clear()  # forgetting leased tokens only ever refuses sooner
                self._leased[key] = self._leased.get(key, 0) + got - 1
        return wait
