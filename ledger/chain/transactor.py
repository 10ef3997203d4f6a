"""Transaction plumbing for LedgerClient: fees, local signing, nonces, sending, receipts, retries.

Transactions are built, signed and sent here (no node-side accounts), so the same code runs on
anvil, Hardhat node and a free-gas consortium network. A per-account `NonceManager` hands out
nonces under a lock (safe from threads; asyncio code calls it from one loop), and resynchronises
from the chain after a restart or a dropped transaction. Where several processes send from one
account, `send_lock` serialises `transact` across them, each nonce read afresh under it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractLogicError, Web3RPCError

from ledger.chain.artifacts import Artifacts, load_artifacts
from ledger.chain.connect import DEV_CHAIN_ID, web3_for
from ledger.chain.deployment import Deployment
from ledger.chain.errors import (
    ContractRevert,
    ErrorDecoder,
    LedgerError,
    ReceiptTimeout,
    TransactionFailed,
)
from ledger.chain.reads import ChainReads
from ledger.chain.rpc import Rpc, request
from ledger.chain.rpcutil import is_nonce_race, revert_data
from ledger.domain import to_hex
from ledger.provenance import Domain

FeeMode = Literal["auto", "eip1559", "legacy"]


class NonceManager:
    """Hands out consecutive nonces for one account; thread-safe."""

    def __init__(self, fetch: Callable[[], int]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._next: int | None = None

    def take(self, count: int = 1) -> int:
        """Reserve `count` consecutive nonces and return the first."""
        with self._lock:
            if self._next is None:
                self._next = self._fetch()
            first = self._next
            self._next += count
            return first

    def resync(self) -> int:
        """Forget the local count and start again from the chain's pending nonce."""
        with self._lock:
            self._next = self._fetch()
            return self._next


# What the node going away looks like from here (ChainUnreachable is a ConnectionError).
CHAIN_GONE = (OSError, httpx.TransportError)


@dataclass(frozen=True, slots=True)
class Receipt:
    """A mined transaction's receipt as the node returned it (`raw`, JSON-RPC form); its logs
    are decoded by `LedgerClient.receipt_events`, the one event decoder."""

    tx_hash: str
    block_number: int
    gas_used: int
    status: int
    logs: list[dict]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, tx_hash: str, r: dict[str, Any]) -> Receipt:
        return cls(
            tx_hash=tx_hash,
            block_number=int(r["blockNumber"], 16),
            gas_used=int(r["gasUsed"], 16),
            status=int(r["status"], 16),
            logs=r["logs"],
            raw=r,
        )


@dataclass(frozen=True, slots=True)
class OriginateResult:
    loan_id: bytes
    tx_hash: str | None
    block_number: int
    gas_used: int
    already_recorded: bool = False


class Transactor(ChainReads):
    """One account's connection to a deployment: the plumbing under LedgerClient."""

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        account: LocalAccount | None = None,
        *,
        fee_mode: FeeMode = "auto",
        receipt_timeout: float = 60.0,
        poll_interval: float = 0.02,
        artifacts: Artifacts | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self.w3 = web3_for(rpc_url)
        self.deployment = deployment
        self.account = account
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        art = artifacts or load_artifacts()
        self._artifacts = art
        self._events = None
        self.registry = self.w3.eth.contract(
            address=deployment.registry, abi=art["ConsortiumRegistry"].abi
        )
        self.ledger = self.w3.eth.contract(
            address=deployment.ledger, abi=art["CoLendingLedger"].abi
        )
        self.servicing = self.w3.eth.contract(
            address=deployment.servicing or None, abi=art["LoanServicing"].abi
        )
        # the council and its timelock (empty addresses in a pre-council deployment file)
        self.council = self.w3.eth.contract(
            address=deployment.council or None, abi=art["ConsortiumCouncil"].abi
        )
        self.timelock = self.w3.eth.contract(
            address=deployment.timelock or None, abi=art["TimelockController"].abi
        )
        self.errors = ErrorDecoder(
            art["CoLendingLedger"].abi,
            art["ConsortiumRegistry"].abi,
            art["ConsortiumCouncil"].abi,
            art["TimelockController"].abi,
            art["LoanServicing"].abi,
        )
        self.domain = Domain(deployment.chain_id, deployment.ledger)
        self._fee_mode = fee_mode
        self._fees: dict[str, int] | None = None
        self._rpc = Rpc(rpc_url, timeout=60)  # raw reads and batches beside web3
        self.nonces = NonceManager(self._pending_nonce) if account else None
        # Set when other processes send from the same account: `transact` then builds, signs and
        # sends under it, with the nonce read afresh from the chain (a context-manager factory).
        self.send_lock: Callable[[], AbstractContextManager[Any]] | None = None
        self.max_attempts = 12
        self.retry_backoff = 0.25
        self._retry_lock = threading.Lock()
        self.retried: list[str] = []  # what was retried, e.g. "originate 0x1234…", for reports
        self.receipt_latencies: list[float] = []  # seconds, pipelined submissions
        self.interrupted = False  # set when the node stopped answering mid-transaction
        self._output_types = {}
        self._encoders = {}

    # ------------------------------------------------------------------ plumbing

    @property
    def address(self) -> str:
        if self.account is None:
            raise LedgerError("this client has no signing account (read-only)")
        return self.account.address

    def _pending_nonce(self) -> int:
        return self.w3.eth.get_transaction_count(self.address, "pending")

    def fees(self, refresh: bool = False) -> dict[str, int]:
        """Fee fields for a transaction: EIP-1559 where the chain has a base fee, else legacy.
        A free-gas network (gas price 0) gets zero fees."""
        if self._fees is not None and not refresh:
            return self._fees
        mode = self._fee_mode
        block = self.w3.eth.get_block("latest")
        base = block.get("baseFeePerGas")
        if mode == "auto":
            mode = "eip1559" if base is not None else "legacy"
        if mode == "eip1559":
            base = int(base or 0)
            try:
                tip = int(self.w3.eth.max_priority_fee)
            except Exception:  # noqa: BLE001 - nodes without eth_maxPriorityFeePerGas
                tip = 0
            # a free-gas network (base fee 0) needs no tip; elsewhere cap it at 1 gwei
            tip = min(tip, 10**9) if base else 0
            self._fees = {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}
        else:
            self._fees = {"gasPrice": int(self.w3.eth.gas_price)}
        return self._fees

    def build(
        self,
        contract: Any,
        fn: str,
        args: Sequence[Any],
        gas: int | None = None,
        nonce: int | None = None,
    ) -> dict:
        """An unsigned transaction calling `fn`. Without `gas` it is estimated, which also
        surfaces a revert as a typed exception before anything is sent."""
        data = self._calldata(contract, fn, args)
        tx: dict[str, Any] = {
            "from": self.address,
            "to": contract.address,
            "data": data,
            "value": 0,
            "chainId": self.deployment.chain_id,
        }
        if gas is None:
            gas = self.estimate(tx)
        tx["gas"] = gas
        tx.update(self.fees())
        tx["nonce"] = self.nonces.take() if nonce is None else nonce  # type: ignore[union-attr]
        return tx

    def estimate(self, tx: dict) -> int:
        try:
            est = self.w3.eth.estimate_gas({k: v for k, v in tx.items() if k != "chainId"})
        except ContractLogicError as exc:
            raise self.errors.decode(exc.data) from None
        # Estimates track the exact path; a margin covers storage warmed by earlier pending txs.
        return int(est * 1.2) + 10_000

    def sign(self, tx: dict) -> bytes:
        return bytes(self.account.sign_transaction(tx).raw_transaction)  # type: ignore[union-attr]

    def send_raw(self, raw: bytes) -> str:
        """Send a signed transaction. A node that executes on receipt (Hardhat) reports a revert
        here: it is decoded like any other."""
        try:
            return self.w3.eth.send_raw_transaction(raw).to_0x_hex()
        except Web3RPCError as exc:
            data = revert_data(exc)
            if data is not None:
                raise self.errors.decode(data) from None
            raise

    def send_raw_batch(self, raws: Sequence[bytes]) -> list[str | LedgerError]:
        """Send many signed transactions in one JSON-RPC batch (web3's batching is read-only)."""
        body = [request("eth_sendRawTransaction", [to_hex(r)], i) for i, r in enumerate(raws)]
        replies = self._post(body, write=True)
        out: list[str | LedgerError] = [LedgerError("no response")] * len(raws)
        for item in replies:
            i = item["id"]
            if "error" in item:
                out[i] = LedgerError(str(item["error"].get("message")))
            else:
                out[i] = item["result"]
        return out

    def wait(self, tx_hash: str, timeout: float | None = None) -> Receipt:
        """Wait for a receipt; a failed transaction raises its decoded revert."""
        deadline = time.monotonic() + (timeout or self.receipt_timeout)
        idle_since = time.monotonic()
        while True:
            reply = self._post(request("eth_getTransactionReceipt", [tx_hash]))
            r = reply.get("result")
            if r:
                break
            if time.monotonic() > deadline:
                raise ReceiptTimeout(
                    f"no receipt for {tx_hash} after {timeout or self.receipt_timeout}s"
                )
            idle_since = self._nudge_if_idle(idle_since)
            time.sleep(self.poll_interval)
        receipt = Receipt.from_json(tx_hash, r)
        if receipt.status != 1:
            raise self._failure(tx_hash, receipt)
        return receipt

    def _failure(self, tx_hash: str, receipt: Receipt) -> LedgerError:
        """The decoded revert of a mined, failed transaction. The node's own trace gives the
        revert data as it happened (a replay at the parent block can judge time-bound rules at
        another timestamp); a replay with eth_call is the fallback for nodes without tracing."""
        try:
            trace = self.w3.provider.make_request(
                "debug_traceTransaction",
                [tx_hash, {"disableStorage": True, "disableStack": True, "disableMemory": True}],
            )
            data = (trace.get("result") or {}).get("returnValue")
            if data:
                return self.errors.decode(data if data.startswith("0x") else "0x" + data)
        except Exception:  # noqa: BLE001 - tracing is optional on production nodes
            pass
        tx = self.w3.eth.get_transaction(tx_hash)
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self.w3.eth.call(call, receipt.block_number - 1)
        except ContractLogicError as exc:
            return self.errors.decode(exc.data)
        except Exception:  # noqa: BLE001 - nodes that cannot replay; fall through
            pass
        return TransactionFailed(f"transaction {tx_hash} failed in block {receipt.block_number}")

    @contextmanager
    def _sending(self) -> Iterator[None]:
        if self.send_lock is None:
            yield
            return
        with self.send_lock():
            self.nonces.resync()  # type: ignore[union-attr]
            yield

    def transact(
        self,
        contract: Any,
        fn: str,
        *args: Any,
        gas: int | None = None,
        landed: Callable[[], bool] | None = None,
        label: str | None = None,
    ) -> Receipt | None:
        """Build, sign, send and wait, retrying what a restart or a race can cause.

        A connection failure, a lost transaction (no receipt in time) or a nonce race is retried
        after resynchronising the nonce. Once a transaction may have reached the node, it is only
        sent again when `landed` is given and says the record is not on chain: that is what makes
        a retry idempotent. Returns None when `landed` found the record already there.
        """
        attempt = 0
        sent = False
        while True:
            attempt += 1
            try:
                if landed is not None and landed():
                    return None
                with self._sending():
                    tx = self.build(contract, fn, args, gas=gas)
                    raw = self.sign(tx)
                    sent = True
                    tx_hash = self.send_raw(raw)
                return self.wait(tx_hash)
            except ContractRevert:
                raise
            except (OSError, httpx.TransportError, ReceiptTimeout, Web3RPCError) as exc:
                race = isinstance(exc, Web3RPCError)
                if race and not is_nonce_race(exc):
                    raise
                if sent and not race and landed is None:
                    raise
                if attempt >= self.max_attempts:
                    raise LedgerError(f"{fn}: gave up after {attempt} attempts: {exc}") from exc
                with self._retry_lock:
                    self.retried.append(label or fn)
                    if not race:
                        # the node went away: what it acknowledged just before may not have
                        # survived its restart (see LedgerClient.reconcile_recent)
                        self.interrupted = True
                time.sleep(self.retry_backoff * min(attempt, 8))
                try:
                    self.nonces.resync()  # type: ignore[union-attr]
                except (OSError, httpx.TransportError):
                    pass  # the node is still down; the next attempt finds out

    def _nudge_if_idle(self, idle_since: float, after: float = 0.25) -> float:
        """On a local dev chain, mine a block when receipts stop coming: anvil's automine can
        leave ready transactions unmined until another one arrives (foundry-rs/foundry#10122),
        which stalled pipelined runs for the whole receipt timeout. Real networks are left
        alone. Returns the new idle start."""
        if self.deployment.chain_id != DEV_CHAIN_ID or time.monotonic() - idle_since < after:
            return idle_since
        try:
            self.w3.provider.make_request("evm_mine", [])
        except Exception:  # noqa: BLE001 - a node without evm_mine: keep waiting
            pass
        return time.monotonic()

    def _receipts(
        self, hashes: dict[int, str], sent_at: float | None = None
    ) -> dict[int, Receipt | LedgerError]:
        """Poll receipts for many transactions with JSON-RPC batches until all are mined.
        With `sent_at`, each receipt's submit-to-receipt time joins `receipt_latencies`."""
        pending = dict(hashes)
        out: dict[int, Receipt | LedgerError] = {}
        deadline = time.monotonic() + self.receipt_timeout
        idle_since, seen = time.monotonic(), 0
        while pending:
            body = [request("eth_getTransactionReceipt", [h], i) for i, h in pending.items()]
            for item in self._post(body):
                r = item.get("result")
                if not r:
                    continue
                i = item["id"]
                receipt = Receipt.from_json(pending[i], r)
                out[i] = receipt if receipt.status == 1 else self._failure(pending[i], receipt)
                del pending[i]
                if sent_at is not None:
                    self.receipt_latencies.append(time.monotonic() - sent_at)
            if pending:
                if progressed := len(out) != seen:
                    seen = len(out)
                    idle_since = time.monotonic()
                if not progressed:
                    idle_since = self._nudge_if_idle(idle_since)
                if time.monotonic() > deadline:
                    for i, h in pending.items():
                        out[i] = ReceiptTimeout(f"no receipt for {h}")
                    break
                time.sleep(self.poll_interval)
        return out
