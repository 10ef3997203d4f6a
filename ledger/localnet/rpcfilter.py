"""A JSON-RPC filter in front of a local chain that makes it behave like a consortium chain:
every development method (`anvil_*`, `hardhat_*`, `evm_*`) is refused with a JSON-RPC error, as
Besu refuses methods it does not have, so code that still leans on them fails where it would
fail in production. Everything else is passed through unchanged, single calls and batches.

Loopback only (a ThreadingHTTPServer on 127.0.0.1). What was refused is kept in `refused`, so a
test can assert nothing tried. `report_chain_id` makes eth_chainId answer another id than the EVM
sees (FISCO BCOS's web3 endpoint does this unless configured), to test the start-up check.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from ledger.chain.rpc import NodeUnavailable, Rpc
from ledger.localnet.processes import HOST

DEV_PREFIXES = ("anvil_", "hardhat_", "evm_")
# JSON-RPC "method not found", what a node without the method answers
METHOD_NOT_FOUND = -32601


def is_dev_method(method: Any) -> bool:
    return isinstance(method, str) and method.startswith(DEV_PREFIXES)


class RpcFilter:
    """Serve `upstream` on a loopback port of our own, refusing development methods."""

    def __init__(self, upstream: str, *, report_chain_id: int | None = None) -> None:
        self.upstream = upstream
        self.report_chain_id = report_chain_id
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the filter is not running")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> Self:
        handler = _handler(self)
        self._server = ThreadingHTTPServer((HOST, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="rpc-filter", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the filtering

    def _rpc(self) -> Rpc:
        rpc = getattr(self._local, "rpc", None)
        if rpc is None:
            rpc = self._local.rpc = Rpc(self.upstream, timeout=120, trust_env=False)
        return rpc

    def _refuse(self, call: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.refused.append(str(call.get("method")))
        return {
            "jsonrpc": "2.0",
            "id": call.get("id"),
            "error": {
                "code": METHOD_NOT_FOUND,
                "message": f"the method {call.get('method')} does not exist/is not available "
                "(development methods are refused on this chain)",
            },
        }

    def _rewrite(self, call: dict[str, Any], answer: Any) -> Any:
        if (
            self.report_chain_id is not None
            and isinstance(answer, dict)
            and "result" in answer
            and call.get("method") in ("eth_chainId", "net_version")
        ):
            n = self.report_chain_id
            answer = {**answer, "result": hex(n) if call["method"] == "eth_chainId" else str(n)}
        return answer

    def handle(self, body: Any) -> Any:
        """The answer to one JSON-RPC request body (a call or a batch)."""
        calls = body if isinstance(body, list) else [body]
        answers: dict[int, Any] = {}
        passed = []
        for i, call in enumerate(calls):
            if isinstance(call, dict) and is_dev_method(call.get("method")):
                answers[i] = self._refuse(call)
            else:
                passed.append(i)
        if passed:
            forward = [calls[i] for i in passed]
            got = self._rpc().post(
                forward if isinstance(body, list) else forward[0], "proxy", retry=False
            )
            got = got if isinstance(body, list) else [got]
            by_id = {a.get("id"): a for a in got if isinstance(a, dict)}
            for i in passed:
                call = calls[i]
                answer = by_id.get(call.get("id")) if isinstance(body, list) else got[0]
                answers[i] = self._rewrite(call, answer)
        ordered = [answers[i] for i in range(len(calls))]
        return ordered if isinstance(body, list) else ordered[0]


def _handler(flt: RpcFilter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            size = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(size))
                payload = json.dumps(flt.handle(body)).encode()
                status = 200
            except json.JSONDecodeError:
                payload = json.dumps(
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse"}}
                ).encode()
                status = 200
            except NodeUnavailable:
                payload, status = b"upstream chain unavailable", 502
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # no per-request lines on stderr

    return Handler
