"""The SQL read model: what the indexer writes from the contracts' events.

Money is integer fen. Ids, borrower keys and hashes are 32 raw bytes, addresses checksummed text.
No personal data: a borrower is only its keyed pseudonym (`borrower_key`).

Every row that an event creates carries the event's `block_number`, so a reorg rolls it back with
`DELETE ... WHERE block_number > ancestor`. Mutable columns (outstanding amounts, statuses) and the
maintained aggregates are recomputed by replaying the surviving events of the borrowers the
orphaned ones concerned (ledger.ingest.rollback).

Aggregates (borrower exposure, borrower-and-lender amounts, lender usage for R5/R6) are kept up
to date as events arrive, never summed at query time. An aggregate row whose amounts are all zero
is deleted, so "no row" means zero and a rolled-back database equals a freshly indexed one.

Tables created by migration 0001 come first, then those of 0002; LoanServicing's (0005) are in
ledger.store.servicing, and `TABLES` holds them all. `ledger.migrations` creates them, and tests
prove a migrated database equals `metadata.create_all`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlmodel import SQLModel

from ledger.store.base import ADDRESS, NAMING, Logged, StoreModel, col, metadata
from ledger.store.servicing import SERVICING_INDEXES, SERVICING_TABLES
from ledger.store.types import Bytes32, EventArgs, Uint64

__all__ = ["NAMING", "SERVICING_INDEXES", "SERVICING_TABLES", "TABLES", "StoreModel", "metadata"]

_col, _Logged = col, Logged


class _Part(SQLModel):
    """One party's share of a line or tranche of a loan, after the record's id (`_OfLine`,
    `_OfLoan`)."""

    idx: int = _col(SmallInteger, pk=True)
    lender: str = _col(ADDRESS)
    amount: int = _col(BigInteger)
    signature: bytes = _col(LargeBinary)


class _OfLine(SQLModel):
    line_id: bytes = _col(Bytes32, pk=True, fk="credit_lines.line_id")


class _OfLoan(SQLModel):
    loan_id: bytes = _col(Bytes32, pk=True, fk="loans.loan_id")


# ------------------------------------------------------------------ indexer bookkeeping (0001)


class IndexerCursorRow(StoreModel, table=True):
    """The one deployment this database indexes and the last block whose events are all in."""

    __tablename__ = "indexer_cursor"

    id: int = _col(Integer, pk=True)
    chain_id: int = _col(BigInteger)
    registry_address: str = _col(ADDRESS)
    ledger_address: str = _col(ADDRESS)
    deployment_block: int = _col(BigInteger)
    last_block: int = _col(BigInteger)
    last_hash: bytes | None = _col(Bytes32, null=True)
    updated_at: datetime = _col(DateTime(timezone=True))
    # LoanServicing's address ("" if the deployment has none); NULL in a database indexed
    # before the indexer followed it (migration 0005), which is then indexed again
    servicing_address: str | None = _col(ADDRESS, null=True)


class BlockRow(StoreModel, table=True):
    """Indexed block headers: every block with events, plus the most recent ones (reorg checks)."""

    __tablename__ = "blocks"

    number: int = _col(BigInteger, pk=True)
    hash: bytes = _col(Bytes32)
    parent_hash: bytes = _col(Bytes32)
    timestamp: int = _col(BigInteger)
    events: int = _col(Integer)


class RawEventRow(_Logged, StoreModel, table=True):
    """Every event of the two contracts as logged, with its decoded arguments."""

    __tablename__ = "raw_events"
    __table_args__ = (UniqueConstraint("block_hash", "log_index"),)

    block_hash: bytes = _col(Bytes32)
    tx_hash: bytes = _col(Bytes32)
    tx_index: int = _col(Integer)
    contract: str = _col(String(16))  # "registry" or "ledger"
    event: str = _col(String(40))
    args: dict = _col(EventArgs)


# ------------------------------------------------------------------ registry (0001)


class ConsortiumRow(StoreModel, table=True):
    """Registry-wide state: one row."""

    __tablename__ = "consortium"

    id: int = _col(Integer, pk=True)
    governor: str | None = _col(ADDRESS, null=True)
    pending_governor: str | None = _col(ADDRESS, null=True)
    paused: bool = _col(Boolean)
    policy_version: int = _col(Integer)


class MemberRow(StoreModel, table=True):
    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("member_index"),)

    address: str = _col(ADDRESS, pk=True)
    member_index: int = _col(Integer)
    role: int = _col(SmallInteger)
    status: int = _col(SmallInteger)
    frozen: bool = _col(Boolean)
    name: str = _col(String(64))
    licence_hash: bytes = _col(Bytes32)
    tier1_capital: int = _col(Uint64)
    total_loan_balance: int = _col(Uint64)
    attested_at: int = _col(BigInteger)
    attested_until: int = _col(BigInteger)
    block_number: int = _col(BigInteger)


class PolicyVersionRow(StoreModel, table=True):
    __tablename__ = "policy_versions"

    version: int = _col(Integer, pk=True)
    effective_block: int = _col(BigInteger)
    consumer_cap: int = _col(BigInteger)
    business_cap: int = _col(BigInteger)
    max_institutions: int = _col(SmallInteger)
    min_platform_share_bps: int = _col(Integer)
    max_partner_capital_bps: int = _col(Integer)
    max_joint_loan_bps: int = _col(Integer)
    max_consumer_bullet_days: int = _col(Integer)
    max_attestation_age: int = _col(BigInteger)
    block_number: int = _col(BigInteger)
    min_bank_tranches: int = _col(SmallInteger)  # R0; migration 0003
    max_all_in_apr_bps: int = _col(Integer)  # R9; migration 0004
    max_guarantee_multiple: int = _col(SmallInteger)  # R10; migration 0004
    special_mention_max_dpd: int = _col(Integer)  # the DPD floor; migration 0004
    substandard_max_dpd: int = _col(Integer)
    doubtful_max_dpd: int = _col(Integer)


class CapitalAttestationRow(_Logged, StoreModel, table=True):
    __tablename__ = "capital_attestations"

    lender: str = _col(ADDRESS)
    tier1_capital: int = _col(Uint64)
    total_loan_balance: int = _col(Uint64)
    valid_until: int = _col(BigInteger)
    attested_at: int = _col(BigInteger)


# ------------------------------------------------------------------ ledger (0001)


class CreditLineRow(StoreModel, table=True):
    __tablename__ = "credit_lines"

    line_id: bytes = _col(Bytes32, pk=True)
    borrower_key: bytes = _col(Bytes32)
    platform: str = _col(ADDRESS)
    product: int = _col(SmallInteger)
    limit_amount: int = _col(BigInteger)
    expires_at: int = _col(Uint64)
    document_digest: bytes = _col(Bytes32)
    deadline: int = _col(Uint64)
    policy_version: int = _col(Integer)
    status: int = _col(SmallInteger)
    drawn: int = _col(BigInteger)
    ended_block: int | None = _col(BigInteger, null=True)
    block_number: int = _col(BigInteger)
    tx_hash: bytes = _col(Bytes32)
    log_index: int = _col(Integer)


class LineShareRow(_Part, _OfLine, StoreModel, table=True):
    __tablename__ = "line_shares"

    block_number: int = _col(BigInteger)


class LoanRow(StoreModel, table=True):
    __tablename__ = "loans"

    loan_id: bytes = _col(Bytes32, pk=True)
    borrower_key: bytes = _col(Bytes32)
    platform: str = _col(ADDRESS)
    product: int = _col(SmallInteger)
    principal: int = _col(BigInteger)
    apr_bps: int = _col(BigInteger)
    term_days: int = _col(BigInteger)
    repayment: int = _col(SmallInteger)
    line_id: bytes | None = _col(Bytes32, null=True, fk="credit_lines.line_id")
    document_digest: bytes = _col(Bytes32)
    deadline: int = _col(Uint64)
    policy_version: int = _col(Integer)
    outstanding: int = _col(BigInteger)
    status: int = _col(SmallInteger)
    block_number: int = _col(BigInteger)
    tx_hash: bytes = _col(Bytes32)
    log_index: int = _col(Integer)
    schedule_digest: bytes | None = _col(Bytes32, null=True)  # migration 0004


class LoanTrancheRow(_Part, _OfLoan, StoreModel, table=True):
    """One funder's share of a loan (the platform's own share is a tranche too)."""

    __tablename__ = "tranches"

    outstanding: int = _col(BigInteger)
    principal_repaid: int = _col(BigInteger)
    interest_paid: int = _col(BigInteger)
    block_number: int = _col(BigInteger)


class RepaymentRow(StoreModel, table=True):
    __tablename__ = "repayments"

    repayment_id: bytes = _col(Bytes32, pk=True)
    loan_id: bytes = _col(Bytes32, fk="loans.loan_id")
    principal: int = _col(BigInteger)
    interest: int = _col(BigInteger)
    outstanding_after: int = _col(BigInteger)
    block_number: int = _col(BigInteger)
    log_index: int = _col(Integer)
    tx_hash: bytes = _col(Bytes32)


class RepaymentAllocationRow(StoreModel, table=True):
    """A repayment's share for one tranche, exactly as the contract split it."""

    __tablename__ = "repayment_allocations"

    repayment_id: bytes = _col(Bytes32, pk=True, fk="repayments.repayment_id")
    idx: int = _col(SmallInteger, pk=True)
    lender: str = _col(ADDRESS)
    principal: int = _col(BigInteger)
    interest: int = _col(BigInteger)
    block_number: int = _col(BigInteger)


class LoanStatusChangeRow(_Logged, StoreModel, table=True):
    __tablename__ = "loan_status_changes"

    loan_id: bytes = _col(Bytes32, fk="loans.loan_id")
    from_status: int = _col(SmallInteger)
    to_status: int = _col(SmallInteger)
    reason: bytes = _col(Bytes32)
    released_principal: int = _col(BigInteger)
    tx_hash: bytes = _col(Bytes32)


class LoanRejectionRow(_Logged, StoreModel, table=True):
    """A loan of a non-atomic batch that the contract refused, with its revert data."""

    __tablename__ = "loan_rejections"

    loan_id: bytes = _col(Bytes32)
    reason: bytes = _col(LargeBinary)
    tx_hash: bytes = _col(Bytes32)


# ------------------------------------------------------------------ aggregates (0002)


class BorrowerExposureRow(StoreModel, table=True):
    """DESIGN §4 exposure by product and the number of institutions with open records (R1-R3),
    as the contract's `borrowerExposure` view reports them."""

    __tablename__ = "borrower_exposure"

    borrower_key: bytes = _col(Bytes32, pk=True)
    consumer: int = _col(BigInteger)
    business: int = _col(BigInteger)
    institutions: int = _col(SmallInteger)


class BorrowerLenderRow(StoreModel, table=True):
    """One borrower with one institution: open records (R3), the institution's outstanding loan
    principal and its share of active credit-line limits. Kept off chain by design."""

    __tablename__ = "borrower_lenders"

    borrower_key: bytes = _col(Bytes32, pk=True)
    lender: str = _col(ADDRESS, pk=True)
    member_index: int = _col(Integer)
    open_records: int = _col(Integer)
    loan_outstanding: int = _col(BigInteger)
    line_limit: int = _col(BigInteger)


class LenderUsageRow(StoreModel, table=True):
    """A bank's outstanding joint-loan principal in total (R6)."""

    __tablename__ = "lender_usage"

    lender: str = _col(ADDRESS, pk=True)
    total: int = _col(BigInteger)


class LenderPartnerUsageRow(StoreModel, table=True):
    """A bank's outstanding joint-loan principal with one platform (R5)."""

    __tablename__ = "lender_partner_usage"

    lender: str = _col(ADDRESS, pk=True)
    partner: str = _col(ADDRESS, pk=True)
    outstanding: int = _col(BigInteger)


# Secondary indexes, added by migration 0002 (and LoanServicing's by 0005).
INDEXES = [
    Index(None, LoanRow.__table__.c.borrower_key),  # type: ignore[attr-defined]
    Index(None, LoanRow.__table__.c.line_id),  # type: ignore[attr-defined]
    Index(None, CreditLineRow.__table__.c.borrower_key),  # type: ignore[attr-defined]
    Index(None, LoanTrancheRow.__table__.c.lender),  # type: ignore[attr-defined]
    Index(None, RepaymentRow.__table__.c.loan_id),  # type: ignore[attr-defined]
    Index(None, LoanStatusChangeRow.__table__.c.loan_id),  # type: ignore[attr-defined]
    Index(None, RawEventRow.__table__.c.contract, RawEventRow.__table__.c.block_number),  # type: ignore[attr-defined]
]
TABLES = {t.name: t for t in metadata.sorted_tables}
