"""The one event decoder: the two contracts' logs into `ChainEvent`s, for the indexer, the audit
and the evidence.

Each event's ABI is compiled once into its topic and a decoder (`ledger.chain.abidecode`, as
strict as eth_abi and several times faster), so a log costs one dict lookup and one decode.
Arguments come out in one of two forms of the same shape (structs as dicts by field name,
arrays as lists, addresses checksummed):

* the stored form (default), as in `raw_events.args`: bytes as 0x-hex. The projection works on
  it, so an event read back from the database during a rollback is handled exactly like one
  fresh from the node;
* the native form (`native=True`), for the audit and the evidence: bytes as `bytes`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

from ledger.chain.abi import canonical
from ledger.chain.abidecode import Leaves, compile_inputs
from ledger.chain.artifacts import Artifacts, load_artifacts
from ledger.chain.rpc import Rpc
from ledger.domain import to_checksum_address, to_hex
from ledger.provenance import unpack_signatures


@dataclass(slots=True)
class ChainEvent:
    """One decoded log, positioned in the chain."""

    block_number: int
    log_index: int
    block_hash: bytes
    tx_hash: bytes
    tx_index: int
    contract: str  # "registry" or "ledger"
    name: str
    args: dict[str, Any]
    timestamp: int = 0  # the block's, filled in from its header

    @property
    def where(self) -> str:
        return f"block {self.block_number}, tx {to_hex(self.tx_hash)}, log {self.log_index}"


class DecodeError(Exception):
    """A log from one of our contracts that does not match its ABI."""


def _text(value: bytes) -> str:
    # Names are governor input: invalid UTF-8 or NULs (which PostgreSQL text refuses) must not
    # stop the indexer, so they are replaced rather than rejected.
    return value.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _same(value: Any) -> Any:
    return value


def _signature_list(value: bytes) -> list[str]:
    return [to_hex(s) for s in unpack_signatures(value)]


def _leaves(native: bool) -> Leaves:
    # LoanOriginated and LineGranted log the packed list the ledger took: it comes out as a list.
    # Strings are decoded leniently (see _text).
    if native:
        sigs: Callable[[bytes], Any] = unpack_signatures
        return Leaves(
            address=to_checksum_address,
            fixed_bytes=bytes,
            dynamic_bytes=lambda inp: sigs if inp["name"] == "signatures" else bytes,
            string=_text,
        )
    return Leaves(
        address=to_checksum_address,
        fixed_bytes=to_hex,
        dynamic_bytes=lambda inp: _signature_list if inp["name"] == "signatures" else to_hex,
        string=_text,
    )


_LEAVES = {False: _leaves(False), True: _leaves(True)}


def _topic_bytes(topic: str) -> bytes:
    return bytes.fromhex(topic[2:])


def _topic_converter(inp: dict[str, Any], native: bool) -> Callable[[str], Any]:
    """An indexed argument from its topic, as strictly as eth_abi reads it (padding, range),
    read from the hex string itself (the hot path: no bytes made where none are kept). A
    dynamic type is logged as its hash, which is given as it is (or as bytes)."""
    t: str = inp["type"]
    if t.endswith("]") or t in ("bytes", "string", "tuple"):
        return _topic_bytes if native else _same
    if t == "address":
        pad, keep = "0" * 24, 26
        make: Callable[[str], Any] = lambda rest: to_checksum_address("0x" + rest)  # noqa: E731
    elif t == "bool":
        pad, keep = "0" * 63, 65
        make = lambda rest: rest == "1" if rest in "01" else None  # noqa: E731
    elif t.startswith("bytes"):
        n = int(t[5:])
        pad, keep = "", 2 + 2 * n  # the padding follows the value
        tail = "0" * (64 - 2 * n)

        def fixed(topic: str) -> Any:
            if len(topic) != 66 or topic[keep:] != tail:
                raise DecodeError(f"{t} topic {topic} is not a padded {t}")
            return bytes.fromhex(topic[2:keep]) if native else topic[:keep]

        return fixed
    else:
        signed = t.startswith("int")
        bits = int(t[3:] or 256) if signed else int(t[4:] or 256)
        lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)

        def number(topic: str) -> int:
            v = int(topic, 16) if len(topic) == 66 else None
            if v is not None and signed and v >> 255:
                v -= 1 << 256
            if v is None or not lo <= v < hi:
                raise DecodeError(f"{t} topic {topic} out of range")
            return v

        return number

    def padded(topic: str) -> Any:
        value = make(topic[keep:]) if len(topic) == 66 and topic[2:keep] == pad else None
        if value is None:
            raise DecodeError(f"{t} topic {topic} has non-zero padding")
        return value

    return padded


def _topic_of(inp: dict[str, Any], value: Any) -> str:
    """The topic an indexed argument is logged as (static types only)."""
    t = inp["type"]
    if t == "address":
        return "0x" + "00" * 12 + value[2:].lower()
    if isinstance(value, int):  # uintN, intN, bool
        return "0x" + (value % (1 << 256)).to_bytes(32, "big").hex()
    return to_hex(bytes(value).ljust(32, b"\0"))  # bytesN


class _Spec:
    def __init__(self, contract: str, item: dict[str, Any], native: bool) -> None:
        self.contract = contract
        self.item = item
        self.name: str = item["name"]
        signature = f"{self.name}({','.join(canonical(i) for i in item['inputs'])})"
        self.topic = "0x" + keccak(text=signature).hex()
        leaves = _LEAVES[native]
        self.indexed = [
            (i["name"], _topic_converter(i, native)) for i in item["inputs"] if i["indexed"]
        ]
        data = [i for i in item["inputs"] if not i["indexed"]]
        self.decode_data = compile_inputs(data, leaves) if data else None

    def args(self, topics: list[str], data: str) -> dict[str, Any]:
        if len(topics) != len(self.indexed) + 1:
            raise DecodeError(f"{self.name}: {len(topics) - 1} indexed topics")
        out = {n: conv(t) for (n, conv), t in zip(self.indexed, topics[1:], strict=True)}
        if self.decode_data is not None:
            out.update(self.decode_data(bytes.fromhex(data[2:])))
        return out


class EventDecoder:
    """Logs of the registry and the ledger (and LoanServicing, given its address) at their
    deployed addresses; `native` gives the
    arguments with bytes as `bytes` rather than 0x-hex (see the module's docstring)."""

    def __init__(
        self,
        registry: str,
        ledger: str,
        artifacts: Artifacts | None = None,
        *,
        native: bool = False,
        servicing: str = "",
    ) -> None:
        contracts = [
            ("registry", registry, "ConsortiumRegistry"),
            ("ledger", ledger, "CoLendingLedger"),
        ]
        if servicing:  # LoanServicing, when the deployment has one
            contracts.append(("servicing", servicing, "LoanServicing"))
        self._load(contracts, artifacts, native)

    @classmethod
    def of(
        cls,
        contracts: Sequence[tuple[str, str, str]],
        artifacts: Artifacts | None = None,
        *,
        native: bool = False,
    ) -> EventDecoder:
        """A decoder for other deployed contracts: (label, address, artifact name) each (the
        council and its timelock, say)."""
        self = cls.__new__(cls)
        self._load(contracts, artifacts, native)
        return self

    def _load(
        self, contracts: Sequence[tuple[str, str, str]], artifacts: Artifacts | None, native: bool
    ) -> None:
        art = artifacts or load_artifacts()
        self.addresses = [to_checksum_address(address) for _label, address, _name in contracts]
        self._specs: dict[tuple[str, str], _Spec] = {}
        for contract, address, name in contracts:
            for item in art[name].abi:
                if item["type"] == "event" and not item.get("anonymous"):
                    spec = _Spec(contract, item, native)
                    self._specs[(address.lower(), spec.topic)] = spec

    def receipt_events(self, receipt: Any, name: str | None = None) -> list[ChainEvent]:
        """The events in a mined transaction's receipt (`Receipt`) that this decoder knows, in
        log order; with `name`, only those (other logs are not decoded at all)."""
        logs = receipt.logs
        if name is not None:
            address, (topic, *_) = self.log_filter(name)
            address = address.lower()
            logs = [
                log
                for log in logs
                if log["topics"] and log["topics"][0] == topic
                and log["address"].lower() == address
            ]  # fmt: skip
        found = (self.decode(log) for log in logs)
        return [e for e in found if e is not None]

    def log_filter(self, name: str, **indexed: Any) -> tuple[str, list[str | None]]:
        """(address, topics) for eth_getLogs: the event `name`, with any of its indexed
        arguments given by name."""
        for (address, _), spec in self._specs.items():
            if spec.name == name:
                inputs = [i for i in spec.item["inputs"] if i["indexed"]]
                unknown = set(indexed) - {i["name"] for i in inputs}
                if unknown:
                    raise ValueError(f"{name} has no indexed {sorted(unknown)}")
                topics: list[str | None] = [spec.topic]
                topics += [
                    _topic_of(i, indexed[i["name"]]) if i["name"] in indexed else None
                    for i in inputs
                ]
                while topics[-1] is None:
                    topics.pop()
                return to_checksum_address(address), topics
        raise ValueError(f"no event {name}")

    def decode(self, log: dict[str, Any]) -> ChainEvent | None:
        """The event of one eth_getLogs entry; None for a log no ABI of ours describes."""
        topics = log["topics"]
        if not topics:
            return None
        spec = self._specs.get((log["address"].lower(), topics[0].lower()))
        if spec is None:
            return None
        try:
            args = spec.args(topics, log["data"])
        except DecodeError:
            raise
        except Exception as exc:  # noqa: BLE001 - hex, ABI and signature-list errors
            raise DecodeError(f"{spec.name} at block {log['blockNumber']}: {exc}") from exc
        return ChainEvent(
            block_number=int(log["blockNumber"], 16),
            log_index=int(log["logIndex"], 16),
            block_hash=bytes.fromhex(log["blockHash"][2:]),
            tx_hash=bytes.fromhex(log["transactionHash"][2:]),
            tx_index=int(log["transactionIndex"], 16),
            contract=spec.contract,
            name=spec.name,
            args=args,
        )


def find_events(
    rpc: Rpc,
    decoder: EventDecoder,
    name: str,
    *,
    from_block: int,
    to_block: int | str = "latest",
    **indexed: Any,
) -> list[ChainEvent]:
    """The events `name` whose indexed arguments equal `indexed`, in chain order."""
    address, topics = decoder.log_filter(name, **indexed)
    query = {
        "fromBlock": hex(from_block),
        "toBlock": to_block if isinstance(to_block, str) else hex(to_block),
        "address": address,
        "topics": topics,
    }
    logs = rpc.call("eth_getLogs", [query])
    return [ev for ev in map(decoder.decode, logs) if ev is not None]
