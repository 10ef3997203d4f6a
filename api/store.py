"""The node's own small tables: idempotency records, sign-in nonces, access tokens and the
schedules of the loans it signed.

They live in the node's database beside the read model, created on start-up. Only these tables
are created here (`tables=`), so the read model's own migrations stay in charge of theirs.
Nothing here holds personal data: requests are hashed after the national ID has been replaced
by its borrower key, and tokens are stored as SHA-256 hashes.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy import Engine, bindparam, event, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, create_engine, delete, select


class IdempotencyRecord(SQLModel, table=True):
    """One write, by its API id. `pending` holds the record as proposed (terms, signatures) so a
    retry after a crash resubmits the same thing rather than a second, different record."""

    __tablename__ = "api_idempotency"

    kind: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=80)
    request_hash: str = Field(max_length=64)
    state: str = Field(max_length=16)  # pending | done
    status_code: int = 0
    response: str = ""
    pending: str = ""
    updated_at: int = Field(default_factory=lambda: int(time.time()))


class AuthNonce(SQLModel, table=True):
    __tablename__ = "api_auth_nonce"

    nonce: str = Field(primary_key=True, max_length=64)
    address: str = Field(max_length=42)
    expires_at: int
    used: bool = False


class AuthToken(SQLModel, table=True):
    __tablename__ = "api_auth_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    address: str = Field(max_length=42, index=True)
    expires_at: int
    issued_at: int


class LoanSchedule(SQLModel, table=True):
    """A loan's instalments as its parties signed them (the chain holds their digest only):
    written by the platform node when it proposes the loan and by each bank node it co-signs."""

    __tablename__ = "api_loan_schedule"

    loan_id: str = Field(primary_key=True, max_length=66)
    start: int
    instalments: str  # JSON: ledger.schedule.to_json


TABLES = [IdempotencyRecord.__table__, AuthNonce.__table__, AuthToken.__table__,  # type: ignore[attr-defined]
          LoanSchedule.__table__]  # type: ignore[attr-defined]  # fmt: skip


def make_engine(url: str) -> Engine:
    from ledger.store.db import database_url

    url = database_url(url)  # postgres:// and postgresql:// get the psycopg (v3) driver
    if url.startswith("sqlite"):
        # A connection per request thread (anyio's pool runs up to 40): beyond the default
        # 5 + 10, connections were opened, set up (the pragmas below) and closed per request.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=16,
            max_overflow=32,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the request threads read while one writes; busy_timeout waits for the
            # writer instead of failing with "database is locked".
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # In WAL mode NORMAL syncs at checkpoints, not on every commit (an fsync per claim,
            # pending save and result serialised 32 concurrent requests on the disk). A crash
            # of the process loses nothing; a power cut can lose the last commits, which the
            # chain covers: a loan id is recorded once, and a retry finds it there.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    SQLModel.metadata.create_all(engine, tables=TABLES)
    return engine


# ------------------------------------------------------------------ idempotency


def get_record(engine: Engine, kind: str, key: str) -> IdempotencyRecord | None:
    with engine.connect() as conn:
        row = conn.execute(_GET, {"kind": kind, "key": key}).first()
    return None if row is None else IdempotencyRecord(**row._mapping)


# The single-key statements below are SQLAlchemy Core, built once, not ORM ones: the ORM's
# session, identity map and unit of work, and building each statement afresh, were over a third
# of a platform node's CPU for each loan requested one at a time.
_IDEM = IdempotencyRecord.__table__  # type: ignore[attr-defined]
_GET = _IDEM.select().where(_IDEM.c.kind == bindparam("kind"), _IDEM.c.key == bindparam("key"))


def _insert_new(engine: Engine) -> Any:
    """INSERT that does nothing where the key exists (no exception to raise and catch)."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    return insert(_IDEM).on_conflict_do_nothing()


def put_pending(engine: Engine, kind: str, key: str, request_hash: str, pending: str) -> bool:
    """Claim (kind, key) for a new write in one statement. False if a record of it exists
    (another request claimed it first, or an earlier one wrote it)."""
    row = {"kind": kind, "key": key, "request_hash": request_hash, "state": "pending",
           "status_code": 0, "response": "", "pending": pending,
           "updated_at": int(time.time())}  # fmt: skip
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT that did nothing or something
    stmt = _insert_new(engine).returning(_IDEM.c.key)
    with engine.begin() as conn:
        return conn.execute(stmt, row).first() is not None


def save_pending(engine: Engine, kind: str, key: str, pending: str) -> None:
    _update_many(engine, kind, [{"k": key, "v_pending": pending}])


def take_over(engine: Engine, kind: str, key: str, was: str, now: str) -> bool:
    """Replace a pending claim's `pending` text only if it is still `was`: False if another
    attempt changed it first."""
    t = _IDEM
    stmt = (
        t.update()
        .where(t.c.kind == kind, t.c.key == key, t.c.state == "pending", t.c.pending == was)
        .values(pending=now, updated_at=int(time.time()))
    )
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount == 1


def finish(engine: Engine, kind: str, key: str, status_code: int, response: str) -> None:
    finish_many(engine, kind, {key: (status_code, response)})


def forget(engine: Engine, kind: str, key: str) -> None:
    """Drop a pending claim whose write was refused, so the same id can be tried again later."""
    with Session(engine) as s:
        s.exec(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.kind == kind,  # type: ignore[arg-type]
                IdempotencyRecord.key == key,  # type: ignore[arg-type]
                IdempotencyRecord.state == "pending",  # type: ignore[arg-type]
            )
        )
        s.commit()


def claim_many(
    engine: Engine, kind: str, hashes: dict[str, str]
) -> tuple[set[str], dict[str, IdempotencyRecord]]:
    """Claim many ids (key: request hash) in one transaction: (the keys claimed now, the
    records already there for the others). A claim is a row inserted unless its key exists,
    marked with this attempt's own token, so a concurrent request's claim of the same key (by
    another thread or another worker process) is never mistaken for ours."""
    if not hashes:
        return set(), {}
    marker = "claim:" + secrets.token_hex(16)
    now = int(time.time())
    rows = [
        {"kind": kind, "key": k, "request_hash": h, "state": "pending", "status_code": 0,
         "response": "", "pending": marker, "updated_at": now}
        for k, h in hashes.items()
    ]  # fmt: skip
    with Session(engine) as s:
        s.execute(_insert_new(engine), rows)
        found = s.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.kind == kind,  # type: ignore[arg-type]
                IdempotencyRecord.key.in_(list(hashes)),  # type: ignore[attr-defined]
            )
        ).all()
        mine = {r.key for r in found if r.pending == marker}
        others = {r.key: r for r in found if r.pending != marker}
        for r in found:
            s.expunge(r)
        if mine:
            s.exec(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.pending == marker)  # type: ignore[arg-type]
                .values(pending="")
            )
        s.commit()
    return mine, others


def save_pending_many(engine: Engine, kind: str, pending: dict[str, str]) -> None:
    """`save_pending` for many keys: one statement executed for all, in one transaction."""
    _update_many(engine, kind, [{"k": k, "v_pending": v} for k, v in pending.items()])


def finish_many(engine: Engine, kind: str, done: dict[str, tuple[int, str]]) -> None:
    """`finish` for many keys (key: (status code, response)), in one transaction."""
    rows = [
        {"k": k, "v_state": "done", "v_status_code": code, "v_response": body}
        for k, (code, body) in done.items()
    ]
    _update_many(engine, kind, rows)


@functools.cache
def _update(columns: tuple[str, ...]) -> Any:
    """UPDATE of `columns` (bound as v_<column>: a parameter may not share its name with a
    column being set) and `updated_at` for the row (kind_, k)."""
    t = _IDEM
    values = {c: bindparam(f"v_{c}") for c in (*columns, "updated_at")}
    return (
        t.update().where(t.c.kind == bindparam("kind_"), t.c.key == bindparam("k")).values(values)
    )


def _update_many(engine: Engine, kind: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    stmt = _update(tuple(c[2:] for c in rows[0] if c != "k"))
    now = int(time.time())
    with engine.begin() as conn:
        conn.execute(stmt, [{**r, "kind_": kind, "v_updated_at": now} for r in rows])


def forget_many(engine: Engine, kind: str, keys: list[str]) -> None:
    """`forget` for many keys, in one transaction."""
    if not keys:
        return
    with Session(engine) as s:
        s.exec(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.kind == kind,  # type: ignore[arg-type]
                IdempotencyRecord.key.in_(keys),  # type: ignore[attr-defined]
                IdempotencyRecord.state == "pending",  # type: ignore[arg-type]
            )
        )
        s.commit()


# ------------------------------------------------------------------ sign-in


def add_nonce(engine: Engine, nonce: str, address: str, expires_at: int) -> None:
    with Session(engine) as s:
        # Expired nonces and tokens are swept as new ones arrive; nothing else needs them.
        now = int(time.time())
        s.exec(delete(AuthNonce).where(AuthNonce.expires_at < now))  # type: ignore[arg-type]
        s.exec(delete(AuthToken).where(AuthToken.expires_at < now))  # type: ignore[arg-type]
        s.add(AuthNonce(nonce=nonce, address=address, expires_at=expires_at))
        s.commit()


def use_nonce(engine: Engine, nonce: str, address: str, now: int) -> bool:
    """Mark a nonce used, atomically: True only for the first use of a live nonce of `address`."""
    with Session(engine) as s:
        result = s.exec(
            update(AuthNonce)
            .where(
                AuthNonce.nonce == nonce,  # type: ignore[arg-type]
                AuthNonce.address == address,  # type: ignore[arg-type]
                AuthNonce.used == False,  # type: ignore[arg-type]  # noqa: E712
                AuthNonce.expires_at >= now,  # type: ignore[arg-type]
            )
            .values(used=True)
        )
        s.commit()
        return result.rowcount == 1  # type: ignore[attr-defined]


def add_token(
    engine: Engine, token_hash: str, address: str, issued_at: int, expires_at: int
) -> None:
    with Session(engine) as s:
        s.add(
            AuthToken(
                token_hash=token_hash, address=address, issued_at=issued_at, expires_at=expires_at
            )
        )
        s.commit()


def find_token(engine: Engine, token_hash: str) -> AuthToken | None:
    with Session(engine) as s:
        return s.exec(select(AuthToken).where(AuthToken.token_hash == token_hash)).first()  # type: ignore[arg-type]


class TokenCache:
    """Token hash -> (address, expiry) for tokens found in the table, so an authenticated request
    does not query the database. Exact, not merely fresh enough: a token row never changes once
    issued, and is deleted only after it has expired (the expiry is still checked on every
    request). Bounded: the least recently used entries go first. A revocation feature would have
    to drop its token here too."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def get(self, token_hash: str) -> tuple[str, int] | None:
        with self._lock:
            found = self._entries.get(token_hash)
            if found is not None:
                self._entries.move_to_end(token_hash)
            return found

    def put(self, token_hash: str, address: str, expires_at: int) -> None:
        with self._lock:
            self._entries[token_hash] = (address, expires_at)
            self._entries.move_to_end(token_hash)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
