"""The on-chain history of a deployment: every registry and ledger log, decoded, in chain order.

Decoding goes straight through eth_abi with a topic table built from the ABIs, and logs are
fetched with raw JSON-RPC in block ranges that shrink when a node refuses a range: this is the
audit's hot path (DESIGN §8: ≥ 2,000 records/s with every signature verified).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from eth_abi import decode
from eth_utils import keccak

from ledger.chain.deployment import Deployment
from ledger.chain.rpcutil import abi_type
from ledger.domain import to_checksum_address
from ledger.provenance import unpack_signatures


@dataclass(frozen=True, slots=True)
class ChainEvent:
    name: str
    contract: str  # "registry" or "ledger"
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    args: dict[str, Any]

    @property
    def where(self) -> str:
        return f"block {self.block_number}, tx {self.tx_hash}, log {self.log_index}"


def _normalise(value: Any, item: dict) -> Any:
    t = item["type"]
    if t == "address":
        return to_checksum_address(value)
    if t.startswith("tuple"):
        comps = item["components"]
        if t.endswith("[]"):
            inner = {**item, "type": "tuple"}
            return [_normalise(v, inner) for v in value]
        return {c["name"]: _normalise(v, c) for c, v in zip(comps, value, strict=True)}
    if t.endswith("[]"):
        inner = {**item, "type": t[:-2]}
        return [_normalise(v, inner) for v in value]
    return value


class EventDecoder:
    """topic0 -> event ABI, for the registry's and the ledger's events."""

    def __init__(self, registry_abi: list[dict], ledger_abi: list[dict]) -> None:
        self._by_topic: dict[tuple[str, bytes], dict] = {}
        for contract, abi in (("registry", registry_abi), ("ledger", ledger_abi)):
            for item in abi:
                if item.get("type") != "event":
                    continue
                sig = f"{item['name']}({','.join(abi_type(i) for i in item['inputs'])})"
                self._by_topic[(contract, keccak(text=sig))] = item

    def decode(self, contract: str, log: dict) -> ChainEvent | None:
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        item = self._by_topic.get((contract, topics[0])) if topics else None
        if item is None:
            return None
        indexed = [i for i in item["inputs"] if i.get("indexed")]
        plain = [i for i in item["inputs"] if not i.get("indexed")]
        args: dict[str, Any] = {}
        for inp, topic in zip(indexed, topics[1:], strict=True):
            (args[inp["name"]],) = decode([abi_type(inp)], topic)
            args[inp["name"]] = _normalise(args[inp["name"]], inp)
        data = bytes.fromhex(log["data"][2:])
        values = decode([abi_type(i) for i in plain], data) if plain else ()
        for inp, v in zip(plain, values, strict=True):
            args[inp["name"]] = _normalise(v, inp)
        if isinstance(args.get("signatures"), bytes):
            # LoanOriginated and LineGranted log the packed list the ledger took
            args["signatures"] = unpack_signatures(args["signatures"])
        return ChainEvent(
            name=item["name"],
            contract=contract,
            block_number=int(log["blockNumber"], 16),
            block_hash=log["blockHash"],
            tx_hash=log["transactionHash"],
            log_index=int(log["logIndex"], 16),
            args=args,
        )


class Rpc:
    """Minimal JSON-RPC over HTTP with batching, for reads the audit makes in bulk."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=120)
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        resp = self._http.post(
            self.url, json={"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        )
        resp.raise_for_status()
        body = resp.json()
        if "error" in body:
            raise RpcError(body["error"])
        return body["result"]

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        if not calls:
            return []
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        resp = self._http.post(self.url, json=body)
        resp.raise_for_status()
        out: list[Any] = [None] * len(calls)
        for item in resp.json():
            if "error" in item:
                raise RpcError(item["error"])
            out[item["id"]] = item["result"]
        return out

    def close(self) -> None:
        self._http.close()


class RpcError(RuntimeError):
    def __init__(self, error: dict) -> None:
        super().__init__(f"RPC error {error.get('code')}: {error.get('message')}")
        self.error = error


def fetch_logs(
    rpc: Rpc,
    deployment: Deployment,
    to_block: int,
    *,
    step: int = 5_000,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[str, dict]]:
    """(contract, raw log) for both contracts, in chain order, from the deployment block."""
    names = {deployment.registry.lower(): "registry", deployment.ledger.lower(): "ledger"}
    start = deployment.deployment_block
    while start <= to_block:
        end = min(start + step - 1, to_block)
        try:
            logs = rpc.call(
                "eth_getLogs",
                [
                    {
                        "fromBlock": hex(start),
                        "toBlock": hex(end),
                        "address": [deployment.registry, deployment.ledger],
                    }
                ],
            )
        except RpcError:
            if step == 1:
                raise
            step = max(1, step // 4)  # the node refused the range (too many results): shrink it
            continue
        for log in logs:
            yield names[log["address"].lower()], log
        if progress:
            progress(
                end - deployment.deployment_block + 1, to_block - deployment.deployment_block + 1
            )
        start = end + 1
        step = min(step * 2, 50_000)


def block_timestamps(rpc: Rpc, blocks: set[int]) -> dict[int, int]:
    """Timestamps of the given blocks, fetched in JSON-RPC batches."""
    out: dict[int, int] = {}
    ordered = sorted(blocks)
    for i in range(0, len(ordered), 200):
        part = ordered[i : i + 200]
        for n, blk in zip(
            part, rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in part]), strict=True
        ):
            out[n] = int(blk["timestamp"], 16)
    return out
