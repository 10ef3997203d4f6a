"""Joint credit lines (platform node)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import PlatformDep, PlatformSelf
from api.problems import responses
from api.routes.loans import _reply
from api.schemas.records import LineIn, RecordOut
from api.service import originate

router = APIRouter(prefix="/v1/credit-lines", tags=["credit lines (platform node)"])


@router.post(
    "",
    status_code=201,
    response_model=RecordOut,
    responses=responses(400, 401, 403, 409, 422, 502, 503),
)
def create_line(body: LineIn, platform: PlatformDep, _p: PlatformSelf) -> JSONResponse:
    """Grant a joint credit line, co-signed by every lender with a share. Idempotent by
    `line_id`."""
    return _reply(originate.grant_line(platform, body))
