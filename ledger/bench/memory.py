"""Indexer memory over a long history: the peak resident memory of `ledger index` while it
catches up about 1,000,000 events (a node's resident memory must stay bounded while it indexes
1M events: it streams, it does not load everything).

The history is real ledger events from real transactions on anvil, built for volume. The chain
is first quiet for 20,000 blocks, so that the indexer's ranges grow wide before they meet the
busy ones (the case that needs `ledger.ingest.spans.MAX_RANGE_BYTES`). Then come the smallest
co-loans R0 allows, the platform's tranche and one bank's (two signatures each), in atomic
batches of 100, one `LoanOriginated` each, and every 20th
loan repaid in full (`Repaid` and `LoanStatusChanged`). Blocks hold about
2,000 co-loans, the indexer's range target (`ledger.ingest.spans.TARGET_EVENTS`): anvil recomputes
its state root once a block, over the whole state, so small blocks would make the history
slower to build the longer it gets. The chain keeps no historical state (`--prune-history`,
else anvil writes hundreds of MB of states to disk per thousand blocks); the indexer reads only
logs and headers. Building and mining overlap: anvil mines one chunk while the next is signed.

`ledger index` then runs as its own process over all of it into a fresh SQLite file. Its
resident memory is read from /proc twice a second, and the kernel's ru_maxrss gives the peak.

    python -m ledger.bench.memory --events 1000000 --json
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledger.bench.indexer import fresh_database, peak_rss
from ledger.bench.mining import check_receipts, manual_mining
from ledger.chain.abi import Function
from ledger.chain.rpc import Rpc
from ledger.domain import CoLoan, Product, RepaymentType, Tranche, sort_tranches
from ledger.ingest.spans import TARGET_EVENTS
from ledger.localnet.consortium import LocalConsortium, bootstrap, new_id
from ledger.provenance import digest, pack_signatures, sign_digest

PER_TX = 100
REPAY_EVERY = 20
BORROWERS = 20_000  # each borrows about 50 times: well inside the consumer cap
CHUNK = 10_000  # loans signed while the chunk before is mined
QUIET_BLOCKS = 20_000
_LOAN_GAS = 100_000  # a new borrower's two-tranche loan in a batch costs about 92,400
_REPAY_GAS = 300_000


def loans_for(events: int) -> int:
    """Loans whose history (each loan one event, each repaid one two more) holds `events`."""
    return -(-events * REPAY_EVERY // (REPAY_EVERY + 2))


def _tx_gas(n: int) -> int:
    return _LOAN_GAS * n + 200_000


def block_gas_limit() -> int:
    """Room for TARGET_EVENTS co-loans a block (the repayments among them ride along)."""
    return TARGET_EVENTS // PER_TX * _tx_gas(PER_TX) + 20 * _REPAY_GAS


def chain_args() -> list[str]:
    return [
        "--prune-history",
        "--gas-limit", str(block_gas_limit()),
        "--block-base-fee-per-gas", "0",
        "--no-request-size-limit",
    ]  # fmt: skip


class _Builder:
    """Signed raw transactions for the history, chunk by chunk."""

    def __init__(self, cx: LocalConsortium) -> None:
        self.client = cx.plat
        self.platform = cx.platform.address
        self.key = bytes(cx.platform.key)
        # one bank co-funds every loan (R0): with the platform, two institutions per borrower
        self.bank = cx.lenders[0].address
        self.bank_key = bytes(cx.lenders[0].key)
        self.domain = self.client.domain
        self.ledger = self.client.ledger.address
        self.originate = Function(self.client.ledger.abi, "originateBatch")
        self.repay = Function(self.client.ledger.abi, "repay")
        self.borrowers = [new_id("borrower") for _ in range(BORROWERS)]
        self.nonce = self.client.w3.eth.get_transaction_count(self.platform, "pending")
        self.deadline = cx.now() + 86_400
        self.loans = 0
        self.repayments = 0

    def _raw(self, data: str, gas: int) -> tuple[bytes, int]:
        tx = {
            "from": self.platform,
            "to": self.ledger,
            "data": data,
            "value": 0,
            "chainId": self.domain.chain_id,
            "gas": gas,
            "maxFeePerGas": 10**9,  # the chain has no base fee: nothing is charged
            "maxPriorityFeePerGas": 0,
            "nonce": self.nonce,
        }
        self.nonce += 1
        return self.client.sign(tx), gas

    def _signatures(self, loan: CoLoan) -> bytes:
        d = digest(self.domain, loan)
        keys = {self.platform: self.key, self.bank: self.bank_key}
        return pack_signatures([sign_digest(keys[t.lender], d) for t in loan.tranches])

    def chunk(self, n: int) -> list[tuple[bytes, int]]:
        """Signed transactions and the gas each declares, in nonce order."""
        raws: list[tuple[bytes, int]] = []
        for start in range(0, n, PER_TX):
            group: list[CoLoan] = []
            for i in range(self.loans, self.loans + min(PER_TX, n - start)):
                principal = 10_000 + (i % 1_000) * 100
                mine = principal * 4 // 10
                group.append(
                    CoLoan(
                        loan_id=new_id("loan", self.platform),
                        borrower_key=self.borrowers[i % BORROWERS],
                        platform=self.platform,
                        product=Product.CONSUMER,
                        principal=principal,
                        apr_bps=1_200,
                        term_days=180,
                        repayment=RepaymentType.INSTALMENT,
                        deadline=self.deadline,
                        tranches=sort_tranches(
                            [Tranche(self.platform, mine), Tranche(self.bank, principal - mine)]
                        ),
                    )
                )
            sigs = [self._signatures(ln) for ln in group]
            abi = [ln.as_abi() for ln in group]
            raws.append(
                self._raw(
                    self.originate.data(abi, sigs, [list(ln.schedule) for ln in group], True),
                    _tx_gas(len(group)),
                )
            )
            for i, ln in enumerate(group, start=self.loans):
                if i % REPAY_EVERY == REPAY_EVERY - 1:  # after its loan: the nonce orders them
                    data = self.repay.data(
                        abi[i - self.loans], new_id("repay", self.platform), ln.principal, 99
                    )
                    raws.append(self._raw(data, _REPAY_GAS))
                    self.repayments += 1
            self.loans += len(group)
        return raws


def _mine(rpc: Rpc, txs: list[tuple[bytes, int]]) -> int:
    """Send and mine `txs` a block at a time, then check every receipt. Returns the gas used.

    A block is given only what fits its gas limit: anvil, mining a pool that holds more, leaves
    out the first transaction that does not fit and then drops every later one of the same
    sender as invalid (a nonce gap), where a smaller one would still have fitted."""
    limit = block_gas_limit()
    hashes: list[str] = []
    start = 0
    while start < len(txs):
        end, room = start, limit
        while end < len(txs) and txs[end][1] <= room:
            room -= txs[end][1]
            end += 1
        hashes += rpc.batch(
            [("eth_sendRawTransaction", ["0x" + r.hex()]) for r, _ in txs[start:end]]
        )
        rpc.call("evm_mine")
        start = end
    if int(rpc.call("txpool_status")["pending"], 16):
        raise RuntimeError("transactions are still pending after their blocks were mined")
    return sum(int(r["gasUsed"], 16) for r in check_receipts(rpc, hashes))


def record_history(
    rpc_url: str, cx: LocalConsortium, loans: int, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Record `loans` co-loans (and their repayments); one thread mines while this one signs."""
    builder = _Builder(cx)
    chunks: queue.Queue[list[tuple[bytes, int]] | None] = queue.Queue(maxsize=1)
    failure: list[BaseException] = []
    gas = [0]

    def miner() -> None:
        with Rpc(rpc_url, timeout=600) as rpc:
            while (raws := chunks.get()) is not None:
                if not failure:
                    try:
                        gas[0] += _mine(rpc, raws)
                    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                        failure.append(exc)

    with Rpc(rpc_url) as rpc:
        first = rpc.block_number() + 1
        with manual_mining(rpc):
            t0 = time.perf_counter()
            worker = threading.Thread(target=miner, name="bench-miner", daemon=True)
            worker.start()
            try:
                while builder.loans < loans and not failure:
                    chunks.put(builder.chunk(min(CHUNK, loans - builder.loans)))
                    if progress:
                        progress(f"history: {builder.loans:,} of {loans:,} loans signed")
            finally:
                chunks.put(None)
                worker.join()
        if failure:
            raise failure[0]
        seconds = time.perf_counter() - t0
        head = rpc.block_number()
    return {
        "loans": builder.loans,
        "repayments": builder.repayments,
        "blocks": head - first + 1,
        "gas_used": gas[0],
        "seconds": round(seconds, 1),
        "records_per_s": round((builder.loans + builder.repayments) / seconds),
    }


def run(events: int = 1_000_000, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    from ledger.localnet.chains import LocalChain

    with LocalChain("anvil", extra_args=chain_args()) as chain:
        cx = bootstrap(chain.url)
        try:
            with Rpc(chain.url) as rpc:
                rpc.call("anvil_mine", [hex(QUIET_BLOCKS), "0x0"])
            history = {"quiet_blocks": QUIET_BLOCKS}
            history |= record_history(chain.url, cx, loans_for(events), progress)
            if progress:
                progress(f"indexing {events:,} events")
            with tempfile.TemporaryDirectory() as d, fresh_database("sqlite", None) as url:
                mem = peak_rss(chain.url, cx, url, Path(d), sample_every=0.5)
        finally:
            cx.reset_clients()
    samples = mem.pop("samples")
    half = len(samples) // 2
    return {
        **mem,
        "history": history,
        "database": "sqlite",
        "events_per_s": round(mem["events"] / mem["seconds"]),
        # bounded memory shows as the second half of the catch-up peaking no higher than the first
        "peak_rss_mb_first_half": max((s for _, s in samples[:half]), default=None),
        "peak_rss_mb_second_half": max((s for _, s in samples[half:]), default=None),
        "rss_mb_by_elapsed_tenth": _tenths(samples),
    }


def _tenths(samples: Sequence[tuple[float, float]]) -> list[float]:
    """The resident memory at each tenth of the catch-up's duration."""
    if not samples:
        return []
    end = samples[-1][0]
    return [next(s for t, s in samples if t >= end * k / 10) for k in range(1, 11)]


def _main_events(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _main_events(argv)
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr))
    result = run(args.events, progress=say)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
