"""The member's alerts and webhooks, on its own node only: `GET /v1/alerts` (paged by `after`,
filtered by type, severity and block), `GET /v1/alerts/stream` (Server-Sent Events, resumable with
`Last-Event-ID`), and the webhooks it registers (`/v1/webhooks`) with their delivery log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import AnyHttpUrl, BaseModel, Field, UrlConstraints
from sse_starlette import EventSourceResponse

from api.alerting import signing, store
from api.alerting.service import AlertReader
from api.auth import Principal
from api.deps import require
from api.problems import Problem, responses

router = APIRouter(tags=["alerts"])
STREAM_POLL_S = 0.5
MAX_INT = 2**62  # ids and blocks: anything larger is refused (422), never sent to SQL
RowId = Annotated[int, Path(ge=1, le=MAX_INT)]
OwnMember = Annotated[Principal, Depends(require("platform", "lender", "auditor", own_node=True))]
TYPES = ("borrower.overdue", "borrower.defaulted", "borrower.written_off", "borrower.classified",
         "usage.r5", "usage.r6", "attestation.expiring", "council.queued", "member.suspended",
         "member.frozen", "line.expiring", "line.frozen", "line.unfrozen")  # fmt: skip


def _service(request: Request) -> AlertReader:
    svc: AlertReader | None = getattr(request.app.state, "alerts", None)
    if svc is None:
        raise Problem(
            503, "AlertsNeedIndex", "alerts are computed from the indexed read model "
            "(read_model: indexed); this node reads the chain directly"
        )  # fmt: skip
    return svc


def _types(type_: list[str] | None) -> list[str] | None:
    for t in type_ or []:
        if t not in TYPES:
            raise Problem(422, "UnknownAlertType", f"type: one of {', '.join(TYPES)}", field="type")
    return type_


class AlertQuery(BaseModel):
    after: int = Field(0, ge=0, le=MAX_INT, description="the last seq already seen")
    limit: int = Field(100, ge=1, le=500)
    type: list[str] | None = None
    severity: str | None = Field(None, pattern="^(info|warning|critical)$")
    since_block: int | None = Field(None, ge=0, le=MAX_INT)


@router.get("/v1/alerts", responses=responses(401, 403, 422, 503))
def list_alerts(
    request: Request, _p: OwnMember, q: Annotated[AlertQuery, Query()]
) -> dict[str, Any]:
    """The member's alerts in the order its node found them; page on with `after=next_after`."""
    svc = _service(request)
    rows = store.alerts_after(svc.engine, q.after, q.limit, _types(q.type), q.severity,
                              q.since_block)  # fmt: skip
    return {
        "items": [r.to_json() for r in rows],
        "next_after": rows[-1].seq if rows else q.after,
        "as_of_block": svc.head,
    }


# Out of the OpenAPI document: an endless text/event-stream it cannot describe (README: Alerts).
@router.get("/v1/alerts/stream", include_in_schema=False)
async def stream(
    request: Request,
    _p: OwnMember,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
) -> EventSourceResponse:
    """Server-Sent Events: each alert as `event: alert`, `id: <seq>`; reconnect with
    `Last-Event-ID` (or `?after=`) to get exactly the alerts after it."""
    svc = _service(request)
    start = after or 0
    if last_event_id is not None:
        if not last_event_id.isdigit() or int(last_event_id) > MAX_INT:
            raise Problem(422, "BadLastEventId", "Last-Event-ID: the seq of an alert",
                          field="Last-Event-ID")  # fmt: skip
        start = int(last_event_id)

    async def events() -> AsyncIterator[dict[str, Any]]:
        # The database, not this process's memory, says what is new: the watcher may run in
        # another process than the one serving this request.
        seen = start
        while True:
            rows = await anyio.to_thread.run_sync(store.alerts_after, svc.engine, seen, 100)
            for r in rows:
                seen = r.seq or seen
                yield {"id": str(r.seq), "event": "alert", "data": json.dumps(r.to_json())}
            if len(rows) == 100:
                continue
            if await request.is_disconnected():
                return
            await anyio.sleep(STREAM_POLL_S)

    return EventSourceResponse(events(), ping=15)


class WebhookIn(BaseModel):
    url: Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)]
    types: list[str] = Field(default_factory=list, description="alert types; empty: all")


@router.post("/v1/webhooks", status_code=201, responses=responses(401, 403, 422, 503))
def register(body: WebhookIn, request: Request, _p: OwnMember) -> dict[str, Any]:
    """Register a receiver. The answer holds the signing secret, shown this once."""
    svc = _service(request)
    _types(body.types)
    hook = store.add_webhook(svc.engine, str(body.url), signing.new_secret(), body.types)
    return {**_hook(hook), "secret": hook.secret}


class HookQuery(BaseModel):
    active_only: bool = False


class DeliveryQuery(BaseModel):
    webhook_id: int | None = Field(None, ge=1, le=MAX_INT)
    state: str | None = Field(None, pattern="^(pending|delivered|parked)$")
    after: int = Field(0, ge=0, le=MAX_INT)
    limit: int = Field(100, ge=1, le=500)


@router.get("/v1/webhooks", responses=responses(401, 403, 422, 503))
def hooks(request: Request, _p: OwnMember, q: Annotated[HookQuery, Query()]) -> dict[str, Any]:
    """The member's webhooks (never their secrets)."""
    rows = store.webhooks(_service(request).engine)
    return {"items": [_hook(h) for h in rows if h.active or not q.active_only]}


@router.delete(
    "/v1/webhooks/{webhook_id}", status_code=204, responses=responses(401, 403, 404, 422)
)
def remove(webhook_id: RowId, request: Request, _p: OwnMember) -> None:
    if not store.deactivate(_service(request).engine, webhook_id):
        raise Problem(404, "UnknownWebhook", f"no webhook {webhook_id}")


@router.get("/v1/webhooks/deliveries", responses=responses(401, 403, 422, 503))
def delivery_log(
    request: Request, _p: OwnMember, q: Annotated[DeliveryQuery, Query()]
) -> dict[str, Any]:
    """Deliveries with every attempt (time, HTTP status or error, milliseconds); `state=parked`
    lists those given up on after the last retry."""
    rows = store.deliveries(_service(request).engine, q.webhook_id, q.state, q.after, q.limit)
    return {
        "items": [
            {**d.model_dump(), "attempt_log": [a.model_dump() for a in tries]} for d, tries in rows
        ],
        "next_after": rows[-1][0].id if rows else q.after,
    }


@router.post("/v1/webhooks/deliveries/{delivery_id}/retry", responses=responses(401, 403, 404, 422))
def retry(delivery_id: RowId, request: Request, _p: OwnMember) -> dict[str, Any]:
    """Send a parked delivery again, from its first attempt."""
    svc = _service(request)
    if not store.requeue(svc.engine, delivery_id):
        raise Problem(404, "NoParkedDelivery", f"no parked delivery {delivery_id}")
    svc.wake()
    return {"id": delivery_id, "state": "pending"}


def _hook(h: store.Webhook) -> dict[str, Any]:
    return {"id": h.id, "url": h.url, "types": [t for t in h.types.split(",") if t],
            "active": h.active, "created_at": h.created_at}  # fmt: skip
