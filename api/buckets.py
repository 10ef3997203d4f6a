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
import time

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

TABLE = "api_rate_bucket"
PRUNE_EVERY = 1_000  # takes per process between removals of full (idle) buckets

_COLUMNS = (
    "scope VARCHAR(16) NOT NULL, key VARCHAR(80) NOT NULL, tokens DOUBLE PRECISION NOT NULL, "
    "at DOUBLE PRECISION NOT NULL, granted BOOLEAN NOT NULL, PRIMARY KEY (scope, key)"
)


def _refill(lo: str, hi: str) -> str:
    t = TABLE
    return f"{lo}(:burst, {t}.tokens + {hi}(:now - {t}.at, 0) * :rate)"


def _take_sql(lo: str, hi: str) -> str:
    t, r = TABLE, _refill(lo, hi)
    # In ON CONFLICT DO UPDATE every expression sees the row as it was (both databases).
    return (
        f"INSERT INTO {t} (scope, key, tokens, at, granted) "
        "VALUES (:scope, :key, :full_less_one, :now, true) "
        "ON CONFLICT (scope, key) DO UPDATE SET "
        f"tokens = CASE WHEN {r} >= 1 THEN {r} - 1 ELSE {r} END, "
        f"at = {hi}(:now, {t}.at), granted = ({r} >= 1) "
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

    def take(self, scope: str, key: str, rate: float, burst: int) -> float:
        now = time.time()
        params = {"scope": scope, "key": key[:80], "rate": float(rate), "burst": float(burst),
                  "full_less_one": float(burst) - 1.0, "now": now}  # fmt: skip
        try:
            row = self._run(params)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            row = self._run(params)
        if next(self._count) % PRUNE_EVERY == PRUNE_EVERY - 1:
            self._prune(scope, rate, burst, now)
        tokens, granted = float(row[0]), bool(row[1])
        return 0.0 if granted else (1.0 - tokens) / rate

    def _run(self, params: dict[str, object]) -> tuple[float, bool]:
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
    second (the interface of api.limits.TokenBucket, shared by every process of the node)."""

    def __init__(self, buckets: Buckets, scope: str, rate: float, burst: int) -> None:
        self.buckets, self.scope = buckets, scope
        self.rate, self.burst = float(rate), int(burst)

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 if one was there, else the seconds until one will be."""
        return self.buckets.take(self.scope, key, self.rate, self.burst)
