"""Small helpers for raw JSON-RPC results: ABI output types, checksummed addresses, revert data
in node errors, and the node messages that mean a nonce race."""

from __future__ import annotations

from typing import Any

from web3.exceptions import Web3RPCError

from ledger.chain.abi import canonical as abi_type
from ledger.domain import to_checksum_address

__all__ = ["abi_type", "checksummed", "is_nonce_race", "revert_data"]

# Node answers that mean "this nonce is taken or out of order": resynchronise and send again.
NONCE_RACE = (
    "nonce too low",
    "nonce too high",
    "already known",
    "replacement transaction underpriced",
    "transaction already imported",
    "known transaction",
)


def is_nonce_race(exc: Exception) -> bool:
    return any(m in str(exc).lower() for m in NONCE_RACE)


def checksummed(value: Any, item: dict) -> Any:
    t = item["type"]
    if t == "address":
        return to_checksum_address(value)
    if t.startswith("tuple"):
        comps = item["components"]
        if t.endswith("[]"):
            return [checksummed(v, {**item, "type": "tuple"}) for v in value]
        return tuple(checksummed(v, c) for v, c in zip(value, comps, strict=True))
    if t.endswith("[]"):
        return [checksummed(v, {**item, "type": t[:-2]}) for v in value]
    return value


def revert_data(exc: Web3RPCError) -> str | None:
    err = (getattr(exc, "rpc_response", None) or {}).get("error") or {}
    data = err.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        return data
    return None
