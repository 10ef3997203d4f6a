"""LoanServicing's tables (migration 0005; prepayments 0006): guarantees and their releases,
compensations (代偿), classifications (五级分类), recoveries and prepayments, as the indexer
decodes them (ledger.ingest.servicing).

They only ever gain rows, each keyed by or carrying the block of the event that wrote it: a reorg
removes what lies above the common ancestor and nothing else needs recomputing. They carry no
foreign key to `loans`, whose rows a rollback deletes and writes again."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, SmallInteger

from ledger.store.base import ADDRESS, Logged, StoreModel, col
from ledger.store.types import Bytes32


class GuaranteeRow(Logged, StoreModel, table=True):
    """A guarantee the loan's platform accepted (GuaranteeRecorded): it counts against the
    guarantor's R10 capacity until released or compensated."""

    __tablename__ = "guarantees"

    loan_id: bytes = col(Bytes32)
    guarantor: str = col(ADDRESS)
    cover_bps: int = col(Integer)
    amount: int = col(BigInteger)
    tx_hash: bytes = col(Bytes32)


class GuaranteeReleaseRow(Logged, StoreModel, table=True):
    """A guarantee ended without a payout, the loan being repaid (GuaranteeReleased)."""

    __tablename__ = "guarantee_releases"

    loan_id: bytes = col(Bytes32)
    guarantor: str = col(ADDRESS)
    amount: int = col(BigInteger)
    tx_hash: bytes = col(Bytes32)


class CompensationRow(StoreModel, table=True):
    """The guarantor's compensatory payment (代偿, Compensated) to one tranche, in tranche order;
    once per loan."""

    __tablename__ = "compensations"

    loan_id: bytes = col(Bytes32, pk=True)
    idx: int = col(SmallInteger, pk=True)
    guarantor: str = col(ADDRESS)
    payout: int = col(BigInteger)
    block_number: int = col(BigInteger)
    log_index: int = col(Integer)
    tx_hash: bytes = col(Bytes32)


class ClassificationRow(Logged, StoreModel, table=True):
    """A bank's five-category classification of its own tranche (Classified), with its previous
    category for the same loan (None for its first)."""

    __tablename__ = "classifications"

    loan_id: bytes = col(Bytes32)
    lender: str = col(ADDRESS)
    category: int = col(SmallInteger)
    previous: int | None = col(SmallInteger, null=True)
    dpd: int = col(BigInteger)
    tx_hash: bytes = col(Bytes32)


class RecoveryRow(StoreModel, table=True):
    """One tranche's share of a recovery on a written-off loan (Recovered), as the event split
    it."""

    __tablename__ = "recoveries"

    recovery_id: bytes = col(Bytes32, pk=True)
    idx: int = col(SmallInteger, pk=True)
    loan_id: bytes = col(Bytes32)
    amount: int = col(BigInteger)  # the whole recovery
    share: int = col(BigInteger)  # this tranche's part of it
    block_number: int = col(BigInteger)
    log_index: int = col(Integer)
    tx_hash: bytes = col(Bytes32)


class PrepaymentRow(Logged, StoreModel, table=True):
    """A prepayment that rescaled a loan's schedule (Prepaid, migration 0006): the figures
    ledger.prepayment replays, and the digest the replay must reach."""

    __tablename__ = "prepayments"

    loan_id: bytes = col(Bytes32)
    principal: int = col(BigInteger)  # prepaid beyond the instalments it covered in full
    covered: int = col(Integer)  # instalments of the schedule then in force covered in full
    principal_base: int = col(BigInteger)  # principal repaid before the new schedule starts
    schedule_digest: bytes = col(Bytes32)
    tx_hash: bytes = col(Bytes32)


SERVICING_TABLES = ("guarantees", "guarantee_releases", "compensations", "classifications",
                    "recoveries", "prepayments")  # fmt: skip

SERVICING_INDEXES = [
    Index(None, GuaranteeRow.__table__.c.loan_id),  # type: ignore[attr-defined]
    Index(None, ClassificationRow.__table__.c.loan_id),  # type: ignore[attr-defined]
    Index(None, ClassificationRow.__table__.c.lender),  # type: ignore[attr-defined]
    Index(None, RecoveryRow.__table__.c.loan_id),  # type: ignore[attr-defined]
    Index(None, PrepaymentRow.__table__.c.loan_id),  # type: ignore[attr-defined]
]
