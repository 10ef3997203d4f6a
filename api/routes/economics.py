"""Partnership terms (a bank offers on its node, the platform accepts on its own) and a bank's
classification of its own tranche."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import Field, Strict

from api.deps import ConsortiumDep, ContextDep, LenderSelf, PlatformSelf
from api.problems import responses
from api.routes import LoanIdPath
from api.schemas.common import Address, Model
from api.service import economics

lender = APIRouter(prefix="/v1", tags=["lender node"])
platform = APIRouter(prefix="/v1", tags=["loans (platform node)"])

Bps = Annotated[int, Strict(), Field(ge=0, le=65_535)]
Unix = Annotated[int, Strict(), Field(ge=0, lt=2**40)]


class TermsIn(Model):
    fee_bps: Bps = Field(..., description="the platform's share of the bank's interest")
    min_fee_bps: Bps
    max_fee_bps: Bps
    valid_from: Unix
    valid_until: Unix


class OfferIn(TermsIn):
    platform: Address


class AcceptIn(TermsIn):
    bank: Address


class ClassifyIn(Model):
    category: Literal["normal", "special_mention", "substandard", "doubtful", "loss"]


@lender.post("/partnerships", status_code=201, responses=responses(401, 403, 409, 422))
def offer(body: OfferIn, ctx: ContextDep, _p: LenderSelf) -> dict:
    """Offer the platform partnership terms; they bind once the platform accepts them."""
    return economics.offer(ctx, body)


@platform.post("/partnerships/accept", status_code=201, responses=responses(401, 403, 409, 422))
def accept(body: AcceptIn, ctx: ContextDep, _p: PlatformSelf) -> dict:
    """Accept exactly the terms `bank` offered (PartnershipTermsMismatch otherwise)."""
    return economics.accept(ctx, body)


@lender.post("/loans/{loan_id}/classification", responses=responses(401, 403, 404, 409, 422))
def classify(
    loan_id: LoanIdPath, body: ClassifyIn, ctx: ContextDep, chain: ConsortiumDep, _p: LenderSelf
) -> dict:
    """Record this bank's five-category classification of its own tranche, never milder than
    the floor for the loan's days past due."""
    return economics.classify(ctx, chain, loan_id, body.category)
