"""What the benches that build a long history share: explicit mining on anvil, and the check
that every transaction sent made it into a block and succeeded."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ledger.chain.rpc import Rpc


@contextmanager
def manual_mining(rpc: Rpc) -> Iterator[None]:
    """Automine off for the block, blocks mined explicitly (`evm_mine`); automine on after.

    With automine, a transaction that no longer fits the block being mined waits for the next
    arrival, and mining requests made alongside it land after they were answered."""
    rpc.call("evm_setAutomine", [False])
    try:
        yield
    finally:
        rpc.call("evm_setAutomine", [True])


def mine_pending(rpc: Rpc) -> None:
    """Mine blocks until the pool is empty."""
    while int(rpc.call("txpool_status")["pending"], 16):
        rpc.call("evm_mine")


def check_receipts(rpc: Rpc, hashes: Sequence[str]) -> list[dict[str, Any]]:
    """The receipts of `hashes`; RuntimeError if any transaction failed or was dropped."""
    receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    failed = [h for h, r in zip(hashes, receipts, strict=True) if not r or r["status"] != "0x1"]
    if failed:
        raise RuntimeError(f"{len(failed)} transactions failed or were dropped, first {failed[0]}")
    return receipts
