"""Loan economics: each policy version's R9 (maxAllInAprBps), R10 (maxGuaranteeMultiple) and DPD
floor, each loan's scheduleDigest (ledger.schedule.digest, signed in the EIP-712 CoLoan).

Versions recorded before the fields existed are filled with their defaults; loans recorded before
with NULL (no schedule committed).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.store.types import Bytes32

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


_POLICY = (
    ("max_all_in_apr_bps", sa.Integer(), "2400"),
    ("max_guarantee_multiple", sa.SmallInteger(), "10"),
    ("special_mention_max_dpd", sa.Integer(), "90"),
    ("substandard_max_dpd", sa.Integer(), "270"),
    ("doubtful_max_dpd", sa.Integer(), "360"),
)


def upgrade() -> None:
    with op.batch_alter_table("policy_versions") as batch:
        for name, type_, default in _POLICY:
            batch.add_column(sa.Column(name, type_, nullable=False, server_default=default))
    # a plain ADD COLUMN (nullable): a batch would recreate `loans`, which other tables reference
    op.add_column("loans", sa.Column("schedule_digest", Bytes32, nullable=True))
    # the default only fills the rows already there; the indexer writes every row's own value
    with op.batch_alter_table("policy_versions") as batch:
        for name, _type, _default in _POLICY:
            batch.alter_column(name, server_default=None)


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35, PostgreSQL): no batch copy of `loans`
    op.execute("ALTER TABLE loans DROP COLUMN schedule_digest")
    with op.batch_alter_table("policy_versions") as batch:
        for name, _type, _default in _POLICY:
            batch.drop_column(name)
