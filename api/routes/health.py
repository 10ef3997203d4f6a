"""Liveness, readiness and Prometheus metrics. Unauthenticated: they say nothing about records,
and the node binds loopback only."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from api.deps import ConsortiumDep, ContextDep, ReadsDep
from api.problems import MEDIA_TYPE, Problem
from api.schemas.reads import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"description": "not ready"}})
def readyz(ctx: ContextDep, chain: ConsortiumDep, reads: ReadsDep) -> JSONResponse:
    """Ready: the chain and the node's database answer, the node's indexer process runs, and
    its lag is within `max_indexer_lag` blocks."""
    max_lag = ctx.settings.max_indexer_lag
    try:
        block = chain.head()
    except Exception:  # noqa: BLE001 - any failure to reach the chain means not ready
        block = None
    lag = reads.lag(block) if block is not None else None
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = True
    except Exception:  # noqa: BLE001 - any failure to reach the database means not ready
        database = False
    down = reads.down()
    ready = block is not None and database and down is None and (lag is None or lag <= max_lag)
    body = Ready(
        status="ready" if ready else "not ready",
        chain_reachable=block is not None,
        database_reachable=database,
        block_number=block,
        indexer_lag=lag,
        max_indexer_lag=max_lag,
    )
    if ready:
        return JSONResponse(body.model_dump())
    if block is None:
        reason = "the chain is not reachable"
    elif not database:
        reason = "the database is not reachable"
    elif down is not None:
        reason = down
    else:
        reason = f"indexer lag {lag} > {max_lag}"
    problem = Problem(503, "NotReady", reason, **body.model_dump(exclude={"status"}))
    return JSONResponse(problem.body("/readyz"), status_code=503, media_type=MEDIA_TYPE)


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(ctx: ContextDep) -> PlainTextResponse:
    """Prometheus text format: request latencies, indexer lag, records submitted and refused."""
    return PlainTextResponse(
        ctx.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
