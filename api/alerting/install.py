"""The one hook create_app calls: a node with the indexed read model gets an alert service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from api.alerting.service import AlertReader

if TYPE_CHECKING:
    from api.settings import NodeSettings
    from api.wiring import NodeServices


def alert_service(settings: NodeSettings, services: NodeServices) -> AlertReader | None:
    """The HTTP side of the alert service; the watcher and the webhook sender run in the node's
    follower process (api/follower.py) beside the indexer."""
    from api.service.indexed import IndexedReads

    if not isinstance(services.reads, IndexedReads):
        return None  # alerts are derived from the node's own index (GET /v1/alerts: 503)
    return AlertReader(services.context.engine, services.reads.follower)
