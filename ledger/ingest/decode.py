"""Moved to `ledger.chain.events` (the one event decoder); kept for existing imports."""

from ledger.chain.events import ChainEvent, DecodeError, EventDecoder, checksum

__all__ = ["ChainEvent", "DecodeError", "EventDecoder", "checksum"]
