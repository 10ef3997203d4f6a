"""The client's reads beside web3.py: raw JSON-RPC through the one transport (`ledger.chain.rpc`)
and the one event decoder (`ledger.chain.events`). web3's contract calls, `block_number` and
`get_logs` cost several round trips or milliseconds of formatting on every read a node answers;
web3 stays for building and sending transactions (`ledger.chain.transactor`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import decode
from eth_abi.exceptions import EncodingTypeError

from ledger.chain.abi import Function
from ledger.chain.deployment import Deployment
from ledger.chain.errors import ChainUnreachable, ErrorDecoder, LedgerError
from ledger.chain.events import ChainEvent, EventDecoder, find_events
from ledger.chain.rpc import Closing, NodeUnavailable, Rpc, RpcError, request
from ledger.chain.rpcutil import abi_type, checksummed


class ChainReads(Closing):
    """Reads for a client of one deployment (mixed into `Transactor`, which sets the fields)."""

    rpc_url: str
    deployment: Deployment
    errors: ErrorDecoder
    _rpc: Rpc
    _artifacts: Any
    _events: EventDecoder | None
    _output_types: dict[tuple[str, str], list[tuple[str, dict]]]
    _encoders: dict[tuple[str, str], Function | None]

    def close(self) -> None:
        self._rpc.close()

    def events(
        self, name: str, *, from_block: int, to_block: int | str = "latest", **indexed: Any
    ) -> list[ChainEvent]:
        """The registry's or the ledger's events `name` with the given indexed arguments, read
        and decoded by the one chain-reading layer (arguments in the native form: bytes as
        bytes, structs as dicts)."""
        return find_events(
            self._rpc, self._decoder(), name, from_block=from_block, to_block=to_block, **indexed
        )

    def receipt_events(self, receipt: Any, name: str) -> list[ChainEvent]:
        """The events `name` in a mined transaction's receipt (`Receipt`), decoded by the same
        decoder as `events` (logs of other contracts are left out)."""
        return self._decoder().receipt_events(receipt, name)

    def _decoder(self) -> EventDecoder:
        if self._events is None:
            dep = self.deployment
            self._events = EventDecoder(
                dep.registry, dep.ledger, self._artifacts, native=True, servicing=dep.servicing
            )
        return self._events

    def _post(self, body: Any, *, write: bool = False) -> Any:
        """One JSON-RPC request or batch through the one transport (`ledger.chain.rpc`); a read
        is tried again on a dropped connection, a write is not."""
        try:
            return self._rpc.post(body, retry=not write)
        except NodeUnavailable as exc:
            raise ChainUnreachable(f"the chain at {self.rpc_url} does not answer: {exc}") from exc

    def head(self) -> int:
        """The chain's latest block number, in one raw round trip (web3's `block_number` goes
        through its middleware stack, a few milliseconds on every read a node answers)."""
        reply = self._post(request("eth_blockNumber", []))
        if "error" in reply:
            raise ChainUnreachable(f"eth_blockNumber failed: {reply['error']}")
        return int(reply["result"], 16)

    def call(self, contract: Any, fn: str, *args: Any, block: int | str = "latest") -> Any:
        """A view call as one raw eth_call: web3's contract call makes several round trips per
        call, which dominated the nodes' read latency. Results match web3's: one output is
        returned bare, several as a tuple, addresses checksummed."""
        outputs = self._outputs(contract, fn)
        data = self._calldata(contract, fn, args)
        tag = block if isinstance(block, str) else hex(block)
        reply = self._post(request("eth_call", [{"to": contract.address, "data": data}, tag]))
        if "error" in reply:
            err = reply["error"]
            raw = err.get("data")
            if isinstance(raw, dict):
                raw = raw.get("data")
            if isinstance(raw, str) and raw.startswith("0x") and len(raw) >= 10:
                raise self.errors.decode(raw)
            raise LedgerError(f"{fn}: {err.get('message')}")
        values = decode([t for t, _ in outputs], bytes.fromhex(reply["result"][2:]))
        values = tuple(checksummed(v, item) for v, (_, item) in zip(values, outputs, strict=True))
        return values[0] if len(values) == 1 else values

    def latest(self) -> tuple[int, int]:
        """(number, timestamp) of the latest block, in one raw round trip."""
        reply = self._post(request("eth_getBlockByNumber", ["latest", False]))
        if "error" in reply or not reply.get("result"):
            raise ChainUnreachable(f"eth_getBlockByNumber failed: {reply.get('error')}")
        block = reply["result"]
        return int(block["number"], 16), int(block["timestamp"], 16)

    def call_many(
        self, calls: list[tuple[Any, str, tuple[Any, ...]]], block: int | str = "latest"
    ) -> list[Any]:
        """Many view calls at one block in one JSON-RPC batch (one round trip where `call` takes
        one each), results in call order and in `call`'s form."""
        tag = block if isinstance(block, str) else hex(block)
        body = [
            ("eth_call", [{"to": c.address, "data": self._calldata(c, fn, args)}, tag])
            for c, fn, args in calls
        ]
        try:
            replies = self._rpc.batch(body)
        except NodeUnavailable as exc:
            raise ChainUnreachable(f"the chain at {self.rpc_url} does not answer: {exc}") from exc
        except RpcError as exc:
            raise LedgerError(f"batched view call: {exc}") from exc
        out = []
        for (contract, fn, _args), raw in zip(calls, replies, strict=True):
            outputs = self._outputs(contract, fn)
            values = decode([t for t, _ in outputs], bytes.fromhex(raw[2:]))
            values = tuple(checksummed(v, i) for v, (_, i) in zip(values, outputs, strict=True))
            out.append(values[0] if len(values) == 1 else values)
        return out

    def _calldata(self, contract: Any, fn: str, args: Sequence[Any]) -> str:
        """Calldata through ledger.chain.abi (web3's encode_abi validates and reformats every
        argument: about 10 ms a loan here, which capped batched recording at ~100 loans/s, and
        most of a node's CPU in a batch of view calls); web3 for an overloaded name."""
        key = (contract.address, fn)
        encoder = self._encoders.get(key)
        if encoder is None and key not in self._encoders:
            named = [i for i in contract.abi if i.get("type") == "function" and i["name"] == fn]
            encoder = self._encoders[key] = Function(contract.abi, fn) if len(named) == 1 else None
        if encoder is not None:
            try:
                return encoder.data(*args)
            except EncodingTypeError:
                pass  # e.g. bytes given as a hex string: web3 normalises such arguments
        return contract.encode_abi(fn, args=list(args))

    def _outputs(self, contract: Any, fn: str) -> list[tuple[str, dict]]:
        key = (contract.address, fn)
        found = self._output_types.get(key)
        if found is None:
            item = next(i for i in contract.abi if i.get("type") == "function" and i["name"] == fn)
            found = [(abi_type(o), o) for o in item["outputs"]]
            self._output_types[key] = found
        return found
