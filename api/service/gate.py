"""What every authenticated request reads from the chain: the caller's member record and the
latest block's number and timestamp, in one JSON-RPC batch (one round trip) over a kept-alive
connection.

The record is read at "latest" on every request, never cached: a member suspended on chain is
refused on its next request. The head travels with the caller (Principal.head) so a read can
wait for its read model to hold that block without asking the chain again, and the block's
timestamp (Principal.clock) is the chain's clock for terms the request writes (a co-loan's
signing deadline), so a write does not ask the chain for it a second time.

The calldata and the output types are worked out once from the registry's ABI (web3's
`encode_abi` looks the function up and validates the ABI on every call), and the batch goes
through the async entry of the project's one JSON-RPC transport (`ledger.chain.aiorpc`: on the
event loop, HTTP by h11, a read tried again on a new connection when a kept-alive one was
dropped; see there for why not httpx's AsyncClient).
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import function_abi_to_4byte_selector

from ledger.chain.abi import canonical
from ledger.chain.aiorpc import AsyncRpc
from ledger.chain.errors import ChainUnreachable, LedgerError
from ledger.chain.rpc import NodeUnavailable, RpcError, request

# JSON-RPC ids inside the batch; a server may answer a batch in any order.
_HEAD, _MEMBER = 1, 2


class Gate:
    """`Gate(rpc_url, registry)`: `registry` is the registry's address (or a web3 contract)."""

    def __init__(self, rpc_url: str, registry: Any) -> None:
        self.rpc_url = rpc_url
        abi = getattr(registry, "abi", None)
        if abi is None:
            from ledger.chain.artifacts import load_artifacts

            abi = load_artifacts()["ConsortiumRegistry"].abi
        self.registry = getattr(registry, "address", registry)
        item = next(i for i in abi if i.get("type") == "function" and i["name"] == "member")
        self._selector = "0x" + function_abi_to_4byte_selector(item).hex() + "00" * 12
        self._types = [canonical(o) for o in item["outputs"]]
        self._rpc = AsyncRpc(rpc_url)

    def _body(self, address: str) -> list[dict[str, Any]]:
        call = {"to": self.registry, "data": self._selector + address[2:].lower()}
        return [
            request("eth_getBlockByNumber", ["latest", False], _HEAD),
            request("eth_call", [call, "latest"], _MEMBER),
        ]

    def _parse(self, replies: Any) -> tuple[tuple[Any, ...], int, int]:
        if not isinstance(replies, list):  # a server refusing the batch as a whole
            raise LedgerError(f"member/head batch refused: {replies}")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        head, member = by_id.get(_HEAD, {}), by_id.get(_MEMBER, {})
        for name, r in (("eth_getBlockByNumber", head), ("registry.member", member)):
            if not r.get("result"):
                raise LedgerError(f"{name} failed: {r.get('error')}")
        (record,) = decode(self._types, bytes.fromhex(member["result"][2:]))
        block = head["result"]
        return tuple(record), int(block["number"], 16), int(block["timestamp"], 16)

    async def read(self, address: str) -> tuple[tuple[Any, ...], int, int]:
        """(the registry's Member struct for `address`, the latest block's number and
        timestamp)."""
        try:
            replies = await self._rpc.post(self._body(address), "member/head")
        except NodeUnavailable as exc:
            raise ChainUnreachable(f"the chain at {self.rpc_url} does not answer: {exc}") from exc
        except RpcError as exc:
            raise LedgerError(f"the chain at {self.rpc_url}: {exc}") from exc
        return self._parse(replies)

    def close(self) -> None:
        self._rpc.close()
