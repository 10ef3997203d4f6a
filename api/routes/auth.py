"""Sign-in: POST /v1/auth/challenge, then POST /v1/auth/token with the signed message."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api import auth
from api.deps import ConsortiumDep, ContextDep
from api.problems import responses
from api.schemas.reads import ChallengeIn, ChallengeOut, TokenIn, TokenOut

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/challenge", response_model=ChallengeOut, responses=responses(403, 422))
def challenge(body: ChallengeIn, ctx: ContextDep, chain: ConsortiumDep) -> ChallengeOut:
    """An EIP-4361 message for `address` to sign (single-use nonce, short expiry); 403 unless
    `address` is an active, unfrozen member."""
    return auth.challenge(ctx, chain, body.address)


@router.post("/token", response_model=TokenOut, responses=responses(401, 403, 422))
def token(body: TokenIn, ctx: ContextDep, chain: ConsortiumDep, request: Request) -> TokenOut:
    """Exchange the signed message for a short-lived bearer token bound to the address."""
    return auth.issue_token(ctx, chain, body.message, body.signature, request.app.state.signin_rate)
