"""Conversions of the signed records, written once: CoLoan and CreditLine to and from their
signed terms as JSON (co-signing, idempotency), database rows (the read model) and read-back
views; the wire names of their enums. `ledger/` never imports `api/`: the API's pydantic models
validate, these functions map."""

from __future__ import annotations

from typing import Any

from ledger.domain import CoLoan, CreditLine
from ledger.records.lines import line_from_row, line_from_terms, line_terms
from ledger.records.loans import loan_from_row, loan_from_terms, loan_terms, loan_view
from ledger.records.names import (
    product_name,
    product_of,
    repayment_name,
    repayment_of,
    status_name,
)
from ledger.records.shares import shares_json, tranches_of

__all__ = [
    "line_from_row",
    "line_from_terms",
    "line_terms",
    "loan_from_row",
    "loan_from_terms",
    "loan_terms",
    "loan_view",
    "product_name",
    "product_of",
    "repayment_name",
    "repayment_of",
    "shares_json",
    "status_name",
    "terms_of",
    "tranches_of",
]


def terms_of(record: CoLoan | CreditLine) -> dict[str, Any]:
    """The signed terms of either record as JSON."""
    return loan_terms(record) if isinstance(record, CoLoan) else line_terms(record)
