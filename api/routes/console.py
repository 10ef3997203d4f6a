"""The web console: static pages (api/console/) at /console, the shared style sheet, the chart
library from the node's own node_modules (nothing is fetched from elsewhere at run time), and the
few reads the pages need beyond the rest of /v1 (api/service/console.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import Engine

from api.auth import Principal
from api.deps import (
    ConsortiumDep,
    ContextDep,
    MemberReader,
    PrincipalDep,
    ReaderDep,
    ReadsDep,
    require,
)
from api.problems import Problem
from api.service import console

ROOT = Path(__file__).resolve().parents[2]
PAGES = ROOT / "api" / "console"
STYLE = ROOT / "ledger" / "data" / "console.css"
CHART = ROOT / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
# The pages call their own node only; the chart library and scripts come from it too.
CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'"
)

pages = APIRouter(include_in_schema=False)
# The console's own reads: a backend for its page, not part of the documented API.
router = APIRouter(prefix="/v1/console", tags=["console"], include_in_schema=False)
OwnMember = Annotated[Principal, Depends(require("platform", "lender", "auditor", own_node=True))]
Auditor = Annotated[Principal, Depends(require("auditor"))]


def _file(path: Path, media_type: str) -> FileResponse:
    if not path.is_file():
        raise Problem(404, "NotInstalled", f"{path.name} is missing: run scripts/setup.sh")
    return FileResponse(
        path, media_type=media_type, headers={"content-security-policy": CSP,
                                               "cache-control": "no-cache"}
    )  # fmt: skip


@pages.get("/console")
def index_redirect() -> RedirectResponse:
    return RedirectResponse("/console/")


@pages.get("/console/")
def index() -> FileResponse:
    return _file(PAGES / "index.html", "text/html")


@pages.get("/console/console.js")
def script() -> FileResponse:
    return _file(PAGES / "console.js", "text/javascript")


@pages.get("/console/console.css")
def style() -> FileResponse:
    return _file(STYLE, "text/css")


@pages.get("/console/chart.umd.min.js")
def chart() -> FileResponse:
    return _file(CHART, "text/javascript")


@router.get("/me")
def me(principal: PrincipalDep, ctx: ContextDep, reads: ReadsDep) -> dict[str, Any]:
    """Who is signed in, and whose node this is."""
    names = {m["address"]: m["name"] for m in console.members(console.engine_of(reads))["members"]}
    return {
        "address": principal.address,
        "role": principal.role,
        "name": names.get(principal.address, ""),
        "node": {"address": ctx.address, "role": ctx.role, "name": names.get(ctx.address, "")},
        "own_node": principal.address == ctx.address,
    }


@router.get("/members")
def members(reads: ReadsDep, _p: MemberReader) -> dict[str, Any]:
    return console.members(console.engine_of(reads))


def _fresh(reads: ReadsDep, chain: ConsortiumDep) -> Engine:
    """The read model once it holds the chain's head (briefly waited for), so the member sees
    its own writes, e.g. a freeze it just made."""
    engine = console.engine_of(reads)
    reads.as_of(chain.head())
    return engine


Fresh = Annotated[Engine, Depends(_fresh)]


@router.get("/lines")
def lines(engine: Fresh, p: OwnMember) -> dict[str, Any]:
    return console.lines(engine, p.address)


@router.get("/activity")
def activity(
    reads: ReadsDep,
    ctx: ContextDep,
    _p: Annotated[Principal, Depends(require("platform", own_node=True))],
) -> dict[str, Any]:
    return console.activity(ctx, console.engine_of(reads))


@router.get("/policies")
def policies(reads: ReadsDep, _p: ReaderDep) -> dict[str, Any]:
    return console.policies(console.engine_of(reads))


@router.get("/exposure-series")
def exposure_series(reads: ReadsDep, _p: Auditor) -> dict[str, Any]:
    return console.exposure_series(console.engine_of(reads))


@router.get("/council")
def council(ctx: ContextDep, _p: ReaderDep) -> dict[str, Any]:
    return {"proposals": console.council_queue(ctx)}
