"""Audit check 6: a node's read model against the replay of the chain.

Every loan, tranche, line, repayment, policy version (every field, R0's minBankTranches
included) and maintained aggregate row of the node's database is compared with what the replay
derived from the chain alone; rows the replay has and the database lacks, rows the database has
and the replay does not, and rows whose values differ are each listed. The database is opened
read-only in spirit: nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, fields
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from ledger.audit.report import AuditReport, CheckResult
from ledger.domain import Policy, Product, to_hex
from ledger.rules import Book
from ledger.store import models
from ledger.store.db import make_engine


def _diff(
    report: AuditReport, table: str, replay: dict[Any, tuple], db: dict[Any, tuple], show=to_hex
) -> int:
    found = (
        [("RowMissing", k, "on chain, not in the database") for k in replay.keys() - db.keys()]
        + [("RowExtra", k, "in the database, not on chain") for k in db.keys() - replay.keys()]
        + [
            ("RowAltered", k, f"database has {db[k]}, the chain gives {replay[k]}")
            for k in replay.keys() & db.keys()
            if replay[k] != db[k]
        ]
    )
    for code, key, what in found:
        report.add(
            "read_model", code, f"{table}: {what}", record=show(key), details={"table": table}
        )
    return len(replay.keys() | db.keys())


def check_read_model(
    report: AuditReport,
    book: Book,
    repayments: dict[bytes, tuple],
    database_url: str,
    block: int,
    policies: Sequence[Policy] = (),
) -> None:
    engine = make_engine(database_url)
    try:
        with Session(engine) as s:
            cursor = s.exec(select(models.IndexerCursorRow)).scalars().first()
            if cursor is None or cursor.ledger_address.lower() != report.ledger.lower():
                report.add(
                    "read_model", "WrongDatabase", "the database holds no index of this ledger"
                )
                report.checks["read_model"] = CheckResult("read_model", True, 0, database_url)
                return
            if cursor.last_block != block:
                report.add(
                    "read_model",
                    "ReadModelBehind" if cursor.last_block < block else "ReadModelAhead",
                    f"the database is indexed to block {cursor.last_block}, the audit is "
                    f"at block {block} (audit with --block {cursor.last_block})",
                )
            rows = 0
            db_loans = {
                r.loan_id: (
                    r.borrower_key,
                    r.platform,
                    r.product,
                    r.principal,
                    r.outstanding,
                    r.status,
                )
                for r in s.exec(select(models.LoanRow)).scalars()
            }
            rows += _diff(
                report,
                "loans",
                {
                    lid: (
                        r.loan.borrower_key,
                        r.loan.platform,
                        int(r.loan.product),
                        r.loan.principal,
                        r.outstanding,
                        int(r.status),
                    )
                    for lid, r in book.loans.items()
                },
                db_loans,
            )
            db_tr: dict[bytes, list] = {}
            for t in s.exec(
                select(models.LoanTrancheRow).order_by(
                    models.LoanTrancheRow.loan_id, models.LoanTrancheRow.idx
                )
            ).scalars():
                db_tr.setdefault(t.loan_id, []).append((t.lender, t.amount))
            rows += _diff(
                report,
                "tranches",
                {
                    lid: tuple((t.lender, t.amount) for t in r.loan.tranches)
                    for lid, r in book.loans.items()
                },
                {k: tuple(v) for k, v in db_tr.items()},
            )
            rows += _diff(
                report,
                "credit_lines",
                {
                    lid: (ln.line.borrower_key, ln.line.limit, int(ln.status), ln.drawn)
                    for lid, ln in book.lines.items()
                },
                {
                    r.line_id: (r.borrower_key, r.limit_amount, r.status, r.drawn)
                    for r in s.exec(select(models.CreditLineRow)).scalars()
                },
            )
            rows += _diff(
                report,
                "repayments",
                repayments,
                {
                    r.repayment_id: (r.loan_id, r.principal, r.interest, r.outstanding_after)
                    for r in s.exec(select(models.RepaymentRow)).scalars()
                },
            )
            # maintained aggregates; the indexer deletes rows that fall to zero
            rows += _diff(
                report,
                "borrower_exposure",
                {
                    k: (
                        b.exposure[Product.CONSUMER],
                        b.exposure[Product.BUSINESS],
                        len(b.open_records),
                    )
                    for k, b in book.borrowers.items()
                    if b.exposure[Product.CONSUMER]
                    or b.exposure[Product.BUSINESS]
                    or b.open_records
                },
                {
                    r.borrower_key: (r.consumer, r.business, r.institutions)
                    for r in s.exec(select(models.BorrowerExposureRow)).scalars()
                },
            )
            rows += _diff(
                report,
                "lender_usage",
                {k: (v,) for k, v in book.lender_total.items() if v},
                {r.lender: (r.total,) for r in s.exec(select(models.LenderUsageRow)).scalars()},
                show=str,
            )
            rows += _diff(
                report,
                "lender_partner_usage",
                {k: (v,) for k, v in book.lender_partner.items() if v},
                {
                    (r.lender, r.partner): (r.outstanding,)
                    for r in s.exec(select(models.LenderPartnerUsageRow)).scalars()
                },
                show=lambda k: f"{k[0]} with {k[1]}",
            )
            # every policy version, field by field (R0's minBankTranches included)
            names = [f.name for f in fields(Policy)]
            rows += _diff(
                report,
                "policy_versions",
                {v: astuple(p) for v, p in enumerate(policies, start=1)},
                {
                    r.version: tuple(getattr(r, n) for n in names)
                    for r in s.exec(select(models.PolicyVersionRow)).scalars()
                },
                show=str,
            )
    finally:
        engine.dispose()
    report.checks["read_model"] = CheckResult("read_model", True, rows, f"{rows} rows compared")
