"""Moved to `ledger.chain.abi`; kept for existing imports."""

from ledger.chain.abi import Function, canonical

__all__ = ["Function", "canonical"]
