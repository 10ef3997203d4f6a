"""LoanServicing in the read model: guarantees and their releases, compensations (代偿), each
bank's classifications (五级分类) and recoveries, as the indexer decodes them; and the servicing
contract's address in the cursor.

A database indexed before this revision holds none of LoanServicing's events: its cursor's
servicing address stays NULL, and the indexer then indexes the deployment again from its first
block (the read model is rebuilt from the chain, DESIGN §6).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.store.types import Bytes32

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ADDRESS = sa.String(42)


def _c(name: str, type_: sa.types.TypeEngine | type, null: bool = False) -> sa.Column:
    return sa.Column(name, type_, nullable=null, autoincrement=False)


def _logged() -> list[sa.Column]:
    return [_c("block_number", sa.BigInteger()), _c("log_index", sa.Integer())]


INDEXES = [
    ("ix_guarantees_loan_id", "guarantees", ["loan_id"]),
    ("ix_classifications_loan_id", "classifications", ["loan_id"]),
    ("ix_classifications_lender", "classifications", ["lender"]),
    ("ix_recoveries_loan_id", "recoveries", ["loan_id"]),
]


def upgrade() -> None:
    op.add_column("indexer_cursor", sa.Column("servicing_address", ADDRESS, nullable=True))
    op.create_table(
        "guarantees",
        *_logged(),
        _c("loan_id", Bytes32),
        _c("guarantor", ADDRESS),
        _c("cover_bps", sa.Integer()),
        _c("amount", sa.BigInteger()),
        _c("tx_hash", Bytes32),
        sa.PrimaryKeyConstraint("block_number", "log_index", name="pk_guarantees"),
    )
    op.create_table(
        "guarantee_releases",
        *_logged(),
        _c("loan_id", Bytes32),
        _c("guarantor", ADDRESS),
        _c("amount", sa.BigInteger()),
        _c("tx_hash", Bytes32),
        sa.PrimaryKeyConstraint("block_number", "log_index", name="pk_guarantee_releases"),
    )
    op.create_table(
        "compensations",
        _c("loan_id", Bytes32),
        _c("idx", sa.SmallInteger()),
        _c("guarantor", ADDRESS),
        _c("payout", sa.BigInteger()),
        _c("block_number", sa.BigInteger()),
        _c("log_index", sa.Integer()),
        _c("tx_hash", Bytes32),
        sa.PrimaryKeyConstraint("loan_id", "idx", name="pk_compensations"),
    )
    op.create_table(
        "classifications",
        *_logged(),
        _c("loan_id", Bytes32),
        _c("lender", ADDRESS),
        _c("category", sa.SmallInteger()),
        _c("previous", sa.SmallInteger(), null=True),
        _c("dpd", sa.BigInteger()),
        _c("tx_hash", Bytes32),
        sa.PrimaryKeyConstraint("block_number", "log_index", name="pk_classifications"),
    )
    op.create_table(
        "recoveries",
        _c("recovery_id", Bytes32),
        _c("idx", sa.SmallInteger()),
        _c("loan_id", Bytes32),
        _c("amount", sa.BigInteger()),
        _c("share", sa.BigInteger()),
        _c("block_number", sa.BigInteger()),
        _c("log_index", sa.Integer()),
        _c("tx_hash", Bytes32),
        sa.PrimaryKeyConstraint("recovery_id", "idx", name="pk_recoveries"),
    )
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols)


def downgrade() -> None:
    for name, table, _cols in INDEXES:
        op.drop_index(name, table_name=table)
    for table in ("recoveries", "classifications", "compensations", "guarantee_releases",
                  "guarantees"):  # fmt: skip
        op.drop_table(table)
    op.execute("ALTER TABLE indexer_cursor DROP COLUMN servicing_address")
