"""Loans: origination, batches, repayments and status (platform node); reads (every node)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import ConsortiumDep, ContextDep, PlatformDep, PlatformSelf, ReaderDep, ReadsDep
from api.problems import responses
from api.routes import LoanIdPath
from api.schemas.common import Hex32
from api.schemas.payments import RepaymentIn, RepaymentOut, StatusIn, StatusOut
from api.schemas.reads import LoanList, LoanView
from api.schemas.records import BatchIn, BatchOut, LoanIn, RecordOut
from api.service import batch, originate, payments, reads, schedules

writes = APIRouter(prefix="/v1/loans", tags=["loans (platform node)"])
views = APIRouter(prefix="/v1/loans", tags=["loans"])

_WRITE_ERRORS = responses(400, 401, 403, 404, 409, 422, 502, 503)


def _reply(result: tuple[int, dict[str, Any], bool]) -> JSONResponse:
    status, body, replayed = result
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(body, status_code=status, headers=headers)


@writes.post("", status_code=201, response_model=RecordOut, responses=_WRITE_ERRORS)
def create_loan(body: LoanIn, platform: PlatformDep, caller: PlatformSelf) -> JSONResponse:
    """Co-originate a loan: validate, pre-check (ledger.rules), collect every lender node's
    co-signature, verify them, submit, wait for the receipt. Idempotent by `loan_id`."""
    return _reply(originate.originate(platform, body, caller.clock))


@writes.post(
    "/batch", response_model=BatchOut, response_model_exclude_none=True, responses=_WRITE_ERRORS
)
def create_batch(body: BatchIn, platform: PlatformDep, _p: PlatformSelf) -> BatchOut:
    """Up to 100 loans, each checked, co-signed (one request per lender node for the whole
    batch) and recorded or refused on its own: per-item results (201 or the item's problem).
    Idempotent by each `loan_id`."""
    return batch.batch(platform, body)


@writes.post(
    "/{loan_id}/repayments", status_code=201, response_model=RepaymentOut, responses=_WRITE_ERRORS
)
def repay(
    loan_id: LoanIdPath, body: RepaymentIn, platform: PlatformDep, _p: PlatformSelf
) -> JSONResponse:
    """Record a repayment; returns the per-tranche allocation. Idempotent by `repayment_id`."""
    return _reply(payments.repay(platform, loan_id, body))


@writes.post("/{loan_id}/status", response_model=StatusOut, responses=_WRITE_ERRORS)
def set_status(
    loan_id: LoanIdPath, body: StatusIn, platform: PlatformDep, _p: PlatformSelf
) -> JSONResponse:
    """Move a loan to overdue, back to active, to defaulted or written off."""
    return _reply(payments.set_status(platform, loan_id, body))


@views.get("/{loan_id}", response_model=LoanView, responses=responses(401, 403, 404, 422))
def get_loan(
    loan_id: LoanIdPath,
    read_model: ReadsDep,
    principal: ReaderDep,
    ctx: ContextDep,
    chain: ConsortiumDep,
) -> LoanView:
    """One loan, if it is within the caller's scope (auditor: all; platform: its own; lender:
    the loans it funds a tranche of); otherwise the same 404 as for a loan that does not exist.
    With its schedule (due, paid, overdue; days past due and the floor's category) when this
    node holds it (the platform's and the banks' nodes that signed it)."""
    view = reads.get_loan(read_model, principal, loan_id)
    return schedules.attach(view, ctx, chain)


@views.get("", response_model=LoanList, responses=responses(401, 403, 422))
def list_loans(
    read_model: ReadsDep, principal: ReaderDep, borrower_key: Annotated[Hex32, Query()]
) -> LoanList:
    """A borrower's loans within the caller's scope."""
    loans = reads.list_loans(read_model, principal, bytes.fromhex(borrower_key[2:]))
    return LoanList(borrower_key=borrower_key.lower(), count=len(loans), loans=loans)
