"""`python -m keyservice --config FILE`: run the key service with uvicorn, bound to loopback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from api.serving import StartRefused, serve


def _start(config: Path) -> tuple[Any, Any]:
    from keyservice.app import create_app
    from keyservice.settings import KeyServiceSettings
    from ledger.identity import PepperError

    settings = KeyServiceSettings.load(config)
    try:
        return create_app(settings), settings
    except PepperError as exc:  # one line, never the pepper
        raise StartRefused(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    return serve("python -m keyservice", __doc__, _start, argv)


if __name__ == "__main__":
    sys.exit(main())
