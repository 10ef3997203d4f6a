"""The council on a member's own node: propose, approve, execute, cancel, read; and the
emergency brake. Writes are signed with this node's key, so only its own member may ask."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal
from api.deps import ContextDep, ReaderDep, require
from api.problems import responses
from api.schemas.common import Address
from api.service import governance as service

router = APIRouter(prefix="/v1/governance", tags=["governance"])

MemberSelf = Annotated[Principal, Depends(require("platform", "lender", "auditor", own_node=True))]
ProposalId = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{64}$")]


class ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal[
        "policy",
        "admit",
        "suspend",
        "reinstate",
        "remove",
        "freeze",
        "unfreeze",
        "unpause",
        "transfer-servicing",
    ]
    address: Address | None = None
    # transfer-servicing: the successor platform (`address` is the platform handing over)
    to: Address | None = None
    role: Literal["platform", "lender", "auditor", "guarantor"] | None = None
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    # the fields to change (fen, bps, days, seconds), as ledger.domain.Policy names them
    policy: dict[str, Annotated[int, Field(ge=0, le=2**48 - 1)]] | None = None


class ProposalOut(BaseModel):
    id: str
    target: str
    data: str
    salt: str
    proposer: str
    state: str
    approvals: int
    threshold: int
    approvers: list[str]
    ready_at: int


def _out(st: Any) -> ProposalOut:
    return ProposalOut(**st.to_json())


@router.post(
    "/proposals",
    status_code=201,
    response_model=ProposalOut,
    responses=responses(400, 401, 403, 409, 422),
)
def propose(body: ProposalIn, ctx: ContextDep, _p: MemberSelf) -> ProposalOut:
    """Propose a governed change (policy within the hard bounds, admit, suspend, reinstate,
    remove, freeze, unfreeze, unpause), signed by this node's member; its approval counts."""
    return _out(service.propose(ctx, body))


@router.post(
    "/proposals/{proposal}/approve",
    response_model=ProposalOut,
    responses=responses(401, 403, 404, 409, 422),
)
def approve(proposal: ProposalId, ctx: ContextDep, _p: MemberSelf) -> ProposalOut:
    """Approve with this node's member's key; a majority schedules it on the timelock."""
    return _out(service.act(ctx, "approve", proposal))


@router.post(
    "/proposals/{proposal}/execute",
    response_model=ProposalOut,
    responses=responses(400, 401, 403, 404, 409, 422),
)
def execute(proposal: ProposalId, ctx: ContextDep, _p: MemberSelf) -> ProposalOut:
    """Execute a scheduled proposal once the timelock's delay has passed."""
    return _out(service.act(ctx, "execute", proposal))


@router.post(
    "/proposals/{proposal}/cancel",
    response_model=ProposalOut,
    responses=responses(401, 403, 404, 409, 422),
)
def cancel(proposal: ProposalId, ctx: ContextDep, _p: MemberSelf) -> ProposalOut:
    """Withdraw this member's own proposal while it is pending."""
    return _out(service.act(ctx, "cancel", proposal))


@router.get(
    "/proposals/{proposal}", response_model=ProposalOut, responses=responses(401, 403, 404, 422)
)
def status(proposal: ProposalId, ctx: ContextDep, _p: ReaderDep) -> ProposalOut:
    """A proposal's state, the approvals counting now, the threshold and its earliest execution."""
    return _out(service.status(ctx, proposal))


@router.post("/pause", status_code=204, responses=responses(401, 403, 409))
def pause(ctx: ContextDep, _p: MemberSelf) -> None:
    """The emergency brake: this node's member pauses every ledger write at once."""
    ctx.client.pause()
