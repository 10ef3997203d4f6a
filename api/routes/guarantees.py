"""Guarantees (LoanServicing) through the nodes: the guarantor's node attests its net assets,
offers cover and records its compensatory payment; the platform's node accepts the offer and
records recoveries on a written-off loan; every node reads a loan's guarantee and a guarantor's
statement."""

from __future__ import annotations

from typing import Annotated

from eth_utils import to_checksum_address
from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field, Strict

from api.deps import ConsortiumDep, ContextDep, GuarantorSelf, MemberReader, PlatformSelf
from api.problems import responses
from api.routes import LoanIdPath
from api.schemas.common import Address, ApiId, Fen, Model
from api.service import attestations, guarantees

guarantor = APIRouter(prefix="/v1/loans", tags=["guarantor node"])
guarantor_attest = APIRouter(prefix="/v1/attestations", tags=["guarantor node"])
platform = APIRouter(prefix="/v1/loans", tags=["loans (platform node)"])
views = APIRouter(prefix="/v1", tags=["guarantees"])

Cover = Annotated[int, Strict(), Field(ge=1, le=10_000, description="bps of each bank tranche")]
AddressPath = Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")]
_WRITE = responses(401, 403, 404, 409, 422, 502, 503)


class OfferIn(Model):
    cover_bps: Cover


class NetAssetsIn(Model):
    net_assets: Annotated[int, Strict(), Field(gt=0, lt=2**64, description="fen")]
    valid_until: Annotated[int, Strict(), Field(gt=0, lt=2**40, description="unix seconds")]


class AcceptIn(Model):
    guarantor: Address
    cover_bps: Cover


class RecoveryIn(Model):
    recovery_id: ApiId
    amount: Fen


@guarantor_attest.post("/net-assets", status_code=201, responses=_WRITE)
def attest_net_assets(
    body: NetAssetsIn, ctx: ContextDep, chain: ConsortiumDep, _p: GuarantorSelf
) -> dict:
    """Attest this guarantor's net assets (R10's base: its unsettled guarantees stay within the
    governed multiple of them) until `valid_until`, no further ahead than the policy's maximum
    attestation age (InvalidAttestation naming `valid_until`)."""
    return attestations.attest_net_assets(ctx, chain, body.net_assets, body.valid_until)


@guarantor.post("/{loan_id}/guarantee-offer", status_code=201, responses=_WRITE)
def offer(
    loan_id: LoanIdPath, body: OfferIn, ctx: ContextDep, chain: ConsortiumDep, _p: GuarantorSelf
) -> dict:
    """Offer to cover `cover_bps` of the loan's bank tranches (binding once the platform
    accepts); pre-checked against R10 (GuaranteeCapExceeded, StaleNetAssets)."""
    return guarantees.offer(ctx, chain, loan_id, body.cover_bps)


@guarantor.post("/{loan_id}/compensation", status_code=201, responses=_WRITE)
def compensate(
    loan_id: LoanIdPath, ctx: ContextDep, chain: ConsortiumDep, _p: GuarantorSelf
) -> dict:
    """Record this guarantor's compensatory payment (代偿) on a defaulted loan it guarantees:
    each covered bank tranche gets floor(outstanding x cover)."""
    return guarantees.compensate(ctx, chain, loan_id)


@platform.post("/{loan_id}/guarantee", status_code=201, responses=_WRITE)
def accept(
    loan_id: LoanIdPath, body: AcceptIn, ctx: ContextDep, chain: ConsortiumDep, _p: PlatformSelf
) -> dict:
    """Record exactly the guarantor's offer on this platform's open loan (R10 judged again)."""
    return guarantees.accept(ctx, chain, loan_id, body.guarantor, body.cover_bps)


@platform.post("/{loan_id}/recoveries", status_code=201, responses=_WRITE)
def recover(
    loan_id: LoanIdPath, body: RecoveryIn, ctx: ContextDep, chain: ConsortiumDep, _p: PlatformSelf
) -> JSONResponse:
    """Record a recovery on a written-off loan, split across the tranches by principal share;
    exposure is not added back. Idempotent by `recovery_id`."""
    status, out, replayed = guarantees.recover(ctx, chain, loan_id, body)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(out, status_code=status, headers=headers)


@views.get("/loans/{loan_id}/guarantee", responses=responses(401, 403, 404, 422))
def guarantee_of(
    loan_id: LoanIdPath, ctx: ContextDep, chain: ConsortiumDep, principal: MemberReader
) -> dict:
    """The loan's guarantee (guarantor, cover, amount, settled), each tranche's payout and the
    recoveries: for the loan's parties, its guarantor and the auditor."""
    return guarantees.guarantee_of(ctx, chain, principal, loan_id)


@views.get("/guarantors/{address}/statement", responses=responses(401, 403, 422))
def statement(address: AddressPath, ctx: ContextDep, principal: MemberReader) -> dict:
    """A guarantor's guarantees (outstanding, released, compensated), payouts and R10 headroom
    (cap = net assets x the governed multiple): for the guarantor itself and the auditor."""
    return guarantees.statement(ctx, principal, to_checksum_address(address))
