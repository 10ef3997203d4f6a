"""Moved to `ledger.chain.rpc` (the one JSON-RPC transport); kept for existing imports."""

from ledger.chain.rpc import Header, NodeUnavailable, ResultTooLarge, Rpc, RpcError

__all__ = ["Header", "NodeUnavailable", "ResultTooLarge", "Rpc", "RpcError"]
