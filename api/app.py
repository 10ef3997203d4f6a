"""create_app(settings): one consortium node, acting as the member its settings name.

Every node serves sign-in, borrower keys, exposure, loan reads, lender limits, health and
metrics. A platform node adds the writing endpoints for lines, loans, repayments and status; a
lender node adds co-signing and capital attestation. An endpoint a node's role does not serve is
simply absent (404), rather than present and always refusing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from api.alerting.install import alert_service
from api.deps import refuse_unknown_query
from api.limits import LimitsMiddleware
from api.metrics import Metrics
from api.routes import (
    audit,
    auth,
    borrowers,
    cosign,
    economics,
    governance,
    guarantees,
    health,
    lenders,
    lines,
    loans,
)
from api.routes.alerts import router as alerts_router
from api.routes.console import pages as console_pages
from api.routes.console import router as console_router
from api.routes.freeze import router as freeze_router
from api.routes.originations import router as originations_router
from api.settings import NodeSettings
from api.wiring import NodeServices, build

log = logging.getLogger("api")


def _check_membership(services: NodeServices) -> None:
    """Refuse to serve as a member the chain does not know in this role: a misconfigured key
    would otherwise sign (and be refused) on every request."""
    ctx = services.context
    try:
        m = services.chain.member(ctx.address)
    except Exception as exc:  # noqa: BLE001 - chain down at start-up: /readyz reports it
        log.warning("cannot check membership of %s yet: %s", ctx.address, type(exc).__name__)
        return
    if m.role_name != ctx.role:
        raise RuntimeError(
            f"{ctx.address} is registered as {m.role_name!r} on chain, but this node is "
            f"configured as {ctx.role!r}"
        )


class TimingMiddleware:
    """Pure ASGI: records each request's latency by route template, and answers an unexpected
    error with the 500 problem. (Starlette's BaseHTTPMiddleware, behind @app.middleware, runs
    the app in a task of its own and streams the response through a memory channel: a cost on
    every request.)"""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_status(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_status)
            except Exception as exc:  # noqa: BLE001 - the catch-all for the 500 problem
                if started:
                    raise  # the response is under way: nothing else can be said
                # Answered here: a handler for Exception would run in Starlette's outermost
                # middleware, which re-raises and can reset the connection.
                await problems.unexpected(Request(scope), exc)(scope, receive, send_status)
        finally:
            # The route template, never the raw path: one series per loan id would explode.
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_request(
                scope["method"], template, status, time.perf_counter() - start
            )


def create_app(settings: NodeSettings, services: NodeServices | None = None) -> FastAPI:
    services = services or build(settings)
    metrics = services.context.metrics

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        _check_membership(services)
        services.reads.start()
        if app.state.alerts is not None:
            app.state.alerts.start()
        if services.keeper is not None:
            services.keeper.start()
        if services.dpd_keeper is not None:
            services.dpd_keeper.start()
        try:
            yield
        finally:
            if app.state.alerts is not None:
                app.state.alerts.stop()
            services.close()

    app = FastAPI(
        title=f"Joint-lending consortium node: {settings.name} ({settings.role})",
        version="1",
        description=(
            "Amounts are integer fen. Errors are RFC 9457 application/problem+json with a stable "
            "`code`. Sign in with EIP-4361 (POST /v1/auth/challenge, then /v1/auth/token)."
        ),
        lifespan=lifespan,
        dependencies=[Depends(refuse_unknown_query)],
    )
    app.state.services = services
    app.state.alerts = alert_service(settings, services)
    limits = settings.limits
    # in the database: a limit holds across every HTTP process of the node (api/buckets.py)
    buckets = services.buckets
    app.state.caller_rate = buckets.bucket("caller", limits.rate_per_s, limits.burst)
    app.state.signin_rate = buckets.bucket("signin", limits.signin_rate_per_s, limits.signin_burst)
    problems.install(app)

    def _lag() -> float | None:
        if services.reads.lag(0) is None:
            return None  # the chain itself: never behind
        return services.reads.lag(services.chain.head())

    metrics.gauge(
        "ledger_indexer_lag_blocks", "Blocks the node's read model is behind the chain head.", _lag
    )

    app.add_middleware(TimingMiddleware, metrics=metrics)

    # Outermost: an over-large body or a sign-in flood is refused before anything else runs.
    app.add_middleware(
        LimitsMiddleware,
        limits=limits,
        auth=buckets.bucket("auth-ip", limits.auth_rate_per_s, limits.auth_burst),
    )

    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(borrowers.router)
    app.include_router(lenders.router)
    app.include_router(governance.router)
    app.include_router(alerts_router)
    app.include_router(freeze_router)
    app.include_router(console_pages)
    app.include_router(console_router)
    if settings.role == "platform":
        app.include_router(lines.router)
        app.include_router(loans.writes)
        app.include_router(originations_router)
        app.include_router(economics.platform)
        app.include_router(guarantees.platform)
    app.include_router(loans.views)
    if settings.role == "lender":
        app.include_router(cosign.router)
        app.include_router(economics.lender)
    if settings.role == "auditor":
        app.include_router(audit.router)
    if settings.role == "guarantor":
        app.include_router(guarantees.guarantor)
        app.include_router(guarantees.guarantor_attest)
    app.include_router(guarantees.views)
    return app
