"""The on-chain history of a deployment for the audit: every registry and ledger log, decoded by
the one event decoder (`ledger.chain.events`, in its native form: bytes as `bytes`), in chain
order, read through the one transport (`ledger.chain.rpc`) in block ranges that shrink when a
node refuses a range. This is the audit's hot path (DESIGN §8: ≥ 2,000 records/s with every
signature verified). The judging is `ledger.audit.replay`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ledger.chain.deployment import Deployment
from ledger.chain.events import ChainEvent, EventDecoder
from ledger.chain.rpc import Rpc, RpcError

__all__ = [
    "ChainEvent",
    "EventDecoder",
    "Rpc",
    "RpcError",
    "block_timestamps",
    "decoder",
    "fetch_logs",
]


def decoder(deployment: Deployment) -> EventDecoder:
    """The deployment's event decoder, arguments in the native form the replay judges."""
    return EventDecoder(
        deployment.registry, deployment.ledger, native=True, servicing=deployment.servicing
    )


def fetch_logs(
    rpc: Rpc,
    deployment: Deployment,
    to_block: int,
    *,
    step: int = 5_000,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[dict]:
    """The raw logs of both contracts, in chain order, from the deployment block."""
    first = deployment.deployment_block
    addresses = [deployment.registry, deployment.ledger]
    if deployment.servicing:
        addresses.append(deployment.servicing)
    start = first
    while start <= to_block:
        end = min(start + step - 1, to_block)
        try:
            logs = rpc.get_logs(start, end, addresses)
        except RpcError:
            if step == 1:
                raise
            step = max(1, step // 4)  # the node refused the range (too many results): shrink it
            continue
        yield from logs
        if progress:
            progress(end - first + 1, to_block - first + 1)
        start = end + 1
        step = min(step * 2, 50_000)


def block_timestamps(rpc: Rpc, blocks: set[int]) -> dict[int, int]:
    """Timestamps of the given blocks, read in JSON-RPC batches."""
    out: dict[int, int] = {}
    for n, header in rpc.headers(blocks).items():
        if header is None:
            raise RpcError("eth_getBlockByNumber", f"no block {n}")
        out[n] = header.timestamp
    return out
