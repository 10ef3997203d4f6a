"""Maintained aggregates (borrower exposure, borrower-and-lender amounts, lender usage for R5/R6)
and the secondary indexes queries need.

A database upgraded from 0001 that already holds records gets its aggregates filled here from
those records, with the same definitions the indexer maintains incrementally (DESIGN §4):
exposure is the limits of active lines plus the outstanding principal of loans not drawn under
an active line; an institution has one open record per active line or open loan it funds.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.store.types import Bytes32

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ADDRESS = sa.String(42)
INDEXES = [
    ("ix_loans_borrower_key", "loans", ["borrower_key"]),
    ("ix_loans_line_id", "loans", ["line_id"]),
    ("ix_credit_lines_borrower_key", "credit_lines", ["borrower_key"]),
    ("ix_tranches_lender", "tranches", ["lender"]),
    ("ix_repayments_loan_id", "repayments", ["loan_id"]),
    ("ix_loan_status_changes_loan_id", "loan_status_changes", ["loan_id"]),
    ("ix_raw_events_contract_block_number", "raw_events", ["contract", "block_number"]),
]

# Open loan statuses (Active, Overdue, Defaulted) and the active line status, as in LedgerTypes.
_OPEN = "(1, 2, 3)"
_ACTIVE_LINE = "1"

BACKFILL = [
    f"""
    INSERT INTO borrower_lenders
        (borrower_key, lender, member_index, open_records, loan_outstanding, line_limit)
    SELECT r.borrower_key, r.lender, m.member_index,
           SUM(r.open_records), SUM(r.loan_outstanding), SUM(r.line_limit)
    FROM (
        SELECT l.borrower_key, t.lender, 1 AS open_records, t.outstanding AS loan_outstanding,
               0 AS line_limit
        FROM loans l JOIN tranches t ON t.loan_id = l.loan_id
        WHERE l.status IN {_OPEN}
        UNION ALL
        SELECT c.borrower_key, s.lender, 1, 0, s.amount
        FROM credit_lines c JOIN line_shares s ON s.line_id = c.line_id
        WHERE c.status = {_ACTIVE_LINE}
    ) r JOIN members m ON m.address = r.lender
    GROUP BY r.borrower_key, r.lender, m.member_index
    """,
    f"""
    INSERT INTO borrower_exposure (borrower_key, consumer, business, institutions)
    SELECT e.borrower_key,
           SUM(CASE WHEN e.product = 0 THEN e.amount ELSE 0 END),
           SUM(CASE WHEN e.product = 1 THEN e.amount ELSE 0 END),
           (SELECT COUNT(*) FROM borrower_lenders b WHERE b.borrower_key = e.borrower_key)
    FROM (
        SELECT borrower_key, product, limit_amount AS amount
        FROM credit_lines WHERE status = {_ACTIVE_LINE}
        UNION ALL
        SELECT l.borrower_key, l.product, l.outstanding
        FROM loans l LEFT JOIN credit_lines c ON c.line_id = l.line_id
        WHERE l.outstanding > 0 AND (l.line_id IS NULL OR c.status <> {_ACTIVE_LINE})
    ) e
    GROUP BY e.borrower_key
    """,
    """
    INSERT INTO lender_usage (lender, total)
    SELECT t.lender, SUM(t.outstanding)
    FROM tranches t JOIN loans l ON l.loan_id = t.loan_id
    WHERE t.lender <> l.platform AND t.outstanding > 0
    GROUP BY t.lender
    """,
    """
    INSERT INTO lender_partner_usage (lender, partner, outstanding)
    SELECT t.lender, l.platform, SUM(t.outstanding)
    FROM tranches t JOIN loans l ON l.loan_id = t.loan_id
    WHERE t.lender <> l.platform AND t.outstanding > 0
    GROUP BY t.lender, l.platform
    """,
]


def _c(name: str, type_: sa.types.TypeEngine) -> sa.Column:
    return sa.Column(name, type_, nullable=False, autoincrement=False)


def upgrade() -> None:
    op.create_table(
        "borrower_exposure",
        _c("borrower_key", Bytes32),
        _c("consumer", sa.BigInteger()),
        _c("business", sa.BigInteger()),
        _c("institutions", sa.SmallInteger()),
        sa.PrimaryKeyConstraint("borrower_key", name="pk_borrower_exposure"),
    )
    op.create_table(
        "borrower_lenders",
        _c("borrower_key", Bytes32),
        _c("lender", ADDRESS),
        _c("member_index", sa.Integer()),
        _c("open_records", sa.Integer()),
        _c("loan_outstanding", sa.BigInteger()),
        _c("line_limit", sa.BigInteger()),
        sa.PrimaryKeyConstraint("borrower_key", "lender", name="pk_borrower_lenders"),
    )
    op.create_table(
        "lender_usage",
        _c("lender", ADDRESS),
        _c("total", sa.BigInteger()),
        sa.PrimaryKeyConstraint("lender", name="pk_lender_usage"),
    )
    op.create_table(
        "lender_partner_usage",
        _c("lender", ADDRESS),
        _c("partner", ADDRESS),
        _c("outstanding", sa.BigInteger()),
        sa.PrimaryKeyConstraint("lender", "partner", name="pk_lender_partner_usage"),
    )
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols)
    for statement in BACKFILL:
        op.execute(statement)


def downgrade() -> None:
    for name, table, _cols in INDEXES:
        op.drop_index(name, table_name=table)
    for table in ("lender_partner_usage", "lender_usage", "borrower_lenders", "borrower_exposure"):
        op.drop_table(table)
