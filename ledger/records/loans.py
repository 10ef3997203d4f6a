"""CoLoan to and from its signed terms (JSON), a read-model row, and its read-back view."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.domain import ZERO32, CoLoan, LoanStatus, to_hex
from ledger.records.names import product_name, product_of, repayment_name, repayment_of, status_name
from ledger.records.shares import shares_json, tranches_of

# Fields that are the same in every form (ids and digests: bytes, or 0x-hex that CoLoan reads).
_SAME = ("loan_id", "borrower_key", "platform", "principal", "apr_bps", "term_days", "deadline")


def _named(loan: CoLoan) -> dict[str, Any]:
    """The terms a loan is known by, as JSON: in its signed terms and in its view alike."""
    return {
        "loan_id": to_hex(loan.loan_id),
        "borrower_key": to_hex(loan.borrower_key),
        "platform": loan.platform,
        "product": product_name(loan.product),
        "principal": loan.principal,
        "apr_bps": loan.apr_bps,
        "term_days": loan.term_days,
        "repayment": repayment_name(loan.repayment),
    }


def loan_terms(loan: CoLoan) -> dict[str, Any]:
    """The loan exactly as every party signs it, as JSON (ids and digests in 0x-hex)."""
    return {
        **_named(loan),
        "line_id": to_hex(loan.line_id),
        "document_digest": to_hex(loan.document_digest),
        "schedule_digest": to_hex(loan.schedule_digest),
        "deadline": loan.deadline,
        "tranches": shares_json(loan.tranches),
    }


def loan_from_terms(t: Mapping[str, Any]) -> CoLoan:
    """The CoLoan exactly as given (validated terms): tranche order is part of what is signed,
    so it is kept (the rules refuse unsorted tranches with TranchesNotSorted)."""
    return CoLoan(
        **{k: t[k] for k in _SAME},
        product=product_of(t["product"]),
        repayment=repayment_of(t["repayment"]),
        tranches=tranches_of(t["tranches"]),
        line_id=t["line_id"],
        document_digest=t["document_digest"],
        schedule_digest=t.get("schedule_digest") or ZERO32,
    )


def loan_from_row(r: Mapping[str, Any], tranches: Sequence[Mapping[str, Any]]) -> CoLoan:
    """From a `loans` row and its `tranches` rows (in tranche order)."""
    return CoLoan(
        **{k: r[k] for k in _SAME},
        product=r["product"],
        repayment=r["repayment"],
        tranches=tranches_of(tranches),
        line_id=r["line_id"] or ZERO32,
        document_digest=r["document_digest"] or ZERO32,
        schedule_digest=r.get("schedule_digest") or ZERO32,
    )


def _optional(value: bytes) -> str | None:
    return None if value == ZERO32 else to_hex(value)


def loan_view(
    loan: CoLoan,
    outstanding: int,
    status: LoanStatus | int,
    per_tranche: Sequence[int],
    *,
    policy_version: int,
    block_number: int,
    tx_hash: str,
) -> dict[str, Any]:
    """A loan as read back: its terms (no deadline; a line and a digest only when there is
    one), its live figures per tranche, and where it was recorded."""
    return {
        **_named(loan),
        "line_id": _optional(loan.line_id),
        "document_digest": _optional(loan.document_digest),
        "schedule_digest": _optional(loan.schedule_digest),
        "outstanding": int(outstanding),
        "status": status_name(status),
        "tranches": [
            {"lender": t.lender, "amount": t.amount, "outstanding": int(o)}
            for t, o in zip(loan.tranches, per_tranche, strict=True)
        ],
        "policy_version": policy_version,
        "block_number": block_number,
        "tx_hash": tx_hash,
    }
