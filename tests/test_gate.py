"""The node's RPC gate (api/service/gate.py, on the async transport `ledger.chain.rpc.AsyncRpc`)
against a server that drops connections.

The gate only reads, so a connection the server resets or closes is tried again on a new one
(twice at most); a server that keeps dropping them is reported as ChainUnreachable, which the
API answers with 503 ChainUnavailable. The server here is a real HTTP/1.1 listener on loopback
that drops the first `drops` connections without answering, as a loaded or restarting node can.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from api.service.gate import Gate
from ledger.chain.aiorpc import AsyncRpc
from ledger.chain.errors import ChainUnreachable

REPLY = json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x2a"}).encode()


async def _serve(drops: int) -> tuple[asyncio.Server, list[int]]:
    seen = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen[0] += 1
        if seen[0] <= drops:
            await reader.read(1)  # the request has started arriving: drop it unanswered
            writer.close()
            return
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(REPLY)}\r\n\r\n".encode()
                + REPLY
            )
            await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


def _url(server: asyncio.Server) -> str:
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@pytest.mark.parametrize("drops", [0, 1, 2])
def test_dropped_connections_are_tried_again(drops: int) -> None:
    async def main() -> tuple[dict, int]:
        server, seen = await _serve(drops)
        rpc = AsyncRpc(_url(server))
        try:
            return await rpc.post({}), seen[0]
        finally:
            rpc.close()
            server.close()

    body, connections = asyncio.run(main())
    assert body["result"] == "0x2a"
    assert connections == drops + 1


def test_a_server_that_keeps_dropping_is_unreachable() -> None:
    async def main() -> None:
        server, seen = await _serve(drops=10)
        gate = Gate(_url(server), "0x" + "11" * 20)
        try:
            with pytest.raises(ChainUnreachable, match="does not answer"):
                await gate.read("0x" + "22" * 20)
            assert seen[0] == 3  # three attempts, then the error
        finally:
            gate.close()
            server.close()

    asyncio.run(main())


def test_a_kept_alive_connection_is_reused() -> None:
    async def main() -> int:
        server, seen = await _serve(drops=0)
        rpc = AsyncRpc(_url(server))
        try:
            for _ in range(5):
                await rpc.post({})
            return seen[0]
        finally:
            rpc.close()
            server.close()

    assert asyncio.run(main()) == 1
