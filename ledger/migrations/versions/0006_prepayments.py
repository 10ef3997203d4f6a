"""Prepayments in the read model (LoanServicing's Prepaid events), so a node reads a loan's
schedule in force from its own database instead of asking the chain loan by loan.

A database indexed before this revision holds none of them: the cursor's servicing address is
cleared, and the indexer then indexes the deployment again from its first block, as it does
for a database from before 0005 (the read model is rebuilt from the chain, DESIGN §6).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.store.types import Bytes32

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _c(name: str, type_: sa.types.TypeEngine | type) -> sa.Column:
    return sa.Column(name, type_, nullable=False, autoincrement=False)


def upgrade() -> None:
    op.create_table(
        "prepayments",
        _c("block_number", sa.BigInteger()),
        _c("log_index", sa.Integer()),
        _c("loan_id", Bytes32),
        _c("principal", sa.BigInteger()),
        _c("covered", sa.Integer()),
        _c("principal_base", sa.BigInteger()),
        _c("schedule_digest", Bytes32),
        _c("tx_hash", Bytes32),
        sa.PrimaryKeyConstraint("block_number", "log_index", name="pk_prepayments"),
    )
    op.create_index("ix_prepayments_loan_id", "prepayments", ["loan_id"])
    op.execute("UPDATE indexer_cursor SET servicing_address = NULL")


def downgrade() -> None:
    op.drop_index("ix_prepayments_loan_id", table_name="prepayments")
    op.drop_table("prepayments")
