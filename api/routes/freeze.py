"""Line freezes: a bank freezes (or unfreezes) its own share of a line it funds, on its own node
(signed with the node's key, so by that bank alone); any party to the line, and the auditor,
reads which shares are frozen, from the chain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ConsortiumDep, ContextDep, LenderSelf, ReaderDep
from api.problems import Problem, responses
from api.routes import LoanIdPath
from api.schemas.common import chain_id_of
from ledger.domain import LineStatus, to_hex

router = APIRouter(prefix="/v1/credit-lines", tags=["credit lines: freezes"])


class FreezeIn(BaseModel):
    frozen: bool = True


@router.post("/{line_id}/freeze", responses=responses(401, 403, 404, 409, 422))
def freeze(line_id: LoanIdPath, body: FreezeIn, ctx: ContextDep, _p: LenderSelf) -> dict[str, Any]:
    """Freeze (`frozen: true`) or unfreeze this bank's share of the undrawn part of a line: while
    frozen, a draw with a tranche from this bank is refused on chain (`LineFrozen`)."""
    # a bank names another platform's line by its 0x id (a string id is in its own namespace)
    lid = chain_id_of(line_id, ctx.address)
    receipt = ctx.client.freeze_line(lid, body.frozen)  # a refusal: api.problems maps it
    return {
        "line_id": to_hex(lid),
        "lender": ctx.address,
        "frozen": body.frozen,
        "tx_hash": receipt.tx_hash,
        "block_number": receipt.block_number,
    }


@router.get("/{line_id}/freeze", responses=responses(401, 403, 404, 422))
def frozen_shares(
    line_id: LoanIdPath, chain: ConsortiumDep, principal: ReaderDep
) -> dict[str, Any]:
    """Which banks have frozen their share of a line, as of the chain's head."""
    lid = chain_id_of(line_id, principal.address)
    block = chain.head()
    st = chain.line_state(lid, block)
    me = chain.member(principal.address)
    party = me.index in st.holders or me.index == st.platform_index
    if st.status == LineStatus.NONE or not (party or principal.role == "auditor"):
        raise Problem(404, "UnknownLine", f"no line {line_id}")  # not probed for existence
    c = chain.client
    return {
        "line_id": to_hex(lid),
        "status": st.status.name.lower(),
        "limit": st.limit,
        "drawn": st.drawn,
        "frozen_by": sorted(c.member_at(i) for i in st.frozen),
        "as_of_block": block,
    }
