"""Database fixtures for the read-model tests: SQLite always, PostgreSQL when TEST_DATABASE_URL
(or DATABASE_URL) is set. Each test gets fresh, empty databases (a temporary file, or a new
PostgreSQL schema reached through search_path), removed afterwards; the `test` database itself
is never dropped.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.store.db import database_url, make_engine
from ledger.store.models import metadata
from tests.personal_data import LEAKS

_PG = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
PG_URL = database_url(_PG) if _PG else None
DB_KINDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


class Databases:
    """Fresh empty databases of one kind."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self._tmp = tmp_path
        self._schemas: list[str] = []
        self._engines: list[sa.Engine] = []

    def new(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self._tmp / f'db-{uuid.uuid4().hex[:8]}.db'}"
        assert PG_URL is not None
        schema = f"test_{uuid.uuid4().hex[:12]}"
        with sa.create_engine(PG_URL).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        self._schemas.append(schema)
        sep = "&" if "?" in PG_URL else "?"
        return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"

    def engine(self, url: str | None = None, *, writer: bool = True) -> sa.Engine:
        engine = make_engine(url or self.new(), writer=writer)
        self._engines.append(engine)
        return engine

    def close(self) -> None:
        for e in self._engines:
            e.dispose()
        if self._schemas:
            admin = sa.create_engine(PG_URL)  # type: ignore[arg-type]
            for s in self._schemas:  # what the test wrote, before it goes
                LEAKS.scan_schema(admin, s)
            with admin.begin() as conn:
                for s in self._schemas:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{s}" CASCADE'))
            admin.dispose()


@pytest.fixture(params=DB_KINDS, name="dbs")
def dbs_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    d = Databases(request.param, tmp_path)
    try:
        yield d
    finally:
        d.close()


def _norm(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def dump(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every read-model row, in a canonical order, for comparing two databases.

    Left out: when the cursor was last written, and blocks without events (which of those are
    kept depends on where the indexer's ranges happened to end)."""
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        for name, table in metadata.tables.items():
            stmt = sa.select(table)
            if name == "blocks":
                stmt = stmt.where(table.c.events > 0)
            rows = []
            for r in conn.execute(stmt).mappings():
                rows.append(tuple(_norm(v) for k, v in sorted(r.items()) if k != "updated_at"))
            out[name] = sorted(rows, key=repr)
    return out


def assert_same(a: dict[str, list[tuple]], b: dict[str, list[tuple]]) -> None:
    """Table by table, so a failure names the table that differs."""
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], f"table {name} differs"
