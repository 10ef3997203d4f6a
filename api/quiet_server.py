"""The node's HTTP server loop, quiet when idle."""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn


class QuietServer(uvicorn.Server):
    """uvicorn's server with its housekeeping tick once a second instead of ten times.

    uvicorn wakes every 0.1 s only to refresh the Date header (once a second) and to notice a
    shutdown request; on an idle node those wake-ups were half its CPU. Each tick here refreshes
    the header, and a shutdown signal wakes the loop at once, so stopping is as quick as before.
    """

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        ticks = 0
        while not await self.on_tick(ticks * 10):  # a multiple of 10: uvicorn's per-second work
            ticks = (ticks + 1) % 86_400
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
