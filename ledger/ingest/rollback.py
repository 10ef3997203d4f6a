"""Rolling the read model back to a block (the common ancestor after a reorg).

Runs inside the caller's transaction, so the database moves from "indexed to the old head" to
"indexed to the ancestor" at once or not at all. No event has a hand-written inverse: the forward
projection is the only definition of what an event does, and the rollback recomputes what the
orphaned events changed by replaying what survives them.

1. The borrowers the orphaned ledger events concern are found (every derived value belongs to
   one borrower's loans and lines, but for lender usage, which sums over borrowers).
2. Rows created above the ancestor are deleted by block number, children first.
3. Everything derived for those borrowers is deleted as well, and their surviving ledger events
   are replayed through `Projection` and flushed, which writes their loans, lines, repayments,
   statuses and aggregates again exactly as a fresh index would. Lender usage is first taken
   down by what those borrowers' loans counted in it before the rollback; the replay adds back
   what they count now.
4. Registry state (members, consortium, attestations, policies) is rebuilt by replaying the
   registry events that remain: they are few.
5. LoanServicing's rows (guarantees, compensations, classifications, recoveries) are only ever
   added, so step 2 alone undoes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, select

from ledger.chain.events import ChainEvent
from ledger.ingest.common import unhex
from ledger.ingest.projection import Projection
from ledger.ingest.state import flush, load
from ledger.store.bulk import delete_rows, select_in
from ledger.store.models import SERVICING_TABLES, TABLES

# Children before parents (foreign keys). LoanServicing's rows only ever accrue (no parent, no
# replay): deleting those above the ancestor undoes them.
_BY_BLOCK = (
    *SERVICING_TABLES,
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
# What a borrower's replay writes again, children before parents, by the key that finds it.
_PER_BORROWER = (
    ("repayment_allocations", "repayment_id"),
    ("repayments", "loan_id"),
    ("loan_status_changes", "loan_id"),
    ("tranches", "loan_id"),
    ("loans", "loan_id"),
    ("line_shares", "line_id"),
    ("credit_lines", "line_id"),
    ("borrower_exposure", "borrower_key"),
    ("borrower_lenders", "borrower_key"),
)


_SAME_NAME = ("block_number", "log_index", "block_hash", "tx_hash", "tx_index", "contract")


def _event(r: Mapping[str, Any], timestamp: int) -> ChainEvent:
    """A raw_events row as the event it was decoded into."""
    same = {k: r[k] for k in _SAME_NAME}
    return ChainEvent(**same, name=r["event"], args=r["args"], timestamp=timestamp)


def stored_events(conn: Connection, contract: str, *, above: int = -1) -> list[ChainEvent]:
    """Events of one contract from raw_events, oldest first, with their blocks' timestamps."""
    ev, blocks = TABLES["raw_events"], TABLES["blocks"]
    rows = conn.execute(
        select(ev, blocks.c.timestamp)
        .join(blocks, blocks.c.number == ev.c.block_number)
        .where(ev.c.contract == contract, ev.c.block_number > above)
        .order_by(ev.c.block_number, ev.c.log_index)
    ).mappings()
    return [_event(r, r["timestamp"]) for r in rows]


def rollback(conn: Connection, ancestor: int) -> int:
    """Undo everything above block `ancestor`; returns how many events were removed."""
    keys = _borrowers(conn, stored_events(conn, "ledger", above=ancestor))
    loans = list(select_in(conn, TABLES["loans"], "borrower_key", keys))
    lines = list(select_in(conn, TABLES["credit_lines"], "borrower_key", keys))
    p = load(conn, [])  # members only
    _take_out_usage(conn, p, loans)
    raw = TABLES["raw_events"]
    removed = conn.execute(
        select(func.count()).select_from(raw).where(raw.c.block_number > ancestor)
    ).scalar_one()
    for name in _BY_BLOCK:
        t = TABLES[name]
        conn.execute(delete(t).where(t.c.block_number > ancestor))
    loans = [r for r in loans if r["block_number"] <= ancestor]
    lines = [r for r in lines if r["block_number"] <= ancestor]
    history = _history(conn, loans, lines, ancestor)
    _forget(conn, keys, {r["loan_id"] for r in loans}, {r["line_id"] for r in lines})
    for ev in history:
        p.apply(ev)
    flush(conn, p)
    rebuild_registry(conn)
    blocks = TABLES["blocks"]
    conn.execute(delete(blocks).where(blocks.c.number > ancestor))
    return int(removed)


def _borrowers(conn: Connection, events: Iterable[ChainEvent]) -> set[bytes]:
    """The borrowers whose loans or lines the events created or changed."""
    keys: set[bytes] = set()
    loan_ids: set[bytes] = set()
    line_ids: set[bytes] = set()
    for ev in events:
        a = ev.args
        for record in (a.get("loan"), a.get("line")):
            if isinstance(record, dict):
                keys.add(unhex(record["borrowerKey"]))
        if "loanId" in a:
            loan_ids.add(unhex(a["loanId"]))
        if "lineId" in a:
            line_ids.add(unhex(a["lineId"]))
    keys.update(r["borrower_key"] for r in select_in(conn, TABLES["loans"], "loan_id", loan_ids))
    lines = select_in(conn, TABLES["credit_lines"], "line_id", line_ids)
    keys.update(r["borrower_key"] for r in lines)
    return keys


def _take_out_usage(conn: Connection, p: Projection, loans: list[Mapping[str, Any]]) -> None:
    """Lender usage (R5, R6) in `p`'s book less what these loans count in it now: their
    partners' outstanding tranches."""
    platform = {r["loan_id"]: r["platform"] for r in loans}
    total: dict[str, int] = {}
    partner: dict[tuple[str, str], int] = {}
    for t in select_in(conn, TABLES["tranches"], "loan_id", platform):
        lender, plat = t["lender"], platform[t["loan_id"]]
        if lender != plat:
            total[lender] = total.get(lender, 0) - t["outstanding"]
            partner[(lender, plat)] = partner.get((lender, plat), 0) - t["outstanding"]
    for r in select_in(conn, TABLES["lender_usage"], "lender", total):
        total[r["lender"]] += r["total"]
    for r in select_in(conn, TABLES["lender_partner_usage"], "lender", total):
        k = (r["lender"], r["partner"])
        if k in partner:
            partner[k] += r["outstanding"]
    p.book.lender_total.update(total)
    p.book.lender_partner.update(partner)
    p.touched_lenders.update(total)
    p.touched_partners.update(partner)


def _history(
    conn: Connection,
    loans: list[Mapping[str, Any]],
    lines: list[Mapping[str, Any]],
    ancestor: int,
) -> list[ChainEvent]:
    """The stored ledger events that created or changed these loans and lines, oldest first.
    Each is found by the rows it wrote (block and log index), a line's end by its block."""
    wanted = {(r["block_number"], r["log_index"]) for r in (*loans, *lines)}
    loan_ids = {r["loan_id"] for r in loans}
    for name in ("repayments", "loan_status_changes"):
        for r in select_in(conn, TABLES[name], "loan_id", loan_ids):
            wanted.add((r["block_number"], r["log_index"]))
    ends = {
        (r["ended_block"], r["line_id"])
        for r in lines
        if r["ended_block"] is not None and r["ended_block"] <= ancestor
    }
    numbers = {b for b, _ in wanted} | {b for b, _ in ends}
    timestamps = {
        r["number"]: r["timestamp"] for r in select_in(conn, TABLES["blocks"], "number", numbers)
    }

    def ours(r: Mapping[str, Any]) -> bool:
        if r["contract"] != "ledger":
            return False
        if (r["block_number"], r["log_index"]) in wanted:
            return True
        return r["event"] == "LineEnded" and (
            (r["block_number"], unhex(r["args"]["lineId"])) in ends
        )

    rows = select_in(conn, TABLES["raw_events"], "block_number", numbers)
    out = [_event(r, timestamps[r["block_number"]]) for r in rows if ours(r)]
    return sorted(out, key=lambda ev: (ev.block_number, ev.log_index))


def _forget(conn: Connection, keys: set[bytes], loan_ids: set[bytes], line_ids: set[bytes]) -> None:
    """Delete every row derived for these borrowers, loans and lines (the replay writes them
    again)."""
    repayments = select_in(conn, TABLES["repayments"], "loan_id", loan_ids)
    found = {
        "repayment_id": {r["repayment_id"] for r in repayments},
        "loan_id": loan_ids,
        "line_id": line_ids,
        "borrower_key": keys,
    }
    for name, key in _PER_BORROWER:
        delete_rows(conn, TABLES[name], [key], [(v,) for v in found[key]])


def rebuild_registry(conn: Connection) -> None:
    """Registry-derived tables from the registry events in raw_events."""
    for name in _REGISTRY:
        conn.execute(delete(TABLES[name]))
    p = Projection({}, None)
    for ev in stored_events(conn, "registry"):
        p.apply(ev)
    flush(conn, p)
