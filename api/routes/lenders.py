"""A lender's R5/R6 usage and limits: for the lender itself or the auditor."""

from __future__ import annotations

from typing import Annotated

from eth_utils import to_checksum_address
from fastapi import APIRouter, Path

from api.deps import ConsortiumDep, ReaderDep
from api.problems import Problem, responses
from api.schemas.reads import LimitsOut
from api.service import reads

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
