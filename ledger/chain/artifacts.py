"""The compiled contracts the Python side deploys and talks to (py-solc-x output, cached)."""

from __future__ import annotations

from functools import lru_cache

from ledger.chain.compiler import CompiledContracts, compile_contracts

Artifacts = CompiledContracts


@lru_cache(maxsize=1)
def load_artifacts() -> CompiledContracts:
    """Compiled once per process; the compiler's own cache makes later processes fast."""
    return compile_contracts()
