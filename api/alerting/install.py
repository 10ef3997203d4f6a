"""The one hook create_app calls: a node with the indexed read model gets an alert service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.alerting.service import AlertService

if TYPE_CHECKING:
    from api.settings import NodeSettings
    from api.wiring import NodeServices


def alert_service(settings: NodeSettings, services: NodeServices) -> AlertService | None:
    from api.service.indexed import IndexedReads

    if not isinstance(services.reads, IndexedReads):
        return None  # alerts are derived from the node's own index (GET /v1/alerts: 503)
    return AlertService(services.context, services.reads, settings.alerts)
