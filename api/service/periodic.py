"""A background thread that calls `tick` every `interval_s` seconds until stopped; the node's
keepers (line expiry, days past due) are this with their own tick."""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("api.keeper")


class Periodic:
    name = "periodic"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> Any:
        raise NotImplementedError

    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - chain down or busy: try again next tick
                log.warning("%s: %s: %s", self.name, type(exc).__name__, exc)
