"""A lender's R5/R6 usage and limits, its statement and portfolio: for the member itself or the
auditor."""

from __future__ import annotations

from typing import Annotated

from eth_utils import to_checksum_address
from fastapi import APIRouter, Path, Query

from api.deps import ConsortiumDep, ContextDep, ReaderDep, ReadsDep
from api.problems import Problem, responses
from api.schemas.reads import LimitsOut
from api.service import reads, statements

router = APIRouter(prefix="/v1/lenders", tags=["lenders"])


@router.get("/{address}/limits", response_model=LimitsOut, responses=responses(401, 403, 404, 422))
def limits(
    address: Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")],
    chain: ConsortiumDep,
    principal: ReaderDep,
) -> LimitsOut:
    """Outstanding joint loans against R6 (total loan balance) and R5 (tier-1 capital, per
    partner), and whether the capital attestation is fresh (R8)."""
    address = to_checksum_address(address)
    if principal.role != "auditor" and principal.address != address:
        raise Problem(
            403, "NotYourLimits", "a lender's limits are visible to itself and the auditor only"
        )
    return reads.limits(chain, address)


AddressPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")]


@router.get("/{address}/statement", responses=responses(401, 403, 422))
def statement(
    address: AddressPath,
    ctx: ContextDep,
    principal: ReaderDep,
    from_: Annotated[int, Query(alias="from", ge=0, lt=2**40, description="unix seconds")] = 0,
    to: Annotated[int, Query(ge=1, lt=2**40, description="unix seconds, exclusive")] = 2**40 - 1,
) -> dict:
    """A member's flows in [from, to), per loan and in total, from the chain's events: a bank's
    principal and interest received, the service fees it paid the platform, what it kept,
    guarantee payouts and recoveries; a platform's fee income. For the member and the auditor."""
    return statements.get_statement(ctx, principal, to_checksum_address(address), from_, to)


@router.get("/{address}/portfolio", responses=responses(401, 403, 422, 503))
def portfolio(
    address: AddressPath,
    ctx: ContextDep,
    reads: ReadsDep,
    chain: ConsortiumDep,
    principal: ReaderDep,
) -> dict:
    """A bank's outstanding principal by five-category classification (its own recorded one,
    else the DPD floor's; written off: loss), net of guarantee payouts, from the node's read
    model. For itself and the auditor."""
    return statements.get_portfolio(
        ctx, reads, chain.head(), principal, to_checksum_address(address)
    )
