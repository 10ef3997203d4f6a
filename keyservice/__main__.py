"""`python -m keyservice --config FILE`: run the key service with uvicorn, bound to loopback."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keyservice", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="key service settings (JSON)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    import uvicorn

    from keyservice.app import create_app
    from keyservice.settings import KeyServiceSettings
    from ledger.identity import PepperError
    from ledger.keys import ensure_coincurve_backend

    ensure_coincurve_backend()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    settings = KeyServiceSettings.load(args.config)
    try:
        app = create_app(settings)
    except PepperError as exc:  # one line, never the pepper
        print(f"python -m keyservice: {exc}", file=sys.stderr)
        return 2
    # One worker: the derivation log's chain head and the rate buckets are per process.
    # Request bodies are never logged; uvicorn's access log shows only the path.
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
