"""Base tables: indexer cursor, blocks, raw events, registry and ledger records.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.store.types import Bytes32, EventArgs, Uint64

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ADDRESS = sa.String(42)


def _c(name: str, type_: sa.types.TypeEngine, null: bool = False) -> sa.Column:
    return sa.Column(name, type_, nullable=null, autoincrement=False)


def _pk(table: str, *cols: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*cols, name=f"pk_{table}")


def _fk(table: str, col: str, ref: str, ref_col: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([col], [f"{ref}.{ref_col}"], name=f"fk_{table}_{col}_{ref}")


def upgrade() -> None:
    op.create_table(
        "indexer_cursor",
        _c("id", sa.Integer()),
        _c("chain_id", sa.BigInteger()),
        _c("registry_address", ADDRESS),
        _c("ledger_address", ADDRESS),
        _c("deployment_block", sa.BigInteger()),
        _c("last_block", sa.BigInteger()),
        _c("last_hash", Bytes32, null=True),
        _c("updated_at", sa.DateTime(timezone=True)),
        _pk("indexer_cursor", "id"),
    )
    op.create_table(
        "blocks",
        _c("number", sa.BigInteger()),
        _c("hash", Bytes32),
        _c("parent_hash", Bytes32),
        _c("timestamp", sa.BigInteger()),
        _c("events", sa.Integer()),
        _pk("blocks", "number"),
    )
    op.create_table(
        "raw_events",
        _c("block_number", sa.BigInteger()),
        _c("log_index", sa.Integer()),
        _c("block_hash", Bytes32),
        _c("tx_hash", Bytes32),
        _c("tx_index", sa.Integer()),
        _c("contract", sa.String(16)),
        _c("event", sa.String(40)),
        _c("args", EventArgs),
        _pk("raw_events", "block_number", "log_index"),
        sa.UniqueConstraint("block_hash", "log_index", name="uq_raw_events_block_hash_log_index"),
    )
    op.create_table(
        "consortium",
        _c("id", sa.Integer()),
        _c("governor", ADDRESS, null=True),
        _c("pending_governor", ADDRESS, null=True),
        _c("paused", sa.Boolean()),
        _c("policy_version", sa.Integer()),
        _pk("consortium", "id"),
    )
    op.create_table(
        "members",
        _c("address", ADDRESS),
        _c("member_index", sa.Integer()),
        _c("role", sa.SmallInteger()),
        _c("status", sa.SmallInteger()),
        _c("frozen", sa.Boolean()),
        _c("name", sa.String(64)),
        _c("licence_hash", Bytes32),
        _c("tier1_capital", Uint64()),
        _c("total_loan_balance", Uint64()),
        _c("attested_at", sa.BigInteger()),
        _c("attested_until", sa.BigInteger()),
        _c("block_number", sa.BigInteger()),
        _pk("members", "address"),
        sa.UniqueConstraint("member_index", name="uq_members_member_index"),
    )
    op.create_table(
        "policy_versions",
        _c("version", sa.Integer()),
        _c("effective_block", sa.BigInteger()),
        _c("consumer_cap", sa.BigInteger()),
        _c("business_cap", sa.BigInteger()),
        _c("max_institutions", sa.SmallInteger()),
        _c("min_platform_share_bps", sa.Integer()),
        _c("max_partner_capital_bps", sa.Integer()),
        _c("max_joint_loan_bps", sa.Integer()),
        _c("max_consumer_bullet_days", sa.Integer()),
        _c("max_attestation_age", sa.BigInteger()),
        _c("block_number", sa.BigInteger()),
        _pk("policy_versions", "version"),
    )
    op.create_table(
        "capital_attestations",
        _c("block_number", sa.BigInteger()),
        _c("log_index", sa.Integer()),
        _c("lender", ADDRESS),
        _c("tier1_capital", Uint64()),
        _c("total_loan_balance", Uint64()),
        _c("valid_until", sa.BigInteger()),
        _c("attested_at", sa.BigInteger()),
        _pk("capital_attestations", "block_number", "log_index"),
    )
    op.create_table(
        "credit_lines",
        _c("line_id", Bytes32),
        _c("borrower_key", Bytes32),
        _c("platform", ADDRESS),
        _c("product", sa.SmallInteger()),
        _c("limit_amount", sa.BigInteger()),
        _c("expires_at", Uint64()),
        _c("document_digest", Bytes32),
        _c("deadline", Uint64()),
        _c("policy_version", sa.Integer()),
        _c("status", sa.SmallInteger()),
        _c("drawn", sa.BigInteger()),
        _c("ended_block", sa.BigInteger(), null=True),
        _c("block_number", sa.BigInteger()),
        _c("tx_hash", Bytes32),
        _c("log_index", sa.Integer()),
        _pk("credit_lines", "line_id"),
    )
    op.create_table(
        "line_shares",
        _c("line_id", Bytes32),
        _c("idx", sa.SmallInteger()),
        _c("lender", ADDRESS),
        _c("amount", sa.BigInteger()),
        _c("signature", sa.LargeBinary()),
        _c("block_number", sa.BigInteger()),
        _pk("line_shares", "line_id", "idx"),
        _fk("line_shares", "line_id", "credit_lines", "line_id"),
    )
    op.create_table(
        "loans",
        _c("loan_id", Bytes32),
        _c("borrower_key", Bytes32),
        _c("platform", ADDRESS),
        _c("product", sa.SmallInteger()),
        _c("principal", sa.BigInteger()),
        _c("apr_bps", sa.BigInteger()),
        _c("term_days", sa.BigInteger()),
        _c("repayment", sa.SmallInteger()),
        _c("line_id", Bytes32, null=True),
        _c("document_digest", Bytes32),
        _c("deadline", Uint64()),
        _c("policy_version", sa.Integer()),
        _c("outstanding", sa.BigInteger()),
        _c("status", sa.SmallInteger()),
        _c("block_number", sa.BigInteger()),
        _c("tx_hash", Bytes32),
        _c("log_index", sa.Integer()),
        _pk("loans", "loan_id"),
        _fk("loans", "line_id", "credit_lines", "line_id"),
    )
    op.create_table(
        "tranches",
        _c("loan_id", Bytes32),
        _c("idx", sa.SmallInteger()),
        _c("lender", ADDRESS),
        _c("amount", sa.BigInteger()),
        _c("signature", sa.LargeBinary()),
        _c("outstanding", sa.BigInteger()),
        _c("principal_repaid", sa.BigInteger()),
        _c("interest_paid", sa.BigInteger()),
        _c("block_number", sa.BigInteger()),
        _pk("tranches", "loan_id", "idx"),
        _fk("tranches", "loan_id", "loans", "loan_id"),
    )
    op.create_table(
        "repayments",
        _c("repayment_id", Bytes32),
        _c("loan_id", Bytes32),
        _c("principal", sa.BigInteger()),
        _c("interest", sa.BigInteger()),
        _c("outstanding_after", sa.BigInteger()),
        _c("block_number", sa.BigInteger()),
        _c("log_index", sa.Integer()),
        _c("tx_hash", Bytes32),
        _pk("repayments", "repayment_id"),
        _fk("repayments", "loan_id", "loans", "loan_id"),
    )
    op.create_table(
        "repayment_allocations",
        _c("repayment_id", Bytes32),
        _c("idx", sa.SmallInteger()),
        _c("lender", ADDRESS),
        _c("principal", sa.BigInteger()),
        _c("interest", sa.BigInteger()),
        _c("block_number", sa.BigInteger()),
        _pk("repayment_allocations", "repayment_id", "idx"),
        _fk("repayment_allocations", "repayment_id", "repayments", "repayment_id"),
    )
    op.create_table(
        "loan_status_changes",
        _c("block_number", sa.BigInteger()),
        _c("log_index", sa.Integer()),
        _c("loan_id", Bytes32),
        _c("from_status", sa.SmallInteger()),
        _c("to_status", sa.SmallInteger()),
        _c("reason", Bytes32),
        _c("released_principal", sa.BigInteger()),
        _c("tx_hash", Bytes32),
        _pk("loan_status_changes", "block_number", "log_index"),
        _fk("loan_status_changes", "loan_id", "loans", "loan_id"),
    )
    op.create_table(
        "loan_rejections",
        _c("block_number", sa.BigInteger()),
        _c("log_index", sa.Integer()),
        _c("loan_id", Bytes32),
        _c("reason", sa.LargeBinary()),
        _c("tx_hash", Bytes32),
        _pk("loan_rejections", "block_number", "log_index"),
    )


def downgrade() -> None:
    for table in (
        "loan_rejections",
        "loan_status_changes",
        "repayment_allocations",
        "repayments",
        "tranches",
        "loans",
        "line_shares",
        "credit_lines",
        "capital_attestations",
        "policy_versions",
        "members",
        "consortium",
        "raw_events",
        "blocks",
        "indexer_cursor",
    ):
        op.drop_table(table)
