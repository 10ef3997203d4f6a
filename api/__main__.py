"""`python -m api --config FILE`: run one node with uvicorn, bound to loopback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from api.serving import StartRefused, serve


def _start(config: Path) -> tuple[Any, Any]:
    from api.app import create_app
    from api.service.context import WrongChain, check_chain
    from api.settings import NodeSettings

    settings = NodeSettings.load(config)
    app = create_app(settings)
    try:
        check_chain(app.state.services.context)
    except WrongChain as exc:
        raise StartRefused(f"{settings.name}: {exc}") from None
    return app, settings


def main(argv: list[str] | None = None) -> int:
    return serve("python -m api", __doc__, _start, argv)


if __name__ == "__main__":
    sys.exit(main())
