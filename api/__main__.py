"""`python -m api --config FILE`: run one node with uvicorn, bound to loopback."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="node settings (JSON)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    import uvicorn

    from api.app import create_app
    from api.service.context import WrongChain, check_chain
    from api.settings import NodeSettings
    from ledger.keys import ensure_coincurve_backend

    ensure_coincurve_backend()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = NodeSettings.load(args.config)
    app = create_app(settings)
    try:
        check_chain(app.state.services.context)
    except WrongChain as exc:
        # One line for the operator, no traceback: this is configuration, not a crash.
        print(f"python -m api: {settings.name}: {exc}", file=sys.stderr)
        return 2
    # One worker: nonces, idempotency locks and the signing account's transaction nonces are
    # per process. Request bodies are never logged; uvicorn's access log shows only the path.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        proxy_headers=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
