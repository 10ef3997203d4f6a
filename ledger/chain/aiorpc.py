"""The async entry of the one JSON-RPC transport (`ledger.chain.rpc`), for the node's hot read
(api/service/gate.py: every authenticated request reads the caller's member record and the head).

It speaks the same JSON-RPC and raises the same errors as `Rpc` (`RpcError`, `NodeUnavailable`
when there is no answer), but does its HTTP/1.1 with h11 (uvicorn's own parser) over asyncio
streams rather than with httpx's AsyncClient: measured on this machine against anvil, one
member-and-head batch cost 0.20-0.36 ms of CPU here and 1.07-1.74 ms through httpx.AsyncClient
(with TCP_NODELAY), and p50 latency with eight concurrent reads 1.8-4.6 ms against 35-54 ms.
Reads only: a dropped kept-alive connection is tried again on a new one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import h11

from ledger.chain.rpc import NodeUnavailable, decode_answer, request, result

__all__ = ["AsyncRpc"]

TIMEOUT_S = 60.0
_MAX_OPEN, _MAX_IDLE = 64, 16  # connections to the RPC node: at once, and kept between requests
_ATTEMPTS = 3


class AsyncRpc:
    """JSON-RPC reads on the event loop: POSTs to one URL over kept-alive connections, one
    request per connection at a time."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.url = url
        self.host = u.hostname or "127.0.0.1"
        self.tls = ssl.create_default_context() if u.scheme == "https" else None
        self.port = u.port or (443 if self.tls else 80)
        self.target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.headers = [("Host", u.netloc.rpartition("@")[2]), ("Content-Type", "application/json")]
        if u.username:
            cred = f"{unquote(u.username)}:{unquote(u.password or '')}".encode()
            self.headers.append(("Authorization", "Basic " + base64.b64encode(cred).decode()))
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(_MAX_OPEN)

    async def post(self, body: Any, method: str = "batch") -> Any:
        """A read request or batch, its answer as parsed JSON (errors inside it are the caller's
        to read)."""
        async with self._slots:
            status, data = await self._post(json.dumps(body).encode(), method)
        return decode_answer(method, status, data)

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        return result(method, await self.post(request(method, params), method))

    async def _post(self, body: bytes, method: str) -> tuple[int, bytes]:
        # A kept-alive connection the server has since closed fails on first use, and a loaded
        # node can reset a new one: the batch only reads, so it goes again on a new connection,
        # twice at most, after a short pause (web3's own provider retries reads five times).
        # A timeout is not retried: the node is there but not answering.
        for attempt in range(_ATTEMPTS):
            reused = attempt == 0 and bool(self._idle)
            try:
                async with asyncio.timeout(TIMEOUT_S):
                    rw = self._idle.pop() if reused else await self._open()
                    try:
                        status, data, keep = await self._exchange(rw, body)
                    except BaseException:
                        rw[1].close()
                        raise
            except (OSError, EOFError, TimeoutError, h11.ProtocolError) as exc:
                if attempt + 1 < _ATTEMPTS and not isinstance(exc, TimeoutError):
                    if reused:
                        self.close()  # the other idle ones have most likely gone the same way
                    else:
                        await asyncio.sleep(0.05 * attempt + 0.02)
                    continue
                raise NodeUnavailable(method, f"{type(exc).__name__} {exc}".strip()) from exc
            if keep and len(self._idle) < _MAX_IDLE:
                self._idle.append(rw)
            else:
                rw[1].close()
            return status, data
        raise AssertionError("unreachable")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            self.host, self.port, ssl=self.tls, server_hostname=self.host if self.tls else None
        )

    async def _exchange(
        self, rw: tuple[asyncio.StreamReader, asyncio.StreamWriter], body: bytes
    ) -> tuple[int, bytes, bool]:
        reader, writer = rw
        conn = h11.Connection(h11.CLIENT)
        headers = [*self.headers, ("Content-Length", str(len(body)))]
        request = h11.Request(method="POST", target=self.target, headers=headers)
        # One write (left to right, in the order h11 requires).
        data = conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        writer.write(data)
        status, chunks = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                received = await reader.read(65536)
                if not received:
                    raise EOFError("the connection closed mid-response")
                conn.receive_data(received)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                keep = conn.our_state is h11.DONE and conn.their_state is h11.DONE
                return status, b"".join(chunks), keep
            elif isinstance(event, h11.ConnectionClosed):
                raise EOFError("the connection closed mid-response")

    def close(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()
