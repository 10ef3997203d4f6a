"""The lender node's writes: co-signing a platform's proposal, attesting its own capital."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ConsortiumDep, ContextDep, LenderSelf, PlatformCaller
from api.problems import responses
from api.schemas.records import (
    AttestationIn,
    AttestationOut,
    CosignBatchIn,
    CosignBatchOut,
    CosignIn,
    CosignOut,
)
from api.service import attestations
from api.service import cosign as service

router = APIRouter(prefix="/v1", tags=["lender node"])


@router.post("/cosign", response_model=CosignOut, responses=responses(401, 403, 409, 422))
def cosign(
    body: CosignIn, ctx: ContextDep, chain: ConsortiumDep, caller: PlatformCaller
) -> CosignOut:
    """Sign a platform's proposed loan or line with this lender's key, after checking this
    lender's appetite (maximum tranche, products) and the consortium's rules; or a 409 problem
    saying why not."""
    return service.cosign(ctx, chain, caller, body)


@router.post(
    "/cosign/batch",
    response_model=CosignBatchOut,
    response_model_exclude_none=True,
    responses=responses(401, 403, 422),
)
def cosign_batch(
    body: CosignBatchIn, ctx: ContextDep, chain: ConsortiumDep, caller: PlatformCaller
) -> CosignBatchOut:
    """Up to 100 of a platform's proposed loans (or lines), each checked as /v1/cosign checks
    one, judged in order against one snapshot of the chain: a signature or a problem for each,
    in the request's order."""
    return service.cosign_batch(ctx, chain, caller, body)


@router.post(
    "/attestations/capital",
    status_code=201,
    response_model=AttestationOut,
    responses=responses(401, 403, 409, 422),
)
def attest(
    body: AttestationIn, ctx: ContextDep, chain: ConsortiumDep, _p: LenderSelf
) -> AttestationOut:
    """Attest this lender's tier-1 capital and total loan balance (R5/R6 bases) until
    `valid_until` (R8: a period the registry would refuse is a 409 `InvalidAttestation` naming
    `valid_until`, and nothing is sent)."""
    return AttestationOut(
        **attestations.attest_capital(
            ctx, chain, body.tier1_capital, body.total_loan_balance, body.valid_until
        )
    )
