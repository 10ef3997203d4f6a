"""The node's HTTP server loop, quiet when idle."""

from __future__ import annotations

import asyncio

import uvicorn


class QuietServer(uvicorn.Server):
    """uvicorn's server with its housekeeping tick once a second instead of ten times.

    uvicorn wakes every 0.1 s only to refresh the Date header (once a second) and to notice a
    shutdown request; on an idle node those wake-ups were half its CPU. Each tick here refreshes
    the header, and a shutdown is noticed within a second.
    """

    async def main_loop(self) -> None:
        ticks = 0
        while not await self.on_tick(ticks * 10):  # a multiple of 10: uvicorn's per-second work
            ticks = (ticks + 1) % 86_400
            await asyncio.sleep(1.0)
