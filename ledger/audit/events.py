"""The on-chain history of a deployment: every registry and ledger log, decoded, in chain order.

Decoding goes through eth_abi with a topic table built from the ABIs, except for LoanOriginated,
the event of nearly every record, which is read by hand from its fixed layout (any log that is
not laid out exactly as the contract writes it goes to eth_abi instead); logs are fetched with
raw JSON-RPC in block ranges that shrink when a node refuses a range. This is the audit's hot
path (DESIGN §8: ≥ 2,000 records/s with every signature verified).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
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

    def decode(self, contract: str, log: dict, *, by_hand: bool = True) -> ChainEvent | None:
        """The event of `log`, or None if it is not one of the two contracts' events.
        `by_hand=False` forces eth_abi for every event (the hand decoder's tests compare both)."""
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        item = self._by_topic.get((contract, topics[0])) if topics else None
        if item is None:
            return None
        data = bytes.fromhex(log["data"][2:])
        args = None
        if by_hand and contract == "ledger" and topics[0] == LOAN_ORIGINATED_TOPIC:
            args = decode_loan_originated(topics, data)
        if args is None:
            args = self._decode_abi(item, topics, data)
        return ChainEvent(
            name=item["name"],
            contract=contract,
            block_number=int(log["blockNumber"], 16),
            block_hash=log["blockHash"],
            tx_hash=log["transactionHash"],
            log_index=int(log["logIndex"], 16),
            args=args,
        )

    @staticmethod
    def _decode_abi(item: dict, topics: list[bytes], data: bytes) -> dict[str, Any]:
        indexed = [i for i in item["inputs"] if i.get("indexed")]
        plain = [i for i in item["inputs"] if not i.get("indexed")]
        args: dict[str, Any] = {}
        for inp, topic in zip(indexed, topics[1:], strict=True):
            (args[inp["name"]],) = decode([abi_type(inp)], topic)
            args[inp["name"]] = _normalise(args[inp["name"]], inp)
        values = decode([abi_type(i) for i in plain], data) if plain else ()
        for inp, v in zip(plain, values, strict=True):
            args[inp["name"]] = _normalise(v, inp)
        if isinstance(args.get("signatures"), bytes):
            # LoanOriginated and LineGranted log the packed list the ledger took
            args["signatures"] = unpack_signatures(args["signatures"])
        return args


LOAN_ORIGINATED_TOPIC = keccak(
    text="LoanOriginated(bytes32,bytes32,address,uint32,(bytes32,bytes32,address,uint8,uint128,"
    "uint32,uint32,uint8,bytes32,bytes32,uint64,(address,uint128)[]),bytes)"
)
# LoanOriginated's data as the contract's abi.encode lays it out: policyVersion, the offsets of
# the loan tuple and of the signatures; the tuple's eleven static fields, the offset of its
# tranches (relative to the tuple), their count and (lender, amount) pairs; then the signatures.
_LOAN_AT = 3 * 32
_TRANCHES_REL = 12 * 32
# bytes of each of the tuple's static words that may be non-zero (uintN: N/8; address: 20)
_LOAN_WORDS = (32, 32, 20, 1, 16, 4, 4, 1, 32, 32, 8)
_ZERO12 = bytes(12)
_LOAN_NAMES = (
    "loanId",
    "borrowerKey",
    "platform",
    "product",
    "principal",
    "aprBps",
    "termDays",
    "repayment",
    "lineId",
    "documentDigest",
    "deadline",
)


def _uint(data: bytes, at: int, width: int) -> int | None:
    """The unsigned word at `at` if only its low `width` bytes are set (eth_abi's check)."""
    word = data[at : at + 32]
    value = int.from_bytes(word, "big")
    if len(word) != 32 or value >> (8 * width):
        return None
    return value


def _address(word: bytes) -> str | None:
    if len(word) != 32 or word[:12] != _ZERO12:
        return None
    return to_checksum_address("0x" + word[12:].hex())


def decode_loan_originated(topics: list[bytes], data: bytes) -> dict[str, Any] | None:
    """LoanOriginated's arguments, as `EventDecoder` gives them, read from the layout the contract
    writes; None for anything else (another layout, dirty padding, a malformed signature list),
    which then goes to eth_abi and is decoded, or refused, there."""
    if list(map(len, topics)) != [32, 32, 32, 32]:
        return None
    if len(data) < _LOAN_AT + _TRANCHES_REL + 32:
        return None
    platform = _address(topics[3])
    version = _uint(data, 0, 4)
    if platform is None or version is None:
        return None
    if _uint(data, 32, 32) != _LOAN_AT or _uint(data, _LOAN_AT + 11 * 32, 32) != _TRANCHES_REL:
        return None
    loan: dict[str, Any] = {}
    at = _LOAN_AT
    for name, width in zip(_LOAN_NAMES, _LOAN_WORDS, strict=True):
        if width == 32:
            value: Any = data[at : at + 32]
        elif width == 20:
            value = _address(data[at : at + 32])
        else:
            value = _uint(data, at, width)
        if value is None:
            return None
        loan[name] = value
        at += 32
    at = _LOAN_AT + _TRANCHES_REL
    count = _uint(data, at, 4)
    if count is None or len(data) < at + 32 + 64 * count:
        return None
    tranches = []
    for i in range(count):
        w = at + 32 + 64 * i
        lender = _address(data[w : w + 32])
        amount = _uint(data, w + 32, 16)
        if lender is None or amount is None:
            return None
        tranches.append({"lender": lender, "amount": amount})
    loan["tranches"] = tranches
    sigs_at = at + 32 + 64 * count
    size = _uint(data, sigs_at, 4)
    if _uint(data, 64, 32) != sigs_at or size is None:
        return None
    end = sigs_at + 32 + size
    padded = end + (-size % 32)
    if len(data) != padded or data[end:padded] != bytes(padded - end):
        return None
    try:
        signatures = unpack_signatures(data[sigs_at + 32 : end])
    except ValueError:
        return None
    return {
        "loanId": topics[1],
        "borrowerKey": topics[2],
        "platform": platform,
        "policyVersion": version,
        "loan": loan,
        "signatures": signatures,
    }


@cache
def _tls() -> ssl.SSLContext:
    # httpx's default context, made once: loading the CA bundle costs ~25 ms of CPU per client,
    # and an audit opens two
    return httpx.create_ssl_context()


class Rpc:
    """Minimal JSON-RPC over HTTP with batching, for reads the audit makes in bulk."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=120, verify=_tls())
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
