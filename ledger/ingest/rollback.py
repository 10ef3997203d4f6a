"""Rolling the read model back to a block (the common ancestor after a reorg).

Runs inside the caller's transaction, so the database moves from "indexed to the old head" to
"indexed to the ancestor" at once or not at all:

1. ledger events above the ancestor are undone newest first (`ledger.ingest.undo`), which puts
   outstanding amounts, statuses and every maintained aggregate back;
2. rows those events created are deleted by block number, children first;
3. registry state (members, consortium, attestations, policies) is rebuilt by replaying the
   registry events that remain: they are few, and replay is simpler than undoing each one.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, select

from ledger.ingest.decode import ChainEvent
from ledger.ingest.projection import Projection
from ledger.ingest.state import flush, load
from ledger.ingest.undo import undo
from ledger.store.models import TABLES

# Children before parents (foreign keys).
_BY_BLOCK = (
    "repayment_allocations",
    "repayments",
    "loan_status_changes",
    "loan_rejections",
    "tranches",
    "loans",
    "line_shares",
    "credit_lines",
    "raw_events",
)
_REGISTRY = ("members", "consortium", "capital_attestations", "policy_versions")


def stored_events(
    conn: Connection, contract: str, *, above: int = -1, newest_first: bool = False
) -> list[ChainEvent]:
    """Events of one contract from raw_events, with their blocks' timestamps."""
    ev, blocks = TABLES["raw_events"], TABLES["blocks"]
    order = [ev.c.block_number, ev.c.log_index]
    if newest_first:
        order = [c.desc() for c in order]
    rows = conn.execute(
        select(ev, blocks.c.timestamp)
        .join(blocks, blocks.c.number == ev.c.block_number)
        .where(ev.c.contract == contract, ev.c.block_number > above)
        .order_by(*order)
    ).mappings()
    return [
        ChainEvent(
            block_number=r["block_number"],
            log_index=r["log_index"],
            block_hash=r["block_hash"],
            tx_hash=r["tx_hash"],
            tx_index=r["tx_index"],
            contract=r["contract"],
            name=r["event"],
            args=r["args"],
            timestamp=r["timestamp"],
        )
        for r in rows
    ]


def rollback(conn: Connection, ancestor: int) -> int:
    """Undo everything above block `ancestor`; returns how many events were removed."""
    events = stored_events(conn, "ledger", above=ancestor, newest_first=True)
    p = load(conn, events, undo=True)
    for ev in events:
        undo(p, ev)
    flush(conn, p)
    raw = TABLES["raw_events"]
    removed = conn.execute(
        select(func.count()).select_from(raw).where(raw.c.block_number > ancestor)
    ).scalar_one()
    for name in _BY_BLOCK:
        t = TABLES[name]
        conn.execute(delete(t).where(t.c.block_number > ancestor))
    rebuild_registry(conn)
    blocks = TABLES["blocks"]
    conn.execute(delete(blocks).where(blocks.c.number > ancestor))
    return int(removed)


def rebuild_registry(conn: Connection) -> None:
    """Registry-derived tables from the registry events in raw_events."""
    for name in _REGISTRY:
        conn.execute(delete(TABLES[name]))
    p = Projection({}, None)
    for ev in stored_events(conn, "registry"):
        p.apply(ev)
    flush(conn, p)
