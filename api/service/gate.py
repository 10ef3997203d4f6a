"""What every authenticated request reads from the chain: the caller's member record and the
chain head, in one JSON-RPC batch (one round trip) over a kept-alive connection.

The record is read at "latest" on every request, never cached: a member suspended on chain is
refused on its next request. The head travels with the caller (Principal.head) so a read can
wait for its read model to hold that block without asking the chain again.

The calldata and the output types are worked out once from the registry's ABI (web3's
`encode_abi` looks the function up and validates the ABI on every call), and the request is
answered on the event loop by a small HTTP/1.1 client over asyncio streams, with h11 (uvicorn's
own parser) doing the HTTP: httpx's async client cost about 0.65 ms of CPU per call here, this
about 0.1 ms, and a thread-pool hand-off is saved as well.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit

import h11
from eth_abi import decode
from eth_utils import function_abi_to_4byte_selector

from ledger.chain.errors import ChainUnreachable, LedgerError
from ledger.chain.rpcutil import abi_type

# JSON-RPC ids inside the batch; a server may answer a batch in any order.
_HEAD, _MEMBER = 1, 2
_TIMEOUT_S = 60.0
_MAX_OPEN, _MAX_IDLE = 64, 16  # connections to the RPC node: at once, and kept between requests
_ATTEMPTS = 3


class _Http:
    """POSTs to one URL over kept-alive connections, one request per connection at a time."""

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

    async def post(self, body: bytes) -> bytes:
        async with self._slots:
            return await self._post(body)

    async def _post(self, body: bytes) -> bytes:
        # A kept-alive connection the server has since closed fails on first use, and a loaded
        # node can reset a new one: the batch only reads, so it goes again on a new connection,
        # twice at most, after a short pause (web3's own provider retries reads five times).
        # A timeout is not retried: the node is there but not answering.
        for attempt in range(_ATTEMPTS):
            reused = attempt == 0 and bool(self._idle)
            try:
                async with asyncio.timeout(_TIMEOUT_S):
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
                raise ChainUnreachable(
                    f"the chain at {self.url} does not answer: {type(exc).__name__} {exc}"
                ) from exc
            if keep and len(self._idle) < _MAX_IDLE:
                self._idle.append(rw)
            else:
                rw[1].close()
            if status >= 400:
                raise LedgerError(f"the chain at {self.url} answered HTTP {status}")
            return data
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


class Gate:
    def __init__(self, rpc_url: str, registry: Any) -> None:
        self.rpc_url = rpc_url
        self.registry = registry.address
        item = next(
            i for i in registry.abi if i.get("type") == "function" and i["name"] == "member"
        )
        self._selector = function_abi_to_4byte_selector(item)
        self._types = [abi_type(o) for o in item["outputs"]]
        self._http = _Http(rpc_url)

    def _body(self, address: str) -> bytes:
        data = "0x" + self._selector.hex() + "00" * 12 + address[2:].lower()
        return json.dumps(
            [
                {"jsonrpc": "2.0", "id": _HEAD, "method": "eth_blockNumber", "params": []},
                {
                    "jsonrpc": "2.0",
                    "id": _MEMBER,
                    "method": "eth_call",
                    "params": [{"to": self.registry, "data": data}, "latest"],
                },
            ]
        ).encode()

    def _parse(self, raw: bytes) -> tuple[tuple[Any, ...], int]:
        try:
            replies = json.loads(raw)
        except ValueError:
            raise LedgerError(f"the chain at {self.rpc_url} answered something not JSON") from None
        if not isinstance(replies, list):  # a server refusing the batch as a whole
            raise LedgerError(f"member/head batch refused: {replies}")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        head, member = by_id.get(_HEAD, {}), by_id.get(_MEMBER, {})
        for name, r in (("eth_blockNumber", head), ("registry.member", member)):
            if "result" not in r:
                raise LedgerError(f"{name} failed: {r.get('error')}")
        (record,) = decode(self._types, bytes.fromhex(member["result"][2:]))
        return tuple(record), int(head["result"], 16)

    async def read(self, address: str) -> tuple[tuple[Any, ...], int]:
        """(the registry's Member struct for `address`, the chain head)."""
        return self._parse(await self._http.post(self._body(address)))

    def close(self) -> None:
        self._http.close()
