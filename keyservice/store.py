"""The key service's database: its derivation log, plus the sign-in nonces and tokens of
api.store (one way to sign in, whichever service it is).

The log is append-only twice over: a trigger refuses every UPDATE and DELETE (SQLite and
PostgreSQL alike), and each row carries the hash of the previous one
(ledger.identity.derivation_hash), so a row removed or altered behind the triggers' back shows
as a broken link when the auditor replays the chain (ledger.keyclient.check_log); and the
service signs each row's hash with its own key, so a chain rewritten end to end by someone with
the database's rights (but not the key) fails the signature check. No ID here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlmodel import Field, Session, SQLModel, select

from api import store as auth_store
from ledger.identity import GENESIS_HASH, derivation_hash, derivation_statement


class Derivation(SQLModel, table=True):
    __tablename__ = "keyservice_derivation"

    seq: int = Field(primary_key=True)
    member: str = Field(max_length=42, index=True)
    at: int
    purpose: str = Field(max_length=16)
    borrower_key: str = Field(max_length=66)
    prev_hash: str = Field(max_length=66)
    row_hash: str = Field(max_length=66)
    signature: str = Field(max_length=132)


_TABLE = Derivation.__tablename__
_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER IF NOT EXISTS {_TABLE}_no_{op.lower()} BEFORE {op} ON {_TABLE}
    BEGIN SELECT RAISE(ABORT, 'the derivation log is append-only'); END"""
    for op in ("UPDATE", "DELETE")
]
_PG_TRIGGERS = [
    f"""CREATE OR REPLACE FUNCTION {_TABLE}_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'the derivation log is append-only'; END $$ LANGUAGE plpgsql""",
    f"DROP TRIGGER IF EXISTS {_TABLE}_append_only ON {_TABLE}",
    f"""CREATE TRIGGER {_TABLE}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {_TABLE}_append_only()""",
]


def make_engine(url: str) -> Engine:
    engine = auth_store.make_engine(url)
    SQLModel.metadata.create_all(engine, tables=[Derivation.__table__])  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for stmt in _SQLITE_TRIGGERS if engine.dialect.name == "sqlite" else _PG_TRIGGERS:
            conn.execute(text(stmt))
    return engine


class DerivationLog:
    """Appends to the log in one process (one writer: the service runs one worker), each row
    chained to the last."""

    def __init__(self, engine: Engine, sign: Callable[[str], str]) -> None:
        """`sign`: an EIP-191 signature (0x-hex) over a text, by the service's key."""
        self.engine = engine
        self._sign = sign
        self._lock = threading.Lock()
        with Session(engine) as s:
            last = s.exec(select(Derivation).order_by(Derivation.seq.desc()).limit(1)).first()  # type: ignore[attr-defined]
        self._seq, self._hash = (last.seq, last.row_hash) if last else (0, GENESIS_HASH)

    def append(self, member: str, purpose: str, key_hex: str) -> Derivation:
        with self._lock:
            seq, at = self._seq + 1, int(time.time())
            row_hash = derivation_hash(self._hash, seq, member, at, purpose, key_hex)
            row = Derivation(
                seq=seq, member=member, at=at, purpose=purpose, borrower_key=key_hex,
                prev_hash=self._hash, row_hash=row_hash,
                signature=self._sign(derivation_statement(row_hash)),
            )  # fmt: skip
            with Session(self.engine, expire_on_commit=False) as s:
                s.add(row)
                s.commit()
            self._seq, self._hash = seq, row.row_hash
            return row

    def page(self, after: int, limit: int) -> list[Derivation]:
        with Session(self.engine) as s:
            q = select(Derivation).where(Derivation.seq > after).order_by(Derivation.seq)  # type: ignore[arg-type]
            return list(s.exec(q.limit(limit)))
