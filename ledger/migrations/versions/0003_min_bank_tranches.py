"""R0: each policy version's minBankTranches (bank tranches every loan and line must carry).

Versions recorded before the field existed are filled with 1, the lower bound the registry holds
every policy to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_versions") as batch:
        batch.add_column(
            sa.Column("min_bank_tranches", sa.SmallInteger(), nullable=False, server_default="1")
        )
    # the default only fills the rows already there; the indexer writes every row's own value
    with op.batch_alter_table("policy_versions") as batch:
        batch.alter_column("min_bank_tranches", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("policy_versions") as batch:
        batch.drop_column("min_bank_tranches")
