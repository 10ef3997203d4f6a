"""Request and response models of the platform node's repayments (with prepayment) and status
changes (split from api.schemas.records)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from api.schemas.common import ApiId, FenOrZero, Model, examples
from api.schemas.records import LOAN_ID, PLATFORM, TX_HASH


class RepaymentIn(Model):
    model_config = examples(
        {"repayment_id": "rp-2024-0001", "principal": 1_000_000, "interest": 30_000}
    )
    repayment_id: ApiId
    principal: FenOrZero
    interest: FenOrZero = 0
    prepayment: bool = Field(
        False,
        description="principal repaid early: once recorded, the loan's remaining instalments are "
        "rescaled on chain (same count and due dates, smaller; the README's prepayment rule). "
        "Refused (409, nothing sent) if an instalment is past due (PrepaymentWhileOverdue) or "
        "the principal ends exactly on an instalment (NothingPrepaid).",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> RepaymentIn:
        if self.principal == 0 and self.interest == 0:
            raise ValueError("principal and interest cannot both be zero")
        return self


class Allocation(Model):
    lender: str
    principal: int
    interest: int


class PrepaymentOut(Model):
    principal: int = Field(..., description="principal prepaid beyond whole instalments, fen")
    covered_instalments: int = Field(..., description="instalments of the schedule then in "
                                     "force repaid in full before the prepayment")  # fmt: skip
    remaining_instalments: int
    schedule_digest: str = Field(..., description="keccak256 of the new remaining instalments")
    next_instalment: dict[str, int] | None
    tx_hash: str | None


class RepaymentOut(Model):
    model_config = examples(
        {
            "loan_id": LOAN_ID,
            "repayment_id": "0x" + "56" * 32,
            "principal": 1_000_000,
            "interest": 30_000,
            "outstanding": 2_000_000,
            "status": "active",
            "allocation": [{"lender": PLATFORM, "principal": 400_000, "interest": 12_000}],
            "tx_hash": TX_HASH,
            "block_number": 43,
        }
    )
    loan_id: str
    repayment_id: str
    principal: int
    interest: int
    outstanding: int
    status: str
    allocation: list[Allocation]
    tx_hash: str | None
    block_number: int
    prepayment: PrepaymentOut | None = None


StatusName = Literal["active", "overdue", "defaulted", "written_off"]


class StatusIn(Model):
    model_config = examples({"status": "overdue", "reason": "DPD30", "change_id": "st-1"})
    status: StatusName
    reason: str = Field(
        "",
        max_length=32,
        pattern=r"^[A-Za-z0-9_.\-]*$",
        description="a short code (at most 32 ASCII characters), never personal data",
    )
    change_id: ApiId | None = Field(None, description="makes a retry idempotent")


class StatusOut(Model):
    model_config = examples(
        {
            "loan_id": LOAN_ID,
            "status": "overdue",
            "previous_status": "active",
            "released_principal": 0,
            "tx_hash": TX_HASH,
            "block_number": 44,
        }
    )
    loan_id: str
    status: str
    previous_status: str
    released_principal: int
    tx_hash: str | None
    block_number: int
