"""The one JSON-RPC transport (ledger.chain.rpc.Rpc) against a loopback server that drops
connections: a read goes again on a new connection (twice at most) and then reports
NodeUnavailable; a write (`retry=False`, as the Transactor sends transactions and localnet's
rpc_call sends anything) is never sent twice. A proxy from the environment is never used for
loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from ledger.chain.rpc import NodeUnavailable, Rpc, RpcError
from ledger.localnet.chains import ChainError, rpc_call

REPLY = json.dumps({"jsonrpc": "2.0", "id": 1, "result": "0x2a"}).encode()


class DroppingServer:
    """Accepts connections; drops the first `drops` once a request starts arriving, answers the
    others (kept alive)."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, n: int) -> None:
        with conn:
            if n <= self.drops:
                conn.recv(1)
                return
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(REPLY)}\r\n\r\n".encode()
                    + REPLY
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[DroppingServer] = []

    def make(drops: int) -> DroppingServer:
        servers.append(DroppingServer(drops))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.mark.parametrize("drops", [0, 1, 2])
def test_a_read_is_tried_again_on_a_dropped_connection(serve, drops: int) -> None:
    server = serve(drops)
    with Rpc(server.url) as rpc:
        assert rpc.call("eth_blockNumber") == "0x2a"
        assert rpc.call("eth_blockNumber") == "0x2a"  # on the kept-alive connection
    assert server.connections == drops + 1


def test_a_read_that_keeps_being_dropped_is_node_unavailable(serve) -> None:
    server = serve(drops=10)
    with Rpc(server.url) as rpc, pytest.raises(NodeUnavailable) as caught:
        rpc.call("eth_blockNumber")
    assert isinstance(caught.value, RpcError)
    assert server.connections == 3


def test_a_write_is_never_sent_twice(serve) -> None:
    server = serve(drops=1)
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x"]}
    with Rpc(server.url) as rpc, pytest.raises(NodeUnavailable):
        rpc.post(body, "eth_sendRawTransaction", retry=False)
    assert server.connections == 1
    server = serve(drops=1)
    with pytest.raises(ChainError, match="eth_sendRawTransaction on .* failed"):
        rpc_call(server.url, "eth_sendRawTransaction", ["0x"])
    assert server.connections == 1


def test_no_proxy_for_loopback(serve, monkeypatch) -> None:
    dead = socket.create_server(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
    dead.close()  # a proxy that is not there: going through it would fail
    for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    server = serve(drops=0)
    with Rpc(server.url) as rpc:
        assert rpc.call("eth_chainId") == "0x2a"
    assert rpc_call(server.url, "eth_chainId") == "0x2a"
    # told to trust the environment, it would have gone through the proxy
    with Rpc(server.url, trust_env=True) as rpc, pytest.raises(NodeUnavailable):
        rpc.call("eth_chainId")
