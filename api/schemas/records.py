"""Request and response models of the writing endpoints: credit lines, loans, batches,
co-signatures and capital attestations (repayments and status changes: api.schemas.payments)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, Strict, model_validator

from api.schemas.common import (
    Address,
    ApiId,
    BorrowerRef,
    Document,
    Fen,
    FenOrZero,
    Hex32,
    Model,
    Share,
    examples,
    unique_lenders,
)
from ledger.domain import CoLoan, CreditLine
from ledger.records import line_from_terms, loan_from_terms
from ledger.records.names import ProductName, RepaymentName

PLATFORM = "0xbA954b03dd012d0B065e554Ec4c9Bd8396c19801"  # the DEV-ONLY consortium's
BANK_A = "0x99427C5eCD7200c06cfa34817657bd2FB118a897"
BANK_B = "0x3275307473659Df12B8cEd8a06c806a6D0492561"
KEY, LOAN_ID, TX_HASH = "0x" + "ab" * 32, "0x" + "12" * 32, "0x" + "cd" * 32  # examples
LOAN_EXAMPLE = {
    "loan_id": LOAN_ID,
    "borrower_key": KEY,
    "platform": PLATFORM,
    "product": "consumer",
    "principal": 3_000_000,
    "apr_bps": 1_200,
    "term_days": 180,
    "repayment": "instalment",
}

Shares = Annotated[list[Share], Field(min_length=1, max_length=8), AfterValidator(unique_lenders)]
U32 = Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)]


class LineIn(BorrowerRef):
    model_config = examples(
        {
            "line_id": "line-2024-000042",
            "borrower_key": KEY,
            "product": "consumer",
            "limit": 5_000_000,
            "expires_at": 1_767_225_600,
            "shares": [
                {"lender": PLATFORM, "amount": 2_000_000},
                {"lender": BANK_A, "amount": 3_000_000},
            ],
        }
    )

    line_id: ApiId
    product: ProductName
    limit: Fen
    expires_at: Annotated[int, Strict(), Field(gt=0, lt=2**40, description="unix seconds")]
    shares: Shares
    document: Document = None


class InstalmentIn(Model):
    due: Annotated[int, Strict(), Field(gt=0, lt=2**40, description="unix seconds")]
    principal: FenOrZero
    interest: FenOrZero
    charges: FenOrZero = 0


class ScheduleIn(Model):
    """The repayment schedule (ledger.schedule): built from kind, months and rates, or given as
    instalments (then checked: they sum to the principal, due dates increase)."""

    kind: Literal["bullet", "equal_instalment", "equal_principal"] = "equal_instalment"
    months: Annotated[int, Strict(), Field(ge=1, le=360)] = 12
    rate_bps: Annotated[int, Strict(), Field(ge=0, le=100_000, description="annual interest")] = 0
    charge_bps: Annotated[
        int, Strict(), Field(ge=0, le=100_000, description="guarantee fee and other charges, p.a.")
    ] = 0
    charge_on_original: bool = False
    start: Annotated[int, Strict(), Field(gt=0, lt=2**40)] | None = None
    instalments: Annotated[list[InstalmentIn], Field(min_length=1, max_length=360)] | None = None


class ScheduleTerms(Model):
    """A schedule as it travels beside the signed terms to the lender nodes."""

    start: Annotated[int, Strict(), Field(gt=0, lt=2**40)]
    instalments: Annotated[list[InstalmentIn], Field(min_length=1, max_length=360)]


class LoanIn(BorrowerRef):
    model_config = examples(
        {
            "loan_id": "loan-2024-000123",
            "borrower_id": "11010519491231002X",
            "product": "consumer",
            "principal": 3_000_000,
            "apr_bps": 1_200,
            "term_days": 180,
            "repayment": "instalment",
            "tranches": [
                {"lender": PLATFORM, "amount": 1_200_000},
                {"lender": BANK_A, "amount": 900_000},
                {"lender": BANK_B, "amount": 900_000},
            ],
        }
    )

    loan_id: ApiId
    product: ProductName
    principal: Fen
    apr_bps: U32 | None = Field(
        None, examples=[1_200], description="all-in APR (IRR), bps; computed from `schedule`"
    )
    term_days: Annotated[int, Strict(), Field(gt=0, le=2**32 - 1, examples=[180])] | None = Field(
        None,
        description="days from the start to maturity; with a `schedule`, derived from it (last "
        "due - start) and, if given, it must match",
    )
    repayment: RepaymentName
    tranches: Shares
    line_id: ApiId | None = None
    document: Document = None
    schedule: ScheduleIn | None = None

    @model_validator(mode="after")
    def _apr_or_schedule(self) -> LoanIn:
        if self.apr_bps is None and self.schedule is None:
            raise ValueError("give apr_bps or a schedule to compute it from")
        if self.term_days is None and self.schedule is None:
            raise ValueError("give term_days or a schedule to derive it from")
        return self


class RecordOut(Model):
    """A record as recorded on chain."""

    model_config = examples(
        {
            "loan_id": LOAN_ID,
            "borrower_key": KEY,
            "tx_hash": TX_HASH,
            "block_number": 42,
            "status": "active",
        }
    )

    loan_id: str | None = None
    line_id: str | None = None
    borrower_key: str
    tx_hash: str | None
    block_number: int
    status: str
    document_digest: str | None = None


class BatchIn(Model):
    model_config = examples({"loans": ["<LoanIn>", "<LoanIn>"]})
    loans: Annotated[list[LoanIn], Field(min_length=1, max_length=100)]


class BatchItem(Model):
    loan_id: str
    status: int = Field(..., description="201 recorded, else the problem's status")
    result: RecordOut | None = None
    problem: dict[str, Any] | None = None


class BatchOut(Model):
    model_config = examples(
        {
            "accepted": 1,
            "rejected": 1,
            "results": [
                {"loan_id": LOAN_ID, "status": 201, "result": {"...": "..."}},
                {
                    "loan_id": "0x" + "34" * 32,
                    "status": 409,
                    "problem": {"code": "BorrowerCapExceeded", "rule": "R1/R2"},
                },
            ],
        }
    )
    accepted: int
    rejected: int
    results: list[BatchItem]


class LoanTerms(Model):
    """A co-loan exactly as every party signs it (EIP-712 CoLoan)."""

    loan_id: Hex32
    borrower_key: Hex32
    platform: Address
    product: ProductName
    principal: Fen
    apr_bps: U32
    term_days: U32
    repayment: RepaymentName
    line_id: Hex32
    document_digest: Hex32
    schedule_digest: Hex32 = "0x" + "00" * 32
    deadline: Annotated[int, Strict(), Field(gt=0, lt=2**64)]
    tranches: Shares

    def record(self) -> CoLoan:
        """The CoLoan exactly as given: tranche order is part of what is signed, so it is kept
        (the rules refuse unsorted tranches with TranchesNotSorted)."""
        return loan_from_terms(dict(self))


class LineTerms(Model):
    """A credit line exactly as every party signs it (EIP-712 CreditLine)."""

    line_id: Hex32
    borrower_key: Hex32
    platform: Address
    product: ProductName
    limit: Fen
    expires_at: Annotated[int, Strict(), Field(gt=0, lt=2**64)]
    document_digest: Hex32
    deadline: Annotated[int, Strict(), Field(gt=0, lt=2**64)]
    shares: Shares

    def record(self) -> CreditLine:
        return line_from_terms(dict(self))


class CosignIn(Model):
    model_config = examples(
        {
            "kind": "loan",
            "terms": {
                **LOAN_EXAMPLE,
                "line_id": "0x" + "00" * 32,
                "document_digest": "0x" + "00" * 32,
                "deadline": 1_767_225_600,
                "tranches": [
                    {"lender": BANK_A, "amount": 1_800_000},
                    {"lender": PLATFORM, "amount": 1_200_000},
                ],
            },
        }
    )
    kind: Literal["loan", "line"]
    terms: LoanTerms | LineTerms
    schedule: ScheduleTerms | None = None

    @model_validator(mode="after")
    def _kind_matches(self) -> CosignIn:
        want = LoanTerms if self.kind == "loan" else LineTerms
        if not isinstance(self.terms, want):
            raise ValueError(f"terms must be {want.__name__} for kind {self.kind!r}")
        return self


class CosignOut(Model):
    model_config = examples(
        {"signature": "0x" + "ef" * 65, "signer": BANK_A, "digest": "0x" + "77" * 32}
    )
    signature: str
    signer: str
    digest: str


class CosignBatchIn(Model):
    """Many records of one kind for one lender to co-sign in one request (a platform node's
    batch): each is checked and signed, or refused, on its own."""

    model_config = examples({"kind": "loan", "items": ["<LoanTerms>", "<LoanTerms>"]})
    kind: Literal["loan", "line"]
    items: Annotated[list[LoanTerms | LineTerms], Field(min_length=1, max_length=100)]
    schedules: Annotated[
        list[ScheduleTerms | None] | None,
        Field(max_length=100, description="each loan's schedule (or null), in the items' order"),
    ] = None

    @model_validator(mode="after")
    def _kind_matches(self) -> CosignBatchIn:
        want = LoanTerms if self.kind == "loan" else LineTerms
        if not all(isinstance(t, want) for t in self.items):
            raise ValueError(f"kind is {self.kind!r} but an item's terms are not {want.__name__}")
        if self.schedules is not None and len(self.schedules) != len(self.items):
            raise ValueError(f"schedules: {len(self.schedules)} given for {len(self.items)} items")
        return self


class CosignItem(Model):
    status: int = Field(..., description="200 signed, else the problem's status")
    signature: str | None = None
    digest: str | None = None
    problem: dict[str, Any] | None = None


class CosignBatchOut(Model):
    signer: str
    results: list[CosignItem] = Field(..., description="one per item, in the request's order")


class AttestationIn(Model):
    model_config = examples(
        {
            "tier1_capital": 10**12,
            "total_loan_balance": 10**13,
            "valid_until": 1_767_225_600,
        }
    )
    tier1_capital: Annotated[int, Strict(), Field(gt=0, lt=2**64)]
    total_loan_balance: Annotated[int, Strict(), Field(gt=0, lt=2**64)]
    valid_until: Annotated[int, Strict(), Field(gt=0, lt=2**40, description="unix seconds")]


class AttestationOut(Model):
    model_config = examples(
        {
            "lender": BANK_A,
            "tier1_capital": 10**12,
            "total_loan_balance": 10**13,
            "valid_until": 1_767_225_600,
            "tx_hash": TX_HASH,
            "block_number": 45,
        }
    )
    lender: str
    tier1_capital: int
    total_loan_balance: int
    valid_until: int
    tx_hash: str | None
    block_number: int
