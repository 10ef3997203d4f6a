"""`python -m api.follower`: a node's follower process, started and supervised by the node
process (api/service/follower_process.py), never by hand. It runs what only follows the chain:
the indexer keeping the node's read model, and the alert watcher and webhook sender. It sends
no transaction (the member's transactions all leave from the node's HTTP process, so their
nonces are reserved in one place) and serves no HTTP; it tells the HTTP processes of each
indexed range, and is woken by them when a reader needs a newer block (api/service/follow_link.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from api.service.supervised import die_with_parent

log = logging.getLogger("api.indexer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.follower", description=__doc__)
    parser.add_argument("--settings", type=Path, required=True)
    parser.add_argument("--link", type=Path, required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    from api import store
    from api.alerting.service import AlertService, FollowedReads, FollowerContext
    from api.service.follow_link import FollowerLink
    from api.settings import NodeSettings
    from ledger.chain.client import LedgerClient
    from ledger.chain.deployment import Deployment
    from ledger.indexer import Indexer
    from ledger.store import make_engine

    settings = NodeSettings.load(args.settings)
    deployment = Deployment.load(settings.deployment_file)
    stop, wake = threading.Event(), threading.Event()

    def _terminate(_sig: int, _frame: Any) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)

    reader = make_engine(settings.database_url)
    writer = make_engine(settings.database_url, writer=True)
    node_store = store.make_engine(settings.database_url)
    indexer = Indexer(writer, settings.rpc_url, deployment)
    client = LedgerClient(settings.rpc_url, deployment, None)
    ctx = FollowerContext(settings, args.address, deployment, client, node_store)
    alerts = AlertService(ctx, FollowedReads(reader, indexer), settings.alerts)
    link = FollowerLink(args.link, wake, alerts.wake_event)
    alerts.on_judged = lambda block: link.announce(alerts_block=block)
    alerts.driven = True

    def committed(_p: Any = None) -> None:
        link.announce(indexer.last_block)
        alerts.new_block.set()

    code = 0
    try:
        indexer.prepare()
        alerts.start()
        committed()
        indexer.follow(
            poll_interval=settings.indexer_poll_s,
            stop=stop,
            progress=committed,
            wake=wake,
            idle_interval=settings.indexer_idle_poll_s,
        )
    except Exception as exc:  # noqa: BLE001 - the node process reports it and restarts us
        log.error("indexer stopped: %s: %s", type(exc).__name__, exc, exc_info=exc)
        code = 1
    finally:
        alerts.stop()
        link.close()
        indexer.close()
        client.close()
        for engine in (reader, writer, node_store):
            engine.dispose()
    return code


if __name__ == "__main__":
    sys.exit(main())
