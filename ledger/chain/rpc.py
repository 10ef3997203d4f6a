"""The project's one JSON-RPC transport: every read of the chain it writes itself goes here.

Plain JSON over kept-alive httpx connections (web3's result formatting costs more than the
indexer's whole per-event budget): single calls and batches, an optional byte cap on an answer
(an eth_getLogs answer past it is abandoned as it arrives, so the caller can cut its range),
one retry family of errors (`RpcError`; `NodeUnavailable` for no answer at all, `ResultTooLarge`
for a capped answer), proxies never used for loopback, and reads tried again on a new connection
when a kept-alive one was dropped. `Rpc` is the client (indexer, audit, evidence, CLI,
transactions' raw reads); `ledger.chain.aiorpc.AsyncRpc` the same on the event loop, for the
node's hot read.
Web3.py remains only for building and sending transactions (`ledger.chain.transactor`).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

# Nodes cap JSON-RPC batches (geth at 1,000 calls); stay well below.
MAX_BATCH = 500


class RpcError(Exception):
    """The node answered with an error (for eth_getLogs often: range or result set too large)."""

    def __init__(self, method: str, error: Any) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error


class NodeUnavailable(RpcError):
    """No answer at all: connection refused or reset, timeout, HTTP error."""


class ResultTooLarge(RpcError):
    """The answer outgrew the bytes the caller would hold, and was abandoned unread.
    `reached` is the last block it had got to, when it said."""

    def __init__(self, method: str, limit: int, reached: int | None) -> None:
        where = f", reaching block {reached}" if reached is not None else ""
        super().__init__(method, f"answer larger than {limit:,} bytes{where}")
        self.limit = limit
        self.reached = reached


_BLOCK_NUMBER = re.compile(rb'"blockNumber"\s*:\s*"0x([0-9a-fA-F]+)"')


def _last_block_in(partial: bytes | bytearray) -> int | None:
    """The block number of the last log begun in a partial eth_getLogs answer (nodes list logs
    in block order)."""
    found = _BLOCK_NUMBER.findall(partial, max(0, len(partial) - 65_536))
    return int(found[-1], 16) if found else None


@dataclass(frozen=True, slots=True)
class Header:
    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int


def _header(raw: dict[str, Any] | None) -> Header | None:
    if raw is None:
        return None
    return Header(
        number=int(raw["number"], 16),
        hash=bytes.fromhex(raw["hash"][2:]),
        parent_hash=bytes.fromhex(raw["parentHash"][2:]),
        timestamp=int(raw["timestamp"], 16),
    )


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


@cache
def _tls() -> ssl.SSLContext:
    # httpx's default context, made once: loading the CA bundle costs ~25 ms of CPU per client
    return httpx.create_ssl_context()


# httpx writes a request's head and body separately: TCP_NODELAY so that Nagle's algorithm
# never holds the body back waiting for the head's acknowledgement.
_SOCKET_OPTIONS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def _client(url: str, timeout: float, trust_env: bool | None) -> httpx.Client:
    # A configured HTTP(S)_PROXY must never see loopback traffic; elsewhere it is used unless
    # `trust_env=False` (httpx honours it only without a transport of our own).
    if trust_env is None:
        trust_env = not is_loopback(url)
    if trust_env:
        return httpx.Client(timeout=timeout, verify=_tls())
    transport = httpx.HTTPTransport(verify=_tls(), socket_options=_SOCKET_OPTIONS)
    return httpx.Client(timeout=timeout, transport=transport, trust_env=False)


# A kept-alive connection the server has since closed fails on first use, and a loaded node can
# reset a new one: a read goes again on a new connection, twice at most. A timeout is not retried
# (the node is there but not answering), nor is anything sent with `retry=False` (a write).
_DROPPED = (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
ATTEMPTS = 3


def decode_answer(method: str, status: int, content: bytes | bytearray) -> Any:
    if status != 200:
        # 413 and similar mean "too much asked at once": the caller shrinks its range
        raise RpcError(method, f"HTTP {status}: {content[:200].decode(errors='replace')}")
    try:
        return json.loads(content)
    except ValueError as exc:
        raise RpcError(method, f"not JSON: {content[:200].decode(errors='replace')}") from exc


def _unreachable(method: str, exc: httpx.HTTPError, timeout: float | None) -> RpcError:
    if isinstance(exc, httpx.ReadTimeout):
        # the node is there but too slow for what was asked: a smaller range may do
        return RpcError(method, f"no answer within {timeout}s")
    return NodeUnavailable(method, str(exc) or type(exc).__name__)


def request(method: str, params: Sequence[Any], id_: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": list(params)}


def result(method: str, payload: Any) -> Any:
    """The result of one JSON-RPC answer, or its error as RpcError."""
    if not isinstance(payload, dict):
        raise RpcError(method, f"unexpected answer: {str(payload)[:200]}")
    if "error" in payload:
        raise RpcError(method, payload["error"])
    return payload.get("result")


class Closing:
    """Closed (`close()`) on leaving a `with` block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Rpc(Closing):
    """The JSON-RPC client over HTTP. `trust_env` (proxies from the environment) defaults to
    False for loopback URLs and True elsewhere."""

    def __init__(self, url: str, *, timeout: float = 60.0, trust_env: bool | None = None) -> None:
        self.url = url
        self._http = _client(url, timeout, trust_env)
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def post(
        self, body: Any, method: str = "batch", *, max_bytes: int | None = None, retry: bool = True
    ) -> Any:
        """One JSON-RPC request or batch as sent, its answer as parsed JSON (errors inside it are
        the caller's to read)."""
        for attempt in range(ATTEMPTS if retry else 1):
            try:
                if max_bytes is None:
                    resp = self._http.post(self.url, json=body)
                    status, content = resp.status_code, resp.content
                else:
                    with self._http.stream("POST", self.url, json=body) as resp:
                        status = resp.status_code
                        content = self._read_capped(resp, method, max_bytes)
                break
            except _DROPPED as exc:
                if attempt + 1 < (ATTEMPTS if retry else 1):
                    continue
                raise _unreachable(method, exc, self._http.timeout.read) from exc
            except httpx.HTTPError as exc:
                raise _unreachable(method, exc, self._http.timeout.read) from exc
        return decode_answer(method, status, content)

    @staticmethod
    def _read_capped(resp: httpx.Response, method: str, max_bytes: int) -> bytearray:
        buf = bytearray()  # json.loads takes it as it is: no second copy of up to max_bytes
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > max_bytes:
                raise ResultTooLarge(method, max_bytes, _last_block_in(buf))
        return buf

    def call(self, method: str, params: Sequence[Any] = (), *, max_bytes: int | None = None) -> Any:
        """The result of one call. With `max_bytes`, an answer that grows past it is abandoned
        as it arrives (ResultTooLarge) instead of being held whole."""
        payload = self.post(request(method, params, next(self._ids)), method, max_bytes=max_bytes)
        return result(method, payload)

    def batch(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, return_errors: bool = False
    ) -> list[Any]:
        """Results in call order. An error raises, or with `return_errors` takes the place of
        its result as an RpcError."""
        out: list[Any] = []
        for start in range(0, len(calls), MAX_BATCH):
            chunk = calls[start : start + MAX_BATCH]
            body = [request(m, p, i) for i, (m, p) in enumerate(chunk)]
            answer = self.post(body, chunk[0][0])
            if not isinstance(answer, list):
                raise RpcError(chunk[0][0], answer.get("error", answer))
            results: list[Any] = [None] * len(chunk)
            for item in answer:
                if "error" in item:
                    err = RpcError(chunk[item["id"]][0], item["error"])
                    if not return_errors:
                        raise err
                    results[item["id"]] = err
                else:
                    results[item["id"]] = item.get("result")
            out.extend(results)
        return out

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber"), 16)

    def chain_id(self) -> int:
        return int(self.call("eth_chainId"), 16)

    def headers(self, numbers: Iterable[int]) -> dict[int, Header | None]:
        """Headers by number (None past the head), one batched request."""
        nums = sorted(set(numbers))
        raws = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in nums])
        return {n: _header(r) for n, r in zip(nums, raws, strict=True)}

    def get_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: Sequence[str],
        *,
        max_bytes: int | None = None,
    ) -> list[dict]:
        """The logs of `addresses` in [from_block, to_block]. With `max_bytes`, a range of more
        than one block whose answer is larger raises ResultTooLarge (one block cannot be split,
        so its answer is always taken whole)."""
        return self.call(
            "eth_getLogs",
            [{"fromBlock": hex(from_block), "toBlock": hex(to_block), "address": list(addresses)}],
            max_bytes=max_bytes if to_block > from_block else None,
        )
