"""`python -m keyservice --config FILE`: run the key service with uvicorn, bound to loopback."""

from __future__ import annotations

import argparse
import sys

from api.serving import Started, StartRefused, serve


def _start(args: argparse.Namespace) -> Started:
    from keyservice.app import create_app
    from keyservice.settings import KeyServiceSettings
    from ledger.identity import PepperError

    settings = KeyServiceSettings.load(args.config)
    try:
        return Started(create_app(settings), settings)
    except PepperError as exc:  # one line, never the pepper
        raise StartRefused(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    return serve("python -m keyservice", __doc__, _start, argv)


if __name__ == "__main__":
    sys.exit(main())
