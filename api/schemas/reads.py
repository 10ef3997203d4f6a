"""Models of sign-in, borrower keys, exposure, loans as read back, lender limits and health."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from api.schemas.common import Address, Model, NationalId, examples
from api.schemas.records import BANK_A, KEY, LOAN_EXAMPLE, PLATFORM, TX_HASH
from ledger.identity import Purpose


class ChallengeIn(Model):
    model_config = examples({"address": BANK_A})
    address: Address


class ChallengeOut(Model):
    model_config = examples(
        {
            "message": "127.0.0.1:8101 wants you to sign in with your Ethereum account:\n"
            f"{BANK_A}\n\nSign in to the consortium node bank-a.\n\n"
            "URI: http://127.0.0.1:8101\nVersion: 1\nChain ID: 31337\n"
            "Nonce: 3kX9a0B1c2D3e4F5\nIssued At: 2025-01-01T00:00:00Z\n"
            "Expiration Time: 2025-01-01T00:05:00Z",
            "nonce": "3kX9a0B1c2D3e4F5",
            "expires_at": "2025-01-01T00:05:00Z",
        }
    )
    message: str
    nonce: str
    expires_at: str


class TokenIn(Model):
    model_config = examples({"message": "<the challenge message>", "signature": "0x…"})
    message: str = Field(..., max_length=4096)
    signature: str = Field(..., max_length=200)


class TokenOut(Model):
    model_config = examples(
        {
            "access_token": "q1w2e3…",
            "token_type": "bearer",
            "expires_at": "2025-01-01T00:15:00Z",
            "role": "lender",
            "address": BANK_A,
        }
    )
    access_token: str
    token_type: str = "bearer"
    expires_at: str
    role: str
    address: str


class BorrowerKeyIn(Model):
    model_config = examples({"national_id": "11010519491231002X", "purpose": "enquiry"})
    national_id: NationalId
    purpose: Purpose = Field(
        "enquiry", description="why the key is asked for; the key service logs it"
    )


class BorrowerKeyOut(Model):
    model_config = examples({"borrower_key": KEY})
    borrower_key: str


class ByProduct(Model):
    consumer: int
    business: int


class Caps(ByProduct):
    max_institutions: int


class Headroom(ByProduct):
    institutions: int = Field(..., description="further institutions before R3 binds")


class ExposureOut(Model):
    model_config = examples(
        {
            "borrower_key": KEY,
            "total_exposure": 3_000_000,
            "exposure": {"consumer": 3_000_000, "business": 0},
            "lender_count": 3,
            "caps": {
                "consumer": 20_000_000,
                "business": 100_000_000,
                "max_institutions": 3,
            },
            "headroom": {
                "consumer": 17_000_000,
                "business": 100_000_000,
                "institutions": 0,
            },
            "own_exposure": 900_000,
            "as_of_block": 42,
        }
    )
    borrower_key: str
    total_exposure: int = Field(..., description="consortium-wide, all products, fen")
    exposure: ByProduct
    lender_count: int = Field(..., description="institutions with open records (R3)")
    caps: Caps
    headroom: Headroom
    own_exposure: int | None = Field(
        ..., description="the caller's own share; null for the auditor, who funds nothing"
    )
    as_of_block: int


class TrancheView(Model):
    lender: str
    amount: int
    outstanding: int


class LoanView(Model):
    model_config = examples(
        {
            **LOAN_EXAMPLE,
            "line_id": None,
            "document_digest": None,
            "outstanding": 2_000_000,
            "status": "active",
            "tranches": [{"lender": BANK_A, "amount": 900_000, "outstanding": 600_000}],
            "policy_version": 1,
            "block_number": 42,
            "tx_hash": TX_HASH,
        }
    )
    loan_id: str
    borrower_key: str
    platform: str
    product: str
    principal: int
    apr_bps: int
    term_days: int
    repayment: str
    line_id: str | None
    document_digest: str | None
    outstanding: int
    status: str
    tranches: list[TrancheView]
    policy_version: int
    block_number: int
    tx_hash: str
    schedule_digest: str | None = None
    schedule: dict[str, Any] | None = Field(
        None,
        description="the schedule in force with each instalment's state, if this node holds "
        "it: after a prepayment the instalments repaid before it, then the remaining ones "
        "rescaled on chain (`prepayments` lists each)",
    )


class LoanList(Model):
    model_config = examples({"borrower_key": KEY, "count": 1, "loans": ["<LoanView>"]})
    borrower_key: str
    count: int
    loans: list[LoanView]


class Usage(Model):
    outstanding: int
    limit: int
    headroom: int


class PartnerUsage(Usage):
    partner: str


class LimitsOut(Model):
    model_config = examples(
        {
            "lender": BANK_A,
            "joint_loans": {"outstanding": 900_000, "limit": 5 * 10**12, "headroom": 1},
            "partners": [
                {
                    "partner": PLATFORM,
                    "outstanding": 900_000,
                    "limit": 10**11,
                    "headroom": 1,
                }
            ],
            "tier1_capital": 10**12,
            "total_loan_balance": 10**13,
            "attested_until": 1_767_225_600,
            "attestation_valid_until": 1_767_225_600,
            "attestation_fresh": True,
            "as_of_block": 42,
        }
    )
    lender: str
    joint_loans: Usage = Field(..., description="R6: all joint loans vs the total loan balance")
    partners: list[PartnerUsage] = Field(..., description="R5: per partner vs tier-1 capital")
    tier1_capital: int
    total_loan_balance: int
    attested_until: int = Field(..., description="the end of the period the lender attested")
    attestation_valid_until: int = Field(
        ...,
        description="R8 at use: the earlier of attested_until and the attestation's time plus "
        "the maxAttestationAge of the policy in force now; after it new tranches are refused",
    )
    attestation_fresh: bool = Field(..., description="R8: stale figures block new tranches")
    as_of_block: int


class Health(Model):
    model_config = examples({"status": "ok"})
    status: str


class Ready(Model):
    model_config = examples(
        {
            "status": "ready",
            "chain_reachable": True,
            "database_reachable": True,
            "block_number": 42,
            "indexer_lag": 0,
            "max_indexer_lag": 10,
        }
    )
    status: str
    chain_reachable: bool
    database_reachable: bool
    block_number: int | None
    indexer_lag: int | None
    max_indexer_lag: int
