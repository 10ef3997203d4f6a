"""`python -m api --config FILE`: run one node with uvicorn, bound to loopback: its HTTP
worker(s) (`workers`, api/workers.py) and its follower process (the indexer and the alert
watcher, api/follower.py), all started, supervised and stopped by this one command."""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

from api.serving import Started, StartRefused, serve


def _start(args: argparse.Namespace) -> Started:
    from api.app import create_app
    from api.service.context import WrongChain, check_chain
    from api.settings import NodeSettings
    from api.wiring import build
    from api.workers import WorkerPool, listen, refusal

    settings = NodeSettings.load(args.config)
    if args.worker_of is not None:  # an extra worker of a node process
        from api.service.supervised import die_with_parent

        die_with_parent(args.parent)
        services = build(settings, args.worker_of, primary=False)
        return Started(create_app(settings, services), settings, socket.socket(fileno=args.fd))
    if (why := refusal(settings)) is not None:
        raise StartRefused(f"{settings.name}: {why}")
    link_dir = sock = pool = None
    if settings.workers > 1:
        link_dir = Path(tempfile.mkdtemp(prefix="ledger-node-"))  # 0700; removed at stop
        try:
            sock = listen(settings.host, settings.port)
        except OSError as exc:
            why = f"{settings.name}: cannot listen on {settings.domain}: {exc}"
            raise StartRefused(why) from None
        pool = WorkerPool(args.config, link_dir, sock, settings.workers - 1, args.log_level)
    app = create_app(settings, build(settings, link_dir))
    try:
        check_chain(app.state.services.context)
    except WrongChain as exc:
        raise StartRefused(f"{settings.name}: {exc}") from None
    return Started(app, settings, sock, pool)


def main(argv: list[str] | None = None) -> int:
    return serve("python -m api", __doc__, _start, argv, node=True)


if __name__ == "__main__":
    sys.exit(main())
