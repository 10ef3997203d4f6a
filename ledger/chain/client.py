"""LedgerClient: typed access to the registry and the ledger, signing locally with a member's key.

Transactions are built, signed and sent here (no node-side accounts), so the same code runs on
anvil, Hardhat node and a free-gas consortium network. A per-account `NonceManager` hands out
nonces under a lock (safe from threads; asyncio code calls it from one loop), and resynchronises
from the chain after a restart or a dropped transaction. Loan, line and repayment ids are the
idempotency keys: a record found on chain with the same terms is reported as already recorded,
never sent twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from ledger.chain.artifacts import Artifacts, load_artifacts
from ledger.chain.deployment import Deployment
from ledger.chain.errors import (
    ContractRevert,
    ErrorDecoder,
    LedgerError,
    ReceiptTimeout,
    TransactionFailed,
)
from ledger.domain import CoLoan, CreditLine, LoanStatus, Policy
from ledger.provenance import Domain

FeeMode = Literal["auto", "eip1559", "legacy"]

# Node answers that mean "this nonce is taken or out of order": resynchronise and send again.
_NONCE_RACE = (
    "nonce too low",
    "nonce too high",
    "already known",
    "replacement transaction underpriced",
    "transaction already imported",
    "known transaction",
)


def _is_nonce_race(exc: Exception) -> bool:
    return any(m in str(exc).lower() for m in _NONCE_RACE)


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


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_number: int
    gas_used: int
    status: int
    logs: list[dict]
    raw: Any


@dataclass(frozen=True, slots=True)
class OriginateResult:
    loan_id: bytes
    tx_hash: str | None
    block_number: int
    gas_used: int
    already_recorded: bool = False


class LedgerClient:
    """One member's connection to a deployment."""

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
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
        self.deployment = deployment
        self.account = account
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        art = artifacts or load_artifacts()
        self.registry = self.w3.eth.contract(
            address=deployment.registry, abi=art["ConsortiumRegistry"].abi
        )
        self.ledger = self.w3.eth.contract(
            address=deployment.ledger, abi=art["CoLendingLedger"].abi
        )
        self.errors = ErrorDecoder(art["CoLendingLedger"].abi, art["ConsortiumRegistry"].abi)
        self.domain = Domain(deployment.chain_id, deployment.ledger)
        self._fee_mode = fee_mode
        self._fees: dict[str, int] | None = None
        self._http = httpx.Client(timeout=60)
        self.nonces = NonceManager(self._pending_nonce) if account else None
        self.max_attempts = 12
        self.retry_backoff = 0.25
        self._retry_lock = threading.Lock()
        self.retried: list[str] = []  # what was retried, e.g. "originate 0x1234…", for reports

    # ------------------------------------------------------------------ plumbing

    @property
    def address(self) -> str:
        if self.account is None:
            raise LedgerError("this client has no signing account (read-only)")
        return self.account.address

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        data = contract.encode_abi(fn, args=list(args))
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
        return self.w3.eth.send_raw_transaction(raw).to_0x_hex()

    def send_raw_batch(self, raws: Sequence[bytes]) -> list[str | LedgerError]:
        """Send many signed transactions in one JSON-RPC batch (web3's batching is read-only)."""
        body = [
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_sendRawTransaction",
                "params": ["0x" + r.hex()],
            }
            for i, r in enumerate(raws)
        ]
        resp = self._http.post(self.rpc_url, json=body)
        resp.raise_for_status()
        out: list[str | LedgerError] = [LedgerError("no response")] * len(raws)
        for item in resp.json():
            i = item["id"]
            if "error" in item:
                out[i] = LedgerError(str(item["error"].get("message")))
            else:
                out[i] = item["result"]
        return out

    def wait(self, tx_hash: str, timeout: float | None = None) -> Receipt:
        """Wait for a receipt; a failed transaction raises its decoded revert."""
        deadline = time.monotonic() + (timeout or self.receipt_timeout)
        while True:
            try:
                r = self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                r = None
            if r is not None:
                break
            if time.monotonic() > deadline:
                raise ReceiptTimeout(
                    f"no receipt for {tx_hash} after {timeout or self.receipt_timeout}s"
                )
            time.sleep(self.poll_interval)
        receipt = Receipt(
            tx_hash=tx_hash,
            block_number=r["blockNumber"],
            gas_used=r["gasUsed"],
            status=r["status"],
            logs=list(r["logs"]),
            raw=r,
        )
        if receipt.status != 1:
            raise self._failure(tx_hash, receipt)
        return receipt

    def _failure(self, tx_hash: str, receipt: Receipt) -> LedgerError:
        tx = self.w3.eth.get_transaction(tx_hash)
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self.w3.eth.call(call, receipt.block_number - 1)
        except ContractLogicError as exc:
            return self.errors.decode(exc.data)
        except Exception:  # noqa: BLE001 - nodes that cannot replay; fall through
            pass
        return TransactionFailed(f"transaction {tx_hash} failed in block {receipt.block_number}")

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
                tx = self.build(contract, fn, args, gas=gas)
                raw = self.sign(tx)
                sent = True
                return self.wait(self.send_raw(raw))
            except ContractRevert:
                raise
            except (OSError, ReceiptTimeout, Web3RPCError) as exc:
                race = isinstance(exc, Web3RPCError)
                if race and not _is_nonce_race(exc):
                    raise
                if sent and not race and landed is None:
                    raise
                if attempt >= self.max_attempts:
                    raise LedgerError(f"{fn}: gave up after {attempt} attempts: {exc}") from exc
                with self._retry_lock:
                    self.retried.append(label or fn)
                time.sleep(self.retry_backoff * min(attempt, 8))
                try:
                    self.nonces.resync()  # type: ignore[union-attr]
                except OSError:
                    pass  # the node is still down; the next attempt finds out

    def call(self, contract: Any, fn: str, *args: Any, block: int | str = "latest") -> Any:
        try:
            return getattr(contract.functions, fn)(*args).call(block_identifier=block)
        except ContractLogicError as exc:
            raise self.errors.decode(exc.data) from None

    # ------------------------------------------------------------------ registry (governor)

    def admit_member(
        self, account: str, role: int, name: str, licence_hash: bytes = b"\0" * 32
    ) -> Receipt:
        return self.transact(
            self.registry,
            "admitMember",
            to_checksum_address(account),
            int(role),
            name,
            licence_hash,
        )

    def suspend_member(self, account: str) -> Receipt:
        return self.transact(self.registry, "suspendMember", to_checksum_address(account))

    def reinstate_member(self, account: str) -> Receipt:
        return self.transact(self.registry, "reinstateMember", to_checksum_address(account))

    def remove_member(self, account: str) -> Receipt:
        return self.transact(self.registry, "removeMember", to_checksum_address(account))

    def set_frozen(self, account: str, frozen: bool) -> Receipt:
        return self.transact(self.registry, "setFrozen", to_checksum_address(account), frozen)

    def pause(self) -> Receipt:
        return self.transact(self.registry, "pause")

    def unpause(self) -> Receipt:
        return self.transact(self.registry, "unpause")

    def set_policy(self, policy: Policy) -> Receipt:
        return self.transact(self.registry, "setPolicy", policy.as_abi())

    def transfer_governor(self, new_governor: str) -> Receipt:
        return self.transact(self.registry, "transferOwnership", to_checksum_address(new_governor))

    def accept_governor(self) -> Receipt:
        return self.transact(self.registry, "acceptOwnership")

    # ------------------------------------------------------------------ registry (lender)

    def attest_capital(
        self, tier1_capital: int, total_loan_balance: int, valid_until: int
    ) -> Receipt:
        return self.transact(
            self.registry, "attestCapital", tier1_capital, total_loan_balance, valid_until
        )

    # ------------------------------------------------------------------ ledger (platform)

    def originate(
        self, loan: CoLoan, signatures: Sequence[bytes], *, gas: int | None = None
    ) -> OriginateResult:
        """Record one co-loan; if a loan with this id and these terms is already on chain, report
        it as already recorded instead of sending again."""
        try:
            receipt = self.transact(
                self.ledger,
                "originate",
                loan.as_abi(),
                list(signatures),
                gas=gas,
                landed=lambda: self.existing_loan(loan) is not None,
                label=f"originate 0x{loan.loan_id.hex()}",
            )
        except ContractRevert as exc:
            # a transaction that looked lost but landed after all: the id is ours, with our terms
            if exc.code == "IdAlreadyUsed" and (found := self.existing_loan(loan)) is not None:
                return found
            raise
        if receipt is None:
            return OriginateResult(loan.loan_id, None, 0, 0, already_recorded=True)
        return OriginateResult(
            loan.loan_id, receipt.tx_hash, receipt.block_number, receipt.gas_used
        )

    def existing_loan(self, loan: CoLoan) -> OriginateResult | None:
        from ledger.provenance import commitment

        commit, _outstanding, status = self.call(self.ledger, "loanState", loan.loan_id)
        if status == 0:
            return None
        if bytes(commit) != commitment(loan):
            return None  # a different loan owns this id: let the contract refuse it
        return OriginateResult(loan.loan_id, None, 0, 0, already_recorded=True)

    def originate_batch(
        self,
        loans: Sequence[CoLoan],
        signatures: Sequence[Sequence[bytes]],
        *,
        atomic: bool,
        gas: int | None = None,
    ) -> Receipt:
        return self.transact(
            self.ledger,
            "originateBatch",
            [ln.as_abi() for ln in loans],
            [list(s) for s in signatures],
            atomic,
            gas=gas,
        )

    def grant_line(
        self, line: CreditLine, signatures: Sequence[bytes], *, gas: int | None = None
    ) -> Receipt:
        return self.transact(self.ledger, "grantLine", line.as_abi(), list(signatures), gas=gas)

    def close_line(self, line_id: bytes) -> Receipt:
        return self.transact(self.ledger, "closeLine", line_id)

    def expire_line(self, line_id: bytes) -> Receipt:
        return self.transact(self.ledger, "expireLine", line_id)

    def repay(
        self, loan: CoLoan, repayment_id: bytes, principal: int, interest: int = 0
    ) -> Receipt | None:
        """Record a repayment; its id makes a retry idempotent (None: it was already on chain)."""
        return self.transact(
            self.ledger,
            "repay",
            loan.as_abi(),
            repayment_id,
            principal,
            interest,
            landed=lambda: bool(self.call(self.ledger, "repaymentRecorded", repayment_id)),
            label=f"repay 0x{repayment_id.hex()}",
        )

    def set_status(self, loan: CoLoan, status: LoanStatus, reason: bytes = b"\0" * 32) -> Receipt:
        return self.transact(self.ledger, "setStatus", loan.as_abi(), int(status), reason)

    # ------------------------------------------------------------------ views

    def loan_state(self, loan_id: bytes) -> tuple[bytes, int, LoanStatus]:
        c, o, s = self.call(self.ledger, "loanState", loan_id)
        return bytes(c), o, LoanStatus(s)

    def tranche_outstanding(self, loan: CoLoan) -> list[int]:
        return list(self.call(self.ledger, "trancheOutstanding", loan.as_abi()))

    def borrower_exposure(self, borrower_key: bytes, block: int | str = "latest") -> dict:
        c, b, idx, counts = self.call(self.ledger, "borrowerExposure", borrower_key, block=block)
        return {"consumer": c, "business": b, "institutions": dict(zip(idx, counts, strict=True))}

    def headroom(self, borrower_key: bytes) -> dict:
        c, b, n, mx = self.call(self.ledger, "headroom", borrower_key)
        return {"consumer": c, "business": b, "institutions": n, "max_institutions": mx}

    def lender_usage(self, lender: str, partner: str) -> dict:
        total, with_p, total_limit, partner_limit, until = self.call(
            self.ledger, "lenderUsage", to_checksum_address(lender), to_checksum_address(partner)
        )
        return {
            "total": total,
            "with_partner": with_p,
            "total_limit": total_limit,
            "partner_limit": partner_limit,
            "attested_until": until,
        }

    def line_state(self, line_id: bytes) -> dict:
        rec, key = self.call(self.ledger, "lineState", line_id)
        limit, drawn, expires, status, product, pidx, inst = rec
        return {
            "limit": limit,
            "drawn": drawn,
            "expires_at": expires,
            "status": status,
            "product": product,
            "platform_index": pidx,
            "borrower_key": bytes(key),
        }

    def member(self, account: str) -> dict:
        m = self.call(self.registry, "member", to_checksum_address(account))
        keys = [
            "role",
            "status",
            "frozen",
            "index",
            "tier1_capital",
            "total_loan_balance",
            "attested_at",
            "attested_until",
        ]
        return dict(zip(keys, m, strict=True))

    def current_policy(self) -> tuple[Policy, int]:
        p, version = self.call(self.registry, "currentPolicy")
        return Policy.from_abi(p), version

    def policy_at(self, version: int) -> Policy:
        return Policy.from_abi(self.call(self.registry, "policyAt", version))

    def loan_digest(self, loan: CoLoan) -> bytes:
        return bytes(self.call(self.ledger, "loanDigest", loan.as_abi()))

    def line_digest(self, line: CreditLine) -> bytes:
        return bytes(self.call(self.ledger, "lineDigest", line.as_abi()))
