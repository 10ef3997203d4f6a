"""`python -m api` and `python -m keyservice`: one way to run a member's service process with
uvicorn, bound to loopback, nothing of a request body logged."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StartRefused(Exception):
    """Configuration the service will not start with: one line for the operator (exit 2)."""


@dataclass
class Started:
    """What `start` built: the app and its settings; for a node with several workers
    (api/workers.py) the listening socket it serves on and the extra workers to start."""

    app: Any
    settings: Any
    sock: socket.socket | None = None
    workers: Any = None  # api.workers.WorkerPool


def serve(
    prog: str,
    description: str | None,
    start: Callable[[argparse.Namespace], Started],
    argv: list[str] | None = None,
    *,
    node: bool = False,
) -> int:
    """Parse `--config FILE [--log-level L]`, build the service with `start` and serve it.
    uvicorn's access log shows only the path. `node`: also the flags the node process gives
    its extra workers (api/workers.py), hidden from --help."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", type=Path, required=True, help="settings (JSON)")
    parser.add_argument("--log-level", default="info")
    if node:
        for flag, kind in (("--worker-of", Path), ("--fd", int), ("--parent", int)):
            parser.add_argument(flag, type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import uvicorn

    from api.quiet_server import QuietServer
    from ledger.keys import ensure_coincurve_backend

    ensure_coincurve_backend()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every outgoing request at INFO (each co-signature, each key): a line per call
    # through the one logging lock, a tenth of a busy platform node's time; failures still show
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        started = start(args)
    except StartRefused as exc:
        # configuration, not a crash: no traceback
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    settings = started.settings
    options: dict[str, Any] = {
        "log_level": args.log_level, "proxy_headers": False, "server_header": False,
    }  # fmt: skip
    if started.sock is None:
        config = uvicorn.Config(started.app, host=settings.host, port=settings.port, **options)
        QuietServer(config).run()
        return 0
    if started.workers is not None:
        started.workers.start()
    try:
        server = QuietServer(uvicorn.Config(started.app, **options))
        server.run(sockets=[started.sock])
    finally:
        if started.workers is not None:
            started.workers.stop()
    return 0
