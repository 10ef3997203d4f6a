"""Between the wire and the domain: signed terms as JSON (for co-signing and idempotency) and
as ledger.domain records."""

from __future__ import annotations

from typing import Any

from api.schemas.common import product_name, product_of, repayment_name, repayment_of
from api.schemas.records import LineTerms, LoanTerms
from ledger.domain import CoLoan, CreditLine, Tranche


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _shares(ts: tuple[Tranche, ...]) -> list[dict[str, Any]]:
    return [{"lender": t.lender, "amount": t.amount} for t in ts]


def loan_terms(loan: CoLoan) -> dict[str, Any]:
    return {
        "loan_id": _hex(loan.loan_id),
        "borrower_key": _hex(loan.borrower_key),
        "platform": loan.platform,
        "product": product_name(loan.product),
        "principal": loan.principal,
        "apr_bps": loan.apr_bps,
        "term_days": loan.term_days,
        "repayment": repayment_name(loan.repayment),
        "line_id": _hex(loan.line_id),
        "document_digest": _hex(loan.document_digest),
        "deadline": loan.deadline,
        "tranches": _shares(loan.tranches),
    }


def line_terms(line: CreditLine) -> dict[str, Any]:
    return {
        "line_id": _hex(line.line_id),
        "borrower_key": _hex(line.borrower_key),
        "platform": line.platform,
        "product": product_name(line.product),
        "limit": line.limit,
        "expires_at": line.expires_at,
        "document_digest": _hex(line.document_digest),
        "deadline": line.deadline,
        "shares": _shares(line.shares),
    }


def terms_of(record: CoLoan | CreditLine) -> dict[str, Any]:
    return loan_terms(record) if isinstance(record, CoLoan) else line_terms(record)


def loan_of(t: LoanTerms | dict[str, Any]) -> CoLoan:
    """The CoLoan exactly as given: tranche order is part of what is signed, so it is kept (the
    rules refuse unsorted tranches with TranchesNotSorted)."""
    t = t if isinstance(t, LoanTerms) else LoanTerms.model_validate(t)
    return CoLoan(
        loan_id=t.loan_id,
        borrower_key=t.borrower_key,
        platform=t.platform,
        product=product_of(t.product),
        principal=t.principal,
        apr_bps=t.apr_bps,
        term_days=t.term_days,
        repayment=repayment_of(t.repayment),
        deadline=t.deadline,
        tranches=tuple(Tranche(s.lender, s.amount) for s in t.tranches),
        line_id=t.line_id,
        document_digest=t.document_digest,
    )


def line_of(t: LineTerms | dict[str, Any]) -> CreditLine:
    t = t if isinstance(t, LineTerms) else LineTerms.model_validate(t)
    return CreditLine(
        line_id=t.line_id,
        borrower_key=t.borrower_key,
        platform=t.platform,
        product=product_of(t.product),
        limit=t.limit,
        expires_at=t.expires_at,
        deadline=t.deadline,
        shares=tuple(Tranche(s.lender, s.amount) for s in t.shares),
        document_digest=t.document_digest,
    )
