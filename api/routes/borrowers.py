"""Borrower keys and consortium-wide exposure (every node)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from api.deps import ContextDep, ReaderDep, ReadsDep
from api.problems import responses
from api.schemas.reads import BorrowerKeyIn, BorrowerKeyOut, ExposureOut
from api.service import reads as service
from ledger.domain import to_hex

router = APIRouter(prefix="/v1/borrowers", tags=["borrowers"])

KeyPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$")]


@router.post("/key", response_model=BorrowerKeyOut, responses=responses(401, 403, 422))
def key(body: BorrowerKeyIn, ctx: ContextDep, _p: ReaderDep) -> BorrowerKeyOut:
    """The borrower key for a national ID. The ID is validated here (422 naming the rule it
    broke; a bad ID is never sent), keyed by the key service for the stated purpose (this node
    holds no pepper; the service rate-limits and logs each derivation: 429 over its rate), and
    then dropped: never stored, logged or echoed."""
    return BorrowerKeyOut(borrower_key=to_hex(ctx.keys.derive(body.national_id, body.purpose)))


@router.get(
    "/{borrower_key}/exposure", response_model=ExposureOut, responses=responses(401, 403, 422)
)
async def exposure(borrower_key: KeyPath, reads: ReadsDep, principal: ReaderDep) -> ExposureOut:
    """Consortium-wide exposure, institutions, caps and headroom, plus the caller's own part."""
    # The database read goes to the thread pool in one hand-off; the response is then built
    # on the event loop (a sync route would cost a second hand-off to validate it).
    return await run_in_threadpool(
        service.exposure, reads, principal, bytes.fromhex(borrower_key[2:])
    )
