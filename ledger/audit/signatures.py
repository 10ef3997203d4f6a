"""Signer recovery for the replay, on worker threads.

Recovering the signers is the replay's largest cost (DESIGN §8: ≥ 2,000 records/s with every
signature verified, three signatures a record). A recovery depends only on the digest and the
signature, never on the state the replay builds, so the replay computes every record's digest
first, hands all (digest, signature) pairs over at once, and reads the signers back in the same
order while it judges. libsecp256k1's call releases the GIL, so two workers recover on both
cores; most of the rest holds the GIL, which is why the digests are not hashed while the workers
run (each hash would trade the GIL with them) and why the judging overlaps them only in part.
The results do not depend on which worker recovered what.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from ledger.provenance import recover_address

CHUNK = 200  # pairs per task: few tasks, and the judging can start after the first


def _recover_all(digests: list[bytes], signatures: list[bytes]) -> list[bytes | None]:
    return list(map(recover_address, digests, signatures))


class Recovery:
    """Signers of (digest, signature) pairs, read back in the order they were added: the raw
    20-byte address, or None for a signature `ledger.provenance.recover` refuses."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = workers or min(2, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        # two flat lists rather than pairs: thousands of tuples would bring on a full collection
        self._digests: list[bytes] = []
        self._signatures: list[bytes] = []
        self._futures: deque[Future[list[bytes | None]]] = deque()
        self._ready: deque[bytes | None] = deque()

    def add(self, message_digest: bytes, signature: bytes) -> None:
        self._digests.append(message_digest)
        self._signatures.append(signature)

    def start(self) -> None:
        """Recover every pair added so far, in chunks, on the worker threads."""
        if not self._digests:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="audit-recover")
        for i in range(0, len(self._digests), CHUNK):
            part = (self._digests[i : i + CHUNK], self._signatures[i : i + CHUNK])
            self._futures.append(self._pool.submit(_recover_all, *part))
        self._digests, self._signatures = [], []

    def next(self) -> bytes | None:
        """The signer of the oldest pair not read yet."""
        if not self._ready:
            if not self._futures:
                self.start()
            self._ready.extend(self._futures.popleft().result())
        return self._ready.popleft()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Recovery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
