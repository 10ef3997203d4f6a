"""Pipelined origination: many co-loans in flight at once, each with its own outcome.

A mixin of LedgerClient, split out of it because it is the one throughput path: nonces reserved
up front, transactions signed locally and sent in JSON-RPC batches, receipts collected a chunk
behind. What it cannot settle falls back to LedgerClient.originate, idempotent by loan id.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ledger.chain.errors import ContractRevert, LedgerError, ReceiptTimeout
from ledger.chain.rpc import request
from ledger.chain.transactor import CHAIN_GONE, OriginateResult, Receipt, Transactor
from ledger.domain import CoLoan
from ledger.provenance import pack_signatures


class PipelinedOrigination(Transactor):
    """LedgerClient's pipelined and batched origination (a mixin: `originate` and
    `existing_loan` are the client's own)."""

    def originate(
        self, loan: CoLoan, signatures: Sequence[bytes], *, gas: int | None = None
    ) -> OriginateResult:
        raise NotImplementedError  # LedgerClient.originate

    def existing_loan(self, loan: CoLoan) -> OriginateResult | None:
        raise NotImplementedError  # LedgerClient.existing_loan

    def remember(self, recorded: Sequence[tuple[CoLoan, Sequence[bytes]]]) -> None:
        raise NotImplementedError  # LedgerClient.remember

    def missing(self, loans: Sequence[CoLoan], per_call: int = 500) -> list[int]:
        raise NotImplementedError  # LedgerClient.missing

    def originate_pipelined(
        self,
        items: Sequence[tuple[CoLoan, Sequence[bytes]]],
        *,
        gas: int | None = None,
        chunk: int = 200,
        per_tx: int = 1,
        window: int = 1,
        estimate_each: bool = False,
        on_sent: Callable[[list[bytes], str], None] | None = None,
    ) -> list[OriginateResult | LedgerError]:
        """Record many co-loans without waiting in between: consecutive nonces are reserved up
        front, every transaction is signed locally, sent in JSON-RPC batches, and the receipts
        are collected afterwards. Each item gets its own outcome: the recorded loan or the typed
        revert. Anything that could not be sent, or whose transaction failed as a whole, is
        retried one by one through `originate`, which is idempotent by loan id.

        With `per_tx` = 1 each loan is its own `originate` transaction. With more, each
        transaction is a non-atomic `originateBatch` of that many loans: a loan the contract
        refuses is rejected on its own (its `LoanRejected` reason decoded into the same typed
        error), the others are recorded, and each loan reports its transaction's hash, block and
        an equal share of its gas. `chunk` is how many loans go in one JSON-RPC batch; `window`
        how many chunks may wait for receipts while the next is sent (1 suits automine; an
        interval-mined chain needs a few blocks' worth in its pool to fill every block).

        Without `gas`, the first transaction is estimated and given a margin of 30,000 per loan,
        which covers first-time borrower slots. With `estimate_each`, every transaction is
        measured (one JSON-RPC batch a chunk) and given 10% and 10,000: an interval-mined chain
        packs a block by the gas its transactions declare, so a generous flat margin leaves a
        third of each block empty.

        `on_sent(loan_ids, tx_hash)` hears of each transaction the node accepted, before its
        receipt is awaited (what the platform node shows of its originations in flight).
        """
        if not items:
            return []
        if per_tx < 1:
            raise ValueError("per_tx must be at least 1")
        n = len(items)
        groups = [range(s, min(s + per_tx, n)) for s in range(0, n, per_tx)]
        if gas is None:
            probe = self.build(self.ledger, *self._origination(items, groups[0]), nonce=0)
            gas = probe["gas"] + 30_000 * len(groups[0])
        results: list[OriginateResult | LedgerError | None] = [None] * n
        per_chunk = max(1, chunk // per_tx)
        # One chunk in flight while the previous one's receipts are collected: the new arrivals
        # also keep the node's miner busy, and memory stays bounded by two chunks.
        if window < 1:
            raise ValueError("window must be at least 1")
        in_flight: deque[tuple[dict[int, str], float]] = deque()
        try:
            for start in range(0, len(groups), per_chunk):
                part = groups[start : start + per_chunk]
                first = self.nonces.take(len(part))  # type: ignore[union-attr]
                txs = [
                    self.build(self.ledger, *self._origination(items, g), gas=gas, nonce=first + k)
                    for k, g in enumerate(part)
                ]
                if estimate_each:
                    self._estimate_each(txs, gas)
                raws = [self.sign(tx) for tx in txs]
                sent_at = time.monotonic()
                sent = self.send_raw_batch(raws)
                hashes = {start + k: h for k, h in enumerate(sent) if isinstance(h, str)}
                if on_sent is not None:
                    for g, h in hashes.items():
                        on_sent([items[i][0].loan_id for i in groups[g]], h)
                if len(hashes) != len(sent):
                    self.nonces.resync()  # type: ignore[union-attr]
                if len(in_flight) >= window:
                    self._collect(items, groups, results, *in_flight.popleft())
                in_flight.append((hashes, sent_at))
            while in_flight:
                self._collect(items, groups, results, *in_flight.popleft())
        except CHAIN_GONE:
            # The node went away mid-run: stop pipelining. Whatever has no outcome yet (not
            # sent, sent but lost with the node's pool, or mined but not yet seen) goes through
            # `originate` below, which waits for the node and is idempotent by loan id.
            self.interrupted = gone = True
            with contextlib.suppress(*CHAIN_GONE):
                self.nonces.resync()  # type: ignore[union-attr]
        else:
            gone = False
        settled = [i for i, r in enumerate(results) if isinstance(r, OriginateResult)]
        self._retry_unsettled(items, results, gas if per_tx == 1 else None)
        if gone:
            # A node restarted from a state dump can come back without its last blocks, and
            # with them loans whose receipts this run already holds: each is checked again and
            # sent again if it is gone (the retries above waited until the node was back).
            try:
                lost = [settled[k] for k in self.missing([items[i][0] for i in settled])]
            except CHAIN_GONE:
                lost = []
                self.interrupted = True  # down again: remembered below, checked on a later record
            for i in lost:
                with self._retry_lock:
                    self.retried.append(
                        f"originate 0x{items[i][0].loan_id.hex()} (lost in a restart)"
                    )
                results[i] = None
            self._retry_unsettled(items, results, gas if per_tx == 1 else None, label=False)
        self.remember([items[i] for i, r in enumerate(results) if isinstance(r, OriginateResult)])
        return results  # type: ignore[return-value]

    def _retry_unsettled(
        self,
        items: Sequence[tuple[CoLoan, Sequence[bytes]]],
        results: list[OriginateResult | LedgerError | None],
        gas: int | None,
        *,
        label: bool = True,
    ) -> None:
        """Record one by one, through idempotent `originate`, every item without an outcome."""
        for i, r in enumerate(results):
            if r is None:
                loan, sigs = items[i]
                if label:
                    with self._retry_lock:
                        self.retried.append(f"originate 0x{loan.loan_id.hex()}")
                try:
                    results[i] = self.originate(loan, sigs, gas=gas)
                except LedgerError as exc:
                    results[i] = exc

    def _estimate_each(self, txs: list[dict], fallback: int) -> None:
        """Give each transaction the gas it used in a trial run plus 10% and 10,000 (the flat
        `fallback` where the node could not run it: the contract will judge it)."""
        # eth_createAccessList runs each transaction once and reports the gas it used, where
        # eth_estimateGas searches with a dozen runs (a second a chunk of 20-loan batches)
        body = [
            request(
                "eth_createAccessList",
                [{"from": tx["from"], "to": tx["to"], "data": tx["data"]}, "latest"],
                i,
            )
            for i, tx in enumerate(txs)
        ]
        for item in self._post(body):
            used = (item.get("result") or {}).get("gasUsed")
            fits = used and not item["result"].get("error")
            txs[item["id"]]["gas"] = int(int(used, 16) * 1.1) + 10_000 if fits else fallback

    @staticmethod
    def _origination(
        items: Sequence[tuple[CoLoan, Sequence[bytes]]], group: range
    ) -> tuple[str, list[Any]]:
        """The function and arguments that record `group`: one loan, or a non-atomic batch."""
        if len(group) == 1:
            loan, sigs = items[group.start]
            return "originate", [loan.as_abi(), pack_signatures(sigs), list(loan.schedule)]
        return "originateBatch", [
            [items[i][0].as_abi() for i in group],
            [pack_signatures(items[i][1]) for i in group],
            [list(items[i][0].schedule) for i in group],
            False,
        ]

    def _collect(
        self,
        items: Sequence[tuple[CoLoan, Sequence[bytes]]],
        groups: Sequence[range],
        results: list[OriginateResult | LedgerError | None],
        hashes: dict[int, str],
        sent_at: float,
    ) -> None:
        for g, receipt in self._receipts(hashes, sent_at).items():
            group = groups[g]
            if isinstance(receipt, ReceiptTimeout):
                # stuck behind a nonce the node never took: retried one by one afterwards,
                # once a resync fills the gap (idempotent by loan id)
                self.nonces.resync()  # type: ignore[union-attr]
            elif isinstance(receipt, LedgerError):
                if len(group) == 1:
                    results[group.start] = self._refused(items[group.start][0], receipt)
                # a batch that failed as a whole: each of its loans is retried on its own
            else:
                rejected = self._rejections(receipt) if len(group) > 1 else {}
                share = receipt.gas_used // len(group)
                for i in group:
                    loan = items[i][0]
                    err = rejected.get(loan.loan_id)
                    results[i] = (
                        self._refused(loan, err)
                        if err is not None
                        else OriginateResult(
                            loan.loan_id, receipt.tx_hash, receipt.block_number, share
                        )
                    )

    def _refused(self, loan: CoLoan, err: LedgerError) -> OriginateResult | LedgerError:
        """A refusal, unless it only says that this very loan is already on chain (the id is
        the idempotency key): then it is reported as already recorded, as `originate` does."""
        if isinstance(err, ContractRevert) and err.code == "IdAlreadyUsed":
            return self.existing_loan(loan) or err
        return err

    def _rejections(self, receipt: Receipt) -> dict[bytes, LedgerError]:
        """The loans a non-atomic batch refused, each with its decoded revert."""
        return {
            e.args["loanId"]: self.errors.decode(e.args["reason"])
            for e in self.receipt_events(receipt, "LoanRejected")
        }
