"""ABI plumbing without web3's formatting layers, which cost more than the work itself."""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak


def canonical(inp: dict[str, Any]) -> str:
    """The canonical type of an ABI input or output, tuples spelled out: `(address,uint128)[]`."""
    t = inp["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(canonical(c) for c in inp["components"]) + ")" + t[5:]
    return t


class Function:
    """One contract function: calldata and result decoding."""

    def __init__(self, abi: list[dict[str, Any]], name: str) -> None:
        item = next(i for i in abi if i.get("type") == "function" and i["name"] == name)
        self.inputs = [canonical(i) for i in item["inputs"]]
        self.outputs = [canonical(o) for o in item["outputs"]]
        self.selector = keccak(text=f"{name}({','.join(self.inputs)})")[:4]

    def data(self, *args: Any) -> str:
        return "0x" + (self.selector + abi_encode(self.inputs, list(args))).hex()

    def decode(self, result: str) -> tuple:
        return abi_decode(self.outputs, bytes.fromhex(result[2:]))
