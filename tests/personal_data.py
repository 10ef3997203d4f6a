"""Canary scan for raw national IDs in what the suite writes: log records, node logs and other
files under pytest's temporary directories, SQLite files, and PostgreSQL schemas (each test
schema is scanned before it is dropped, and whatever is left at the end). The key service is
covered like a node: its log and SQLite database sit under the state directory
(`nodes/keyservice/`), its PostgreSQL schema is `test_api_keyservice`.

A candidate is any 18-character run of 17 digits and a digit or X that is not part of a longer
word (so hex keys and hashes don't match) and is a valid resident ID, plus the invalid IDs the
tests send on purpose (CANARIES): a wrong check digit is still somebody's ID mistyped."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from ledger.identity import is_valid_id

# IDs the suite sends deliberately even though they fail validation; they must not leak either.
CANARIES = frozenset({"110105194912310021", "11010519491231020X", "110105194912310020"})

_ID = re.compile(rb"(?<![0-9A-Za-z])([0-9]{17}[0-9Xx])(?![0-9A-Za-z])")
# Where the scanner's own tests plant IDs on purpose.
PLANTED = "planted-canaries"
# Files the suite writes as *inputs* or that hold no output of ours.
_SKIP_SUFFIXES = (".py", ".pyc")


def find_ids(data: bytes | str) -> set[str]:
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    found = set()
    for m in _ID.finditer(raw):
        text = m.group(1).decode()
        if text.upper() in CANARIES or text in CANARIES or is_valid_id(text):
            found.add(text)
    return found


@dataclass
class Leaks:
    """Where a raw ID was seen: (place, id) pairs, the id shown only by its first 6 digits (a
    region code) so that this report doesn't become a leak itself."""

    seen: set[tuple[str, str]] = field(default_factory=set)

    def add(self, place: str, ids: set[str]) -> None:
        for i in ids:
            self.seen.add((place, i[:6] + "…"))

    def scan_file(self, path: Path) -> None:
        if path.suffix in _SKIP_SUFFIXES or not path.is_file():
            return
        try:
            data = path.read_bytes()
        except OSError:
            return  # removed while we looked (a node shutting down)
        if data.startswith(b"SQLite format 3\x00"):
            # rows, not pages: a record header byte can sit right before a value
            self.scan_sqlite(path)
        else:
            self.add(str(path), find_ids(data))

    def scan_sqlite(self, path: Path) -> None:
        engine = sa.create_engine(f"sqlite:///{path}")
        try:
            insp = sa.inspect(engine)
            with engine.connect() as conn:
                for table in insp.get_table_names():
                    for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                        text = " ".join(
                            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                            for v in row
                            if v is not None
                        )
                        self.add(f"{path} {table}", find_ids(text))
        except sa.exc.DBAPIError:
            pass  # locked or half-written by a node still shutting down; its log is scanned
        finally:
            engine.dispose()

    def scan_tree(self, root: Path, *, skip_planted: bool = False) -> None:
        for p in root.rglob("*"):
            if not (skip_planted and any(q.startswith(PLANTED) for q in p.parts)):
                self.scan_file(p)

    def scan_schema(self, engine: sa.Engine, schema: str) -> None:
        """Every text-ish column of every table in one PostgreSQL schema."""
        insp = sa.inspect(engine)
        with engine.connect() as conn:
            for table in insp.get_table_names(schema=schema):
                cols = insp.get_columns(table, schema=schema)
                names = [c["name"] for c in cols]
                if not names:
                    continue
                casts = ", ".join(f'CAST("{n}" AS TEXT)' for n in names)
                rows = conn.execute(sa.text(f'SELECT {casts} FROM "{schema}"."{table}"'))
                for row in rows:
                    ids = find_ids(" ".join(v for v in row if v is not None))
                    self.add(f"postgresql {schema}.{table}", ids)

    def scan_schemas(self, url: str, like: str) -> None:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                schemas = (
                    conn.execute(
                        sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                        {"p": like},
                    )
                    .scalars()
                    .all()
                )
            for s in schemas:
                self.scan_schema(engine, s)
        finally:
            engine.dispose()


class LogWatch(logging.Handler):
    """Sees every log record the test process emits (at the levels it is configured to emit)."""

    def __init__(self, leaks: Leaks) -> None:
        super().__init__(level=logging.NOTSET)
        self.leaks = leaks

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a badly formatted record is not our concern here
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1])
        ids = find_ids(text)
        if ids:
            self.leaks.add(f"log record {record.name}", ids)


LEAKS = Leaks()
