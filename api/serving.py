"""`python -m api` and `python -m keyservice`: one way to run a member's service process with
uvicorn, bound to loopback, one worker, nothing of a request body logged."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class StartRefused(Exception):
    """Configuration the service will not start with: one line for the operator (exit 2)."""


def serve(
    prog: str,
    description: str | None,
    start: Callable[[Path], tuple[Any, Any]],
    argv: list[str] | None = None,
) -> int:
    """Parse `--config FILE [--log-level L]`, build `(app, settings)` with `start` and serve it.
    One worker: nonces, idempotency locks, rate buckets and a signing account's transaction
    nonces are per process. uvicorn's access log shows only the path."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", type=Path, required=True, help="settings (JSON)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    import uvicorn

    from ledger.keys import ensure_coincurve_backend

    ensure_coincurve_backend()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every outgoing request at INFO (each co-signature, each key): a line per call
    # through the one logging lock, a tenth of a busy platform node's time; failures still show
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        app, settings = start(args.config)
    except StartRefused as exc:
        # configuration, not a crash: no traceback
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        proxy_headers=False,
        server_header=False,
    )
    return 0
