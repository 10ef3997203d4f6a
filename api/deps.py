"""Route dependencies: the node's services (typed, one per part), the authenticated caller, and
role guards.

Every authenticated request maps its bearer token to an address, then reads that address's
member record from the chain (`registry.member`, one eth_call, batched with the head), so a
member suspended on chain loses access on its very next request. These run on the event loop
(`async def`): FastAPI runs every sync dependency in the thread pool, one hand-off each, which
cost more than the work itself. Guards then check the role; object-level scoping (which
loans a lender may see) is done where the object is known (service/reads.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Principal, member_principal, token_owner
from api.limits import rate_limited, take
from api.problems import Problem
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from api.service.platform import Platform
from api.service.reads import ReadModel
from api.wiring import NodeServices

_bearer = HTTPBearer(auto_error=False, description="token from POST /v1/auth/token")


def _services(request: Request) -> NodeServices:
    return request.app.state.services


async def get_context(request: Request) -> MemberContext:
    return _services(request).context


async def get_consortium(request: Request) -> ConsortiumView:
    return _services(request).chain


async def get_reads(request: Request) -> ReadModel:
    return _services(request).reads


async def get_platform(request: Request) -> Platform:
    """A platform node's writes: its context, the chain and its peers (built on a platform node,
    the only one that serves them)."""
    services = _services(request)
    assert services.peers is not None and services.submitter is not None
    assert services.gatherer is not None
    return Platform(
        services.context, services.chain, services.peers, services.submitter, services.gatherer
    )


ContextDep = Annotated[MemberContext, Depends(get_context)]
ConsortiumDep = Annotated[ConsortiumView, Depends(get_consortium)]
ReadsDep = Annotated[ReadModel, Depends(get_reads)]
PlatformDep = Annotated[Platform, Depends(get_platform)]


async def current_principal(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # The services straight from the app, not as dependencies of their own: this runs on every
    # authenticated request, and each dependency costs FastAPI a resolution step.
    services = _services(request)
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise Problem(401, "Unauthenticated", "a bearer token is required (POST /v1/auth/token)")
    address = await token_owner(services.context, creds.credentials)
    # Before the chain is asked anything: a caller over its rate costs the node no RPC call.
    bucket = request.app.state.caller_rate
    wait = await take(bucket, address)  # in the database, a few tokens at a time
    if wait > 0:
        raise rate_limited(wait, bucket.rate, "caller")
    return await member_principal(services.chain, address)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(*roles: str, own_node: bool = False) -> Callable[..., Principal]:
    """A guard: the caller must have one of `roles`; with `own_node`, it must also be the member
    this node acts for (writes are signed with the node's key, so only its owner may ask)."""

    async def guard(principal: PrincipalDep, request: Request) -> Principal:
        if principal.role not in roles:
            raise Problem(
                403,
                "RoleForbidden",
                f"role {principal.role} may not call this endpoint (allowed: {', '.join(roles)})",
                role=principal.role,
            )
        if own_node:
            me = _services(request).context.address
            if principal.address != me:
                raise Problem(
                    403,
                    "NotThisNodesMember",
                    f"this node acts for {me}; {principal.address} may not instruct it",
                )
        return principal

    return guard


ReaderDep = Annotated[Principal, Depends(require("platform", "lender", "auditor"))]
PlatformSelf = Annotated[Principal, Depends(require("platform", own_node=True))]
LenderSelf = Annotated[Principal, Depends(require("lender", own_node=True))]
GuarantorSelf = Annotated[Principal, Depends(require("guarantor", own_node=True))]
MemberReader = Annotated[Principal, Depends(require("platform", "lender", "auditor", "guarantor"))]
PlatformCaller = Annotated[Principal, Depends(require("platform"))]


async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the operation does not document is a 422 naming it, on every route
    (FastAPI ignores them, so a misspelt filter would silently answer unfiltered). The names
    come from the node's own OpenAPI document, read once; routes left out of it (the event
    stream, the console's pages) are not checked."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    allowed = _documented_query(request.app).get(
        (getattr(route, "path_format", None), request.method.lower())
    )
    if allowed is None:
        return
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise Problem(
            422, "UnknownParameter", f"unknown query parameter {unknown[0]!r}", field=unknown[0]
        )


def _documented_query(app: Any) -> dict[tuple[str | None, str], frozenset[str]]:
    known = getattr(app.state, "documented_query", None)
    if known is None:
        known = {
            (path, method): frozenset(
                p["name"] for p in op.get("parameters", []) if p.get("in") == "query"
            )
            for path, ops in app.openapi().get("paths", {}).items()
            for method, op in ops.items()
            if isinstance(op, dict)
        }
        app.state.documented_query = known
    return known
