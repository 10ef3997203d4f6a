"""The platform node's originations in flight (`GET /v1/originations/pending`): accepted, not
yet settled on chain, with their state and age (api/service/inflight.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import PlatformDep, PlatformSelf
from api.problems import responses
from api.service import inflight

router = APIRouter(prefix="/v1/originations", tags=["loans (platform node)"])


@router.get("/pending", responses=responses(401, 403, 422))
def pending(
    platform: PlatformDep,
    _p: PlatformSelf,
    offset: Annotated[int, Query(ge=0, le=2**31, description="items to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Loans this platform node has accepted but not yet recorded on chain, oldest first: each
    with its state (`gathering_cosignatures`, `queued`, `submitted` with its transaction's hash
    while its receipt is awaited; `unsettled`: sent, outcome unknown, settled by retrying the
    same request; `claimed`: nothing sent) and its age. Paged by `offset` and `limit`. The
    platform itself only."""
    return inflight.pending(platform.submitter.inflight, platform.ctx.engine, offset, limit)
