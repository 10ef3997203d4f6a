"""Writing one block range: raw events, what they change in the read model, block headers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select

from ledger.chain.events import ChainEvent
from ledger.chain.rpc import Header
from ledger.ingest.state import flush, load
from ledger.store.bulk import insert_rows, upsert
from ledger.store.models import TABLES


def write_range(
    conn: Connection, events: list[ChainEvent], headers: dict[int, Header | None], to: int
) -> None:
    """Insert the range's events and apply them; record the headers of the blocks that had
    events and of `to`, the new cursor block. `headers` holds all of those."""
    if events:
        insert_rows(
            conn,
            TABLES["raw_events"],
            [
                {
                    "block_number": ev.block_number,
                    "log_index": ev.log_index,
                    "block_hash": ev.block_hash,
                    "tx_hash": ev.tx_hash,
                    "tx_index": ev.tx_index,
                    "contract": ev.contract,
                    "event": ev.name,
                    "args": ev.args,
                }
                for ev in events
            ],
        )
        p = load(conn, events)
        for ev in events:
            p.apply(ev)
        flush(conn, p)
    counts: dict[int, int] = {to: 0}
    for ev in events:
        counts[ev.block_number] = counts.get(ev.block_number, 0) + 1
    rows: list[dict[str, Any]] = []
    for number, n in counts.items():
        h = headers[number]
        if h is None:
            raise ValueError(f"no header for block {number}")
        rows.append(
            {
                "number": number,
                "hash": h.hash,
                "parent_hash": h.parent_hash,
                "timestamp": h.timestamp,
                "events": n,
            }
        )
    upsert(conn, TABLES["blocks"], rows, ["number"])


def prune_blocks(conn: Connection, lower: int, below: int) -> None:
    """Forget the headers of blocks without events in [lower, below)."""
    blocks = TABLES["blocks"]
    conn.execute(
        delete(blocks).where(
            blocks.c.number >= lower, blocks.c.number < below, blocks.c.events == 0
        )
    )


def stored_blocks(conn: Connection, upper: int, limit: int = 128) -> list[tuple[int, bytes]]:
    """The newest stored headers at or below block `upper`, as (number, hash), newest first."""
    blocks = TABLES["blocks"]
    rows = conn.execute(
        select(blocks.c.number, blocks.c.hash)
        .where(blocks.c.number <= upper)
        .order_by(blocks.c.number.desc())
        .limit(limit)
    )
    return [(n, h) for n, h in rows]
