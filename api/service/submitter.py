"""The platform node's one way onto the chain for co-loans: concurrent requests share
transactions.

Each request thread hands its signed loans to `Submitter.originate_many` and waits. One thread
sends whatever has queued as one pipelined round (`LedgerClient.originate_pipelined`: non-atomic
`originateBatch` transactions of `per_tx` loans, signed locally, sent in one JSON-RPC batch,
receipts collected after), so 32 clients asking for one loan each cost a few transactions, not
32, and several batch requests fill the same transactions. While a round waits for its receipts
the next requests queue. A round that would not fill one transaction waits up to `linger_s`
(20 ms by default) for more, as Nagle's algorithm does: one loan at a time from 32 clients made
a block for every four loans without it, and every block costs each node's indexer a poll and
the chain node a block (anvil 1.7 rebuilds its whole state trie for each: after 10,000 loans
that was a third of the machine). Each loan still gets its own outcome: recorded (or found
already recorded under its id), or its own decoded refusal.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

from api.service.inflight import QUEUED, SUBMITTED, InFlight
from ledger.chain.client import LedgerClient
from ledger.chain.errors import ContractRevert, LedgerError
from ledger.chain.transactor import OriginateResult
from ledger.domain import CoLoan, to_hex

log = logging.getLogger("api.submitter")

Item = tuple[CoLoan, Sequence[bytes]]
Outcome = OriginateResult | LedgerError

#: loans per originateBatch transaction: the chain path's (README, `per_tx=20`)
PER_TX = 20
#: loans per round at most (one JSON-RPC batch of raw transactions)
ROUND = 400


class Submitter:
    def __init__(
        self,
        client: LedgerClient,
        per_tx: int = PER_TX,
        inflight: InFlight | None = None,
        linger_s: float = 0.0,
    ) -> None:
        self.client = client
        self.per_tx = per_tx
        self.linger_s = linger_s
        # what the node's requests are working on: here, queued and then submitted with a hash
        self.inflight = inflight or InFlight()
        self._queue: queue.SimpleQueue[tuple[list[Item], Future[list[Outcome]]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._per_loan: int | None = None  # most gas a recorded loan's share has used
        self._tranches = 0  # most tranches a loan in those transactions had

    def originate_many(self, items: list[Item]) -> list[Outcome]:
        """Each item's outcome, in order, once it has been sent with whatever else was queued."""
        if not items:
            return []
        fut: Future[list[Outcome]] = Future()
        self._start()
        self.inflight.mark([to_hex(loan.loan_id) for loan, _s in items], QUEUED)
        self._queue.put((items, fut))
        return fut.result()

    def originate(self, loan: CoLoan, signatures: Sequence[bytes]) -> OriginateResult:
        """One loan; its refusal is raised."""
        (outcome,) = self.originate_many([(loan, signatures)])
        if isinstance(outcome, LedgerError):
            raise outcome
        return outcome

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="submitter", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            waiting = [first]
            size = len(first[0])
            until = time.monotonic() + self.linger_s
            while size < ROUND:  # everything queued meanwhile goes in this round
                try:
                    left = until - time.monotonic()
                    if size < self.per_tx and left > 0:  # not one full transaction yet
                        more = self._queue.get(timeout=left)
                    else:
                        more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this round
                    break
                waiting.append(more)
                size += len(more[0])
            items = [i for its, _f in waiting for i in its]
            try:
                outcomes = self._send(items)
            except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
                for _its, fut in waiting:
                    fut.set_exception(exc)
                continue
            k = 0
            for its, fut in waiting:
                fut.set_result(outcomes[k : k + len(its)])
                k += len(its)

    def _gas(self, items: list[Item]) -> int | None:
        """Each transaction's gas from what earlier rounds used, or None to estimate: an
        estimate runs the round's first transaction in the chain node once more, half of a
        small round's time. The bound is the largest share a loan has used so far, a quarter
        over it, plus the new-borrower margin the estimate adds; a round with a loan of more
        tranches than any seen yet is estimated. A transaction that runs out anyway fails as
        a whole and each of its loans is retried on its own (`originate_pipelined`), so a
        bound too low costs time, never a loan."""
        most = max(len(loan.tranches) for loan, _s in items)
        if self._per_loan is None or most > self._tranches:
            return None
        return min(len(items), self.per_tx) * (self._per_loan * 5 // 4 + 30_000)

    def _learn(self, items: list[Item], outcomes: list[Outcome]) -> None:
        shares = [o.gas_used for o in outcomes if isinstance(o, OriginateResult) and o.gas_used]
        if shares:
            self._per_loan = max(self._per_loan or 0, *shares)
            self._tranches = max(self._tranches, *(len(loan.tranches) for loan, _s in items))

    def _sent(self, loan_ids: list[bytes], tx_hash: str) -> None:
        self.inflight.mark([to_hex(i) for i in loan_ids], SUBMITTED, tx_hash)

    def _send(self, items: list[Item]) -> list[Outcome]:
        try:
            outcomes = self.client.originate_pipelined(
                items, per_tx=self.per_tx, gas=self._gas(items), on_sent=self._sent
            )
        except ContractRevert:
            # the gas estimate of the round's first transaction reverted (a lone loan the
            # contract refuses): each one on its own instead, each with its own outcome
            out: list[Outcome] = []
            for loan, sigs in items:
                self.inflight.mark([to_hex(loan.loan_id)], SUBMITTED)
                try:
                    out.append(self.client.originate(loan, sigs))
                except LedgerError as exc:
                    out.append(exc)
            return out
        self._learn(items, outcomes)
        return outcomes
