"""Loading the state a batch of events touches, and writing back what the batch changed.

Everything is read with a query or a few per table and batch, and written with one statement per
table (`ledger.store.bulk`), so the cost per event stays a handful of rows, never a query each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, Table, select

from ledger import allocation
from ledger.chain.events import ChainEvent
from ledger.domain import ZERO32, CoLoan, LineStatus, LoanStatus, Product
from ledger.ingest.common import ProjectionError, unhex
from ledger.ingest.projection import Pair, Projection
from ledger.records import line_from_row, loan_from_row
from ledger.rules import BorrowerState, LineState, LoanState
from ledger.store.bulk import delete_rows, insert_rows, select_in, update_rows, upsert
from ledger.store.models import SERVICING_TABLES, TABLES

_ZERO_HEX = "0x" + "00" * 32


def _rows(conn: Connection, table: Table, column: str, values: Iterable[Any]) -> Iterator[Any]:
    return select_in(conn, table, column, set(values))


# ------------------------------------------------------------------ load


def load(conn: Connection, events: Sequence[ChainEvent]) -> Projection:
    """A projection holding the members, the consortium row and every loan, line, borrower and
    lender the events refer to."""
    members = {r["address"]: dict(r) for r in conn.execute(select(TABLES["members"])).mappings()}
    cons = conn.execute(select(TABLES["consortium"])).mappings().first()
    p = Projection(members, dict(cons) if cons else None)
    loans: set[bytes] = set()
    lines: set[bytes] = set()
    keys: set[bytes] = set()
    lenders: set[str] = set()
    for ev in events:
        a = ev.args
        if ev.name in ("Repaid", "LoanStatusChanged"):
            loans.add(unhex(a["loanId"]))
        elif ev.name == "LoanOriginated":
            ln = a["loan"]
            keys.add(unhex(ln["borrowerKey"]))
            lenders.update(t["lender"] for t in ln["tranches"])
            if ln["lineId"] != _ZERO_HEX:
                lines.add(unhex(ln["lineId"]))
        elif ev.name == "LineGranted":
            keys.add(unhex(a["line"]["borrowerKey"]))
        elif ev.name == "LineEnded":
            lines.add(unhex(a["lineId"]))
    for rec in _load_loans(conn, p, loans):
        keys.add(rec.borrower_key)
        lenders.update(t.lender for t in rec.tranches)
        if rec.line_id != ZERO32:
            lines.add(rec.line_id)
    keys.update(_load_lines(conn, p, lines))
    _load_borrowers(conn, p, keys)
    _load_lenders(conn, p, lenders)
    _load_classifications(conn, p, events)
    return p


def _load_classifications(conn: Connection, p: Projection, events: Sequence[ChainEvent]) -> None:
    """Each bank's latest category for the loans the batch's Classified events concern."""
    ids = {unhex(ev.args["loanId"]) for ev in events if ev.name == "Classified"}
    if not ids:
        return
    rows = sorted(
        _rows(conn, TABLES["classifications"], "loan_id", ids),
        key=lambda r: (r["block_number"], r["log_index"]),
    )
    for r in rows:
        p.classified[(r["loan_id"], r["lender"])] = r["category"]


def _load_loans(conn: Connection, p: Projection, ids: set[bytes]) -> list[CoLoan]:
    if not ids:
        return []
    tranches: dict[bytes, list[Any]] = {}
    for t in _rows(conn, TABLES["tranches"], "loan_id", ids):
        tranches.setdefault(t["loan_id"], []).append(t)
    out = []
    for r in _rows(conn, TABLES["loans"], "loan_id", ids):
        trs = sorted(tranches.get(r["loan_id"], []), key=lambda t: t["idx"])
        loan = loan_from_row(r, trs)
        p.book.loans[loan.loan_id] = LoanState(loan, r["outstanding"], LoanStatus(r["status"]))
        p.paid[loan.loan_id] = [[t["principal_repaid"], t["interest_paid"]] for t in trs]
        out.append(loan)
    return out


def _load_lines(conn: Connection, p: Projection, ids: set[bytes]) -> set[bytes]:
    if not ids:
        return set()
    shares: dict[bytes, list[Any]] = {}
    for s in _rows(conn, TABLES["line_shares"], "line_id", ids):
        shares.setdefault(s["line_id"], []).append(s)
    keys = set()
    for r in _rows(conn, TABLES["credit_lines"], "line_id", ids):
        ss = sorted(shares.get(r["line_id"], []), key=lambda s: s["idx"])
        line = line_from_row(r, ss)
        platform_index = p.members[line.platform]["member_index"]
        p.book.lines[line.line_id] = LineState(
            line, platform_index, LineStatus(r["status"]), r["drawn"]
        )
        p.ended[line.line_id] = r["ended_block"]
        keys.add(line.borrower_key)
    return keys


def _load_borrowers(conn: Connection, p: Projection, keys: set[bytes]) -> None:
    for r in _rows(conn, TABLES["borrower_exposure"], "borrower_key", keys):
        p.book.borrowers[r["borrower_key"]] = BorrowerState(
            exposure={Product.CONSUMER: r["consumer"], Product.BUSINESS: r["business"]}
        )
    for r in _rows(conn, TABLES["borrower_lenders"], "borrower_key", keys):
        key, idx = r["borrower_key"], r["member_index"]
        p.pairs[(key, r["lender"])] = Pair(idx, r["loan_outstanding"], r["line_limit"])
        if r["open_records"]:
            p.book.borrower(key).open_records[idx] = r["open_records"]


def _load_lenders(conn: Connection, p: Projection, lenders: set[str]) -> None:
    for r in _rows(conn, TABLES["lender_usage"], "lender", lenders):
        p.book.lender_total[r["lender"]] = r["total"]
    for r in _rows(conn, TABLES["lender_partner_usage"], "lender", lenders):
        p.book.lender_partner[(r["lender"], r["partner"])] = r["outstanding"]


# ------------------------------------------------------------------ flush


def _insert(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    insert_rows(conn, TABLES[table], rows)


def _update(conn: Connection, table: str, keys: Sequence[str], rows: list[dict[str, Any]]) -> None:
    update_rows(conn, TABLES[table], keys, rows)


def _delete(conn: Connection, table: str, keys: Sequence[str], rows: list[tuple]) -> None:
    delete_rows(conn, TABLES[table], keys, rows)


def _tranche_rows(p: Projection, loan_id: bytes) -> list[dict[str, Any]]:
    rec = p.book.loans[loan_id]
    loan = rec.loan
    out = allocation.outstanding([t.amount for t in loan.tranches], loan.principal, rec.outstanding)
    paid = p.paid[loan_id]
    return [
        {
            "loan_id": loan_id,
            "idx": i,
            "outstanding": out[i],
            "principal_repaid": paid[i][0],
            "interest_paid": paid[i][1],
        }
        for i in range(len(loan.tranches))
    ]


def flush(conn: Connection, p: Projection) -> None:
    """Write what the applied events changed, parents before children."""
    book = p.book
    line_rows, share_rows = [], []
    for line_id, meta in p.new_lines.items():
        ln = book.lines[line_id]
        line = ln.line
        line_rows.append(
            {
                "line_id": line_id,
                "borrower_key": line.borrower_key,
                "platform": line.platform,
                "product": int(line.product),
                "limit_amount": line.limit,
                "expires_at": line.expires_at,
                "document_digest": line.document_digest,
                "deadline": line.deadline,
                "policy_version": meta.policy_version,
                "status": int(ln.status),
                "drawn": ln.drawn,
                "ended_block": p.ended.get(line_id),
                "block_number": meta.block_number,
                "tx_hash": meta.tx_hash,
                "log_index": meta.log_index,
            }
        )
        for i, s in enumerate(line.shares):
            share_rows.append(
                {
                    "line_id": line_id,
                    "idx": i,
                    "lender": s.lender,
                    "amount": s.amount,
                    "signature": meta.signatures[i],
                    "block_number": meta.block_number,
                }
            )
    _insert(conn, "credit_lines", line_rows)
    _insert(conn, "line_shares", share_rows)

    loan_rows, tranche_rows = [], []
    for loan_id, meta in p.new_loans.items():
        rec = book.loans[loan_id]
        loan = rec.loan
        loan_rows.append(
            {
                "loan_id": loan_id,
                "borrower_key": loan.borrower_key,
                "platform": loan.platform,
                "product": int(loan.product),
                "principal": loan.principal,
                "apr_bps": loan.apr_bps,
                "term_days": loan.term_days,
                "repayment": int(loan.repayment),
                "line_id": None if loan.line_id == ZERO32 else loan.line_id,
                "document_digest": loan.document_digest,
                "schedule_digest": None if loan.schedule_digest == ZERO32 else loan.schedule_digest,
                "deadline": loan.deadline,
                "policy_version": meta.policy_version,
                "outstanding": rec.outstanding,
                "status": int(rec.status),
                "block_number": meta.block_number,
                "tx_hash": meta.tx_hash,
                "log_index": meta.log_index,
            }
        )
        for row, t, sig in zip(
            _tranche_rows(p, loan_id), loan.tranches, meta.signatures, strict=True
        ):
            row.update(lender=t.lender, amount=t.amount, signature=sig)
            row["block_number"] = meta.block_number
            tranche_rows.append(row)
    _insert(conn, "loans", loan_rows)
    _insert(conn, "tranches", tranche_rows)

    for table in (
        "repayments",
        "repayment_allocations",
        "loan_status_changes",
        "loan_rejections",
        "capital_attestations",
        "policy_versions",
        *SERVICING_TABLES,
    ):
        _insert(conn, table, p.inserts.get(table, []))

    old_loans = p.touched_loans - p.new_loans.keys()
    _update(
        conn,
        "loans",
        ["loan_id"],
        [
            {
                "loan_id": i,
                "outstanding": book.loans[i].outstanding,
                "status": int(book.loans[i].status),
            }
            for i in old_loans
        ],
    )
    _update(
        conn, "tranches", ["loan_id", "idx"], [r for i in old_loans for r in _tranche_rows(p, i)]
    )
    _update(
        conn,
        "credit_lines",
        ["line_id"],
        [
            {
                "line_id": i,
                "status": int(book.lines[i].status),
                "drawn": book.lines[i].drawn,
                "ended_block": p.ended.get(i),
            }
            for i in p.touched_lines - p.new_lines.keys()
        ],
    )
    if p.touched_members:
        upsert(conn, TABLES["members"], [p.members[a] for a in p.touched_members], ["address"])
    if p.consortium_touched and p.consortium is not None:
        upsert(conn, TABLES["consortium"], [p.consortium], ["id"])
    _flush_aggregates(conn, p)


def _flush_aggregates(conn: Connection, p: Projection) -> None:
    book = p.book
    keep: list[dict[str, Any]] = []
    drop: list[tuple] = []
    for key in p.touched_borrowers:
        b = book.borrowers.get(key) or BorrowerState()
        c, bz, n = b.exposure[Product.CONSUMER], b.exposure[Product.BUSINESS], len(b.open_records)
        _non_negative("exposure", key, c, bz)
        if c or bz or n:
            keep.append({"borrower_key": key, "consumer": c, "business": bz, "institutions": n})
        else:
            drop.append((key,))
    _delete(conn, "borrower_exposure", ["borrower_key"], drop)
    upsert(conn, TABLES["borrower_exposure"], keep, ["borrower_key"])

    keep, drop = [], []
    for key, lender in p.touched_pairs:
        pair = p.pairs.get((key, lender)) or Pair(book.members[lender].index)
        b = book.borrowers.get(key)
        n = b.open_records.get(pair.member_index, 0) if b else 0
        _non_negative("borrower and lender", (key, lender), pair.loan_outstanding, pair.line_limit)
        if n or pair.loan_outstanding or pair.line_limit:
            keep.append(
                {
                    "borrower_key": key,
                    "lender": lender,
                    "member_index": pair.member_index,
                    "open_records": n,
                    "loan_outstanding": pair.loan_outstanding,
                    "line_limit": pair.line_limit,
                }
            )
        else:
            drop.append((key, lender))
    _delete(conn, "borrower_lenders", ["borrower_key", "lender"], drop)
    upsert(conn, TABLES["borrower_lenders"], keep, ["borrower_key", "lender"])

    keep, drop = [], []
    for lender in p.touched_lenders:
        total = book.lender_total.get(lender, 0)
        _non_negative("lender usage", lender, total)
        (keep.append({"lender": lender, "total": total}) if total else drop.append((lender,)))
    _delete(conn, "lender_usage", ["lender"], drop)
    upsert(conn, TABLES["lender_usage"], keep, ["lender"])

    keep, drop = [], []
    for lender, partner in p.touched_partners:
        v = book.lender_partner.get((lender, partner), 0)
        _non_negative("lender partner usage", (lender, partner), v)
        row = {"lender": lender, "partner": partner, "outstanding": v}
        (keep.append(row) if v else drop.append((lender, partner)))
    _delete(conn, "lender_partner_usage", ["lender", "partner"], drop)
    upsert(conn, TABLES["lender_partner_usage"], keep, ["lender", "partner"])


def _non_negative(what: str, key: object, *values: int) -> None:
    if any(v < 0 for v in values):
        raise ProjectionError(f"negative {what} for {key!r}: {values}")
