"""The node's alert tables: alerts in the order the node first saw them (`seq`, the Server-Sent
Events id), the member's webhooks, one delivery per webhook and alert, and every attempt made.

Created on start-up beside the node's other own tables (api/store.py). An alert's row is keyed by
its stable id (ledger.alerts.alert_id) so finding it again, after a restart or a reorg, adds
nothing; `seq` only ever grows, so a stream resumed after `Last-Event-ID: n` misses nothing.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Engine, UniqueConstraint, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from ledger.alerts import Alert


class AlertRecord(SQLModel, table=True):
    __tablename__ = "api_alerts"

    seq: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(max_length=66, unique=True)
    type: str = Field(max_length=40, index=True)
    severity: str = Field(max_length=16)
    block: int
    subject: str = Field(max_length=66)
    figures: str  # JSON
    seen_at: int = Field(default_factory=lambda: int(time.time()))

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.alert_id,
            "type": self.type,
            "severity": self.severity,
            "block": self.block,
            "subject": self.subject,
            "figures": json.loads(self.figures),
            "seen_at": self.seen_at,
        }


class Webhook(SQLModel, table=True):
    __tablename__ = "api_webhooks"

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2000)
    secret: str = Field(max_length=80)  # the signing key; shown once, when registered
    types: str = ""  # comma-separated alert types; empty: all
    active: bool = True
    created_at: int = Field(default_factory=lambda: int(time.time()))


class Delivery(SQLModel, table=True):
    __tablename__ = "api_webhook_deliveries"
    __table_args__ = (UniqueConstraint("webhook_id", "alert_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int = Field(index=True)
    alert_seq: int
    state: str = Field(max_length=16, index=True)  # pending | delivered | parked
    attempts: int = 0
    next_at: float = 0.0
    last_status: int | None = None
    last_error: str = ""
    updated_at: int = Field(default_factory=lambda: int(time.time()))


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "api_webhook_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(index=True)
    at: int
    status: int | None = None
    error: str = ""
    ms: int = 0


TABLES = [m.__table__ for m in (AlertRecord, Webhook, Delivery, DeliveryAttempt)]  # type: ignore[attr-defined]


def create(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine, tables=TABLES)


def add_alerts(engine: Engine, alerts: list[Alert]) -> list[AlertRecord]:
    """Keep the alerts not kept yet, in the order given; return those, with their seq. Each
    webhook that wants one gets a pending delivery in the same transaction."""
    if not alerts:
        return []
    with Session(engine) as s:
        known = set(
            s.exec(
                select(AlertRecord.alert_id).where(
                    AlertRecord.alert_id.in_([a.id for a in alerts])  # type: ignore[attr-defined]
                )
            ).all()
        )
        new: list[AlertRecord] = []
        for a in alerts:
            if a.id in known:
                continue
            known.add(a.id)
            row = AlertRecord(
                alert_id=a.id, type=a.type, severity=a.severity, block=a.block,
                subject=a.subject, figures=json.dumps(a.figures, sort_keys=True),
            )  # fmt: skip
            s.add(row)
            new.append(row)
        if not new:
            return []
        s.flush()
        hooks = s.exec(select(Webhook).where(Webhook.active == True)).all()  # noqa: E712
        now = time.time()
        for row in new:
            for h in hooks:
                if not h.types or row.type in h.types.split(","):
                    s.add(
                        Delivery(webhook_id=h.id, alert_seq=row.seq, state="pending", next_at=now)
                    )
        try:
            s.commit()
        except IntegrityError:
            return []  # another writer kept them first (a second node process on this database)
        for row in new:
            s.refresh(row)
        return new


def alerts_after(
    engine: Engine,
    after: int,
    limit: int,
    types: list[str] | None = None,
    severity: str | None = None,
    since_block: int | None = None,
) -> list[AlertRecord]:
    with Session(engine) as s:
        q = select(AlertRecord).where(AlertRecord.seq > after)  # type: ignore[operator]
        if types:
            q = q.where(AlertRecord.type.in_(types))  # type: ignore[attr-defined]
        if severity:
            q = q.where(AlertRecord.severity == severity)
        if since_block is not None:
            q = q.where(AlertRecord.block >= since_block)
        return list(s.exec(q.order_by(AlertRecord.seq).limit(limit)).all())  # type: ignore[arg-type]


def last_seq(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.max(AlertRecord.seq))).one() or 0


def add_webhook(engine: Engine, url: str, secret: str, types: list[str]) -> Webhook:
    with Session(engine) as s:
        h = Webhook(url=url, secret=secret, types=",".join(types))
        s.add(h)
        s.commit()
        s.refresh(h)
        return h


def webhooks(engine: Engine) -> list[Webhook]:
    with Session(engine) as s:
        return list(s.exec(select(Webhook).order_by(Webhook.id)).all())  # type: ignore[arg-type]


def deactivate(engine: Engine, webhook_id: int) -> bool:
    with Session(engine) as s:
        r = s.exec(update(Webhook).where(Webhook.id == webhook_id).values(active=False))  # type: ignore[arg-type]
        s.commit()
        return r.rowcount == 1  # type: ignore[attr-defined]


def deliveries(
    engine: Engine, webhook_id: int | None, state: str | None, after: int, limit: int
) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
    with Session(engine) as s:
        q = select(Delivery).where(Delivery.id > after)  # type: ignore[operator]
        if webhook_id is not None:
            q = q.where(Delivery.webhook_id == webhook_id)
        if state:
            q = q.where(Delivery.state == state)
        rows = list(s.exec(q.order_by(Delivery.id).limit(limit)).all())  # type: ignore[arg-type]
        out = []
        for d in rows:
            tries = s.exec(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == d.id)
                .order_by(DeliveryAttempt.id)  # type: ignore[arg-type]
            ).all()
            out.append((d, list(tries)))
        return out


def requeue(engine: Engine, delivery_id: int) -> bool:
    """A parked delivery tried again from the start (the member fixed its receiver)."""
    with Session(engine) as s:
        r = s.exec(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.state == "parked")  # type: ignore[arg-type]
            .values(state="pending", attempts=0, next_at=time.time(), updated_at=int(time.time()))
        )
        s.commit()
        return r.rowcount == 1  # type: ignore[attr-defined]


def due(engine: Engine, now: float, limit: int = 50) -> list[tuple[Delivery, Webhook, AlertRecord]]:
    with Session(engine) as s:
        q = (
            select(Delivery, Webhook, AlertRecord)
            .join(Webhook, Webhook.id == Delivery.webhook_id)  # type: ignore[arg-type]
            .join(AlertRecord, AlertRecord.seq == Delivery.alert_seq)  # type: ignore[arg-type]
            .where(Delivery.state == "pending", Delivery.next_at <= now, Webhook.active == True)  # noqa: E712
            .order_by(Delivery.alert_seq)  # type: ignore[arg-type]
            .limit(limit)
        )
        return [tuple(r) for r in s.exec(q).all()]  # type: ignore[misc]


def next_due(engine: Engine) -> float | None:
    """When the earliest pending delivery to an active webhook falls due (None: there is none)."""
    with Session(engine) as s:
        q = (
            select(func.min(Delivery.next_at))
            .join(Webhook, Webhook.id == Delivery.webhook_id)  # type: ignore[arg-type]
            .where(Delivery.state == "pending", Webhook.active == True)  # noqa: E712
        )
        found = s.exec(q).one()
        return float(found) if found is not None else None


def record_attempt(
    engine: Engine,
    delivery_id: int,
    status: int | None,
    error: str,
    ms: int,
    outcome: str,
    next_at: float,
) -> None:
    with Session(engine) as s:
        now = int(time.time())
        s.add(DeliveryAttempt(delivery_id=delivery_id, at=now, status=status, error=error, ms=ms))
        s.exec(
            update(Delivery)
            .where(Delivery.id == delivery_id)  # type: ignore[arg-type]
            .values(
                state=outcome,
                attempts=Delivery.attempts + 1,
                next_at=next_at,
                last_status=status,
                last_error=error,
                updated_at=now,
            )
        )
        s.commit()
