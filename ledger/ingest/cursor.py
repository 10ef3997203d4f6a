"""The indexer's cursor row: which deployment a database indexes, and the last block whose events
are all in it. Each range (and each rollback) commits with the cursor, locked and checked inside
the same transaction, so two indexers on one database can never apply a range twice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from ledger.chain.deployment import Deployment
from ledger.store.db import insert_missing
from ledger.store.models import TABLES

Position = tuple[int, bytes | None]  # (last block, its hash; None before the first range)


class CursorMoved(Exception):
    """Another indexer committed first."""


def claim(conn: Connection, dep: Deployment) -> dict[str, Any]:
    """Write the cursor for `dep` unless there is one (a second indexer starting at the same
    moment may have written it first); returns the row, which may name another deployment."""
    cur = TABLES["indexer_cursor"]
    insert_missing(
        conn,
        cur,
        [
            {
                "id": 1,
                "chain_id": dep.chain_id,
                "registry_address": dep.registry,
                "ledger_address": dep.ledger,
                "servicing_address": dep.servicing,
                "deployment_block": dep.deployment_block,
                "last_block": dep.deployment_block - 1,
                "last_hash": None,
                "updated_at": datetime.now(UTC),
            }
        ],
        ["id"],
    )
    return dict(conn.execute(select(cur)).mappings().one())


def follow_servicing(conn: Connection, address: str) -> None:
    """Record that the database now indexes LoanServicing at `address` as well."""
    conn.execute(update(TABLES["indexer_cursor"]).values(servicing_address=address))


def read(conn: Connection) -> Position:
    row = conn.execute(select(TABLES["indexer_cursor"])).mappings().one()
    return row["last_block"], row["last_hash"]


def lock(conn: Connection, expected: Position) -> None:
    """Lock the cursor row for this transaction; `CursorMoved` unless it is at `expected`."""
    row = conn.execute(select(TABLES["indexer_cursor"]).with_for_update()).mappings().one()
    if (row["last_block"], row["last_hash"]) != expected:
        raise CursorMoved


def move(conn: Connection, block: int, block_hash: bytes | None) -> None:
    conn.execute(
        update(TABLES["indexer_cursor"]).values(
            last_block=block, last_hash=block_hash, updated_at=datetime.now(UTC)
        )
    )
