"""Engines for the read model, and schema upgrades through the Alembic migrations.

SQLite is the default (one file per node, `.ledger/node.db`); PostgreSQL is used when
`DATABASE_URL` (or an explicit URL) names it. Every schema change goes through
`ledger/migrations`, run programmatically by `upgrade()`: there is no alembic.ini to ship.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

DEFAULT_SQLITE_PATH = Path(".ledger") / "node.db"
# Any fixed number: the key of the PostgreSQL advisory lock that serialises concurrent upgrades.
_MIGRATION_LOCK = 0x1ED6E7


def database_url(url: str | None = None, sqlite_path: Path | None = None) -> str:
    """The URL to use: `url`, else `DATABASE_URL`, else a SQLite file (`.ledger/node.db`).

    A bare `postgresql://` or `postgres://` URL gets the psycopg (v3) driver, the one installed.
    """
    chosen = url or os.environ.get("DATABASE_URL")
    if not chosen:
        path = Path(sqlite_path or DEFAULT_SQLITE_PATH)
        return f"sqlite:///{path}"
    for prefix in ("postgres://", "postgresql://"):
        if chosen.startswith(prefix):
            return "postgresql+psycopg://" + chosen.removeprefix(prefix)
    return chosen


def make_engine(url: str | None = None, *, writer: bool = False, echo: bool = False) -> Engine:
    """An engine for the read model.

    SQLite runs in WAL mode (readers never block the indexer) with foreign keys on and
    `synchronous=NORMAL`: a killed process loses nothing committed, and after a power loss the
    file is still consistent (the indexer's cursor commits with its rows). `writer=True` opens
    each transaction with BEGIN IMMEDIATE, so a writer holds the write lock from the start and
    never fails half-way when another writer got there first.
    """
    resolved = database_url(url)
    u = make_url(resolved)
    if u.get_backend_name() != "sqlite":
        return create_engine(resolved, pool_pre_ping=True, echo=echo)
    if u.database and u.database != ":memory:":
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(resolved, echo=echo, connect_args={"timeout": 60})
    begin = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module (SQLAlchemy's documented recipe), so
        # BEGIN is ours and DDL is transactional too.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        for pragma in ("busy_timeout=60000", "foreign_keys=ON", "synchronous=NORMAL"):
            cur.execute(f"PRAGMA {pragma}")
        _wal(cur)
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # a connection can ask for a write transaction with execution_options(sqlite_begin=...)
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", begin))

    return engine


def _wal(cur: Any) -> None:
    """Switch a new database file to WAL (the mode persists in the file). While another
    connection holds a lock on a file not yet in WAL mode, the switch fails at once with
    "database is locked" instead of waiting, so it is retried."""
    for _ in range(200):
        if cur.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        try:
            cur.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.05)
    raise sqlite3.OperationalError("could not switch the database to WAL mode")


def alembic_config(connection: Connection | None = None) -> Config:
    """The migration configuration, built in code (the package's `migrations` directory)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parents[1] / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest) in one transaction. Two processes
    upgrading at once take turns: a PostgreSQL advisory lock, SQLite's write lock."""
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Any, revision: str) -> None:
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            step(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def insert_missing(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]
) -> None:
    """INSERT ... ON CONFLICT (keys) DO NOTHING: rows another writer may have put there first."""
    if rows:
        ins = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
        conn.execute(ins.on_conflict_do_nothing(index_elements=list(keys)), list(rows))
