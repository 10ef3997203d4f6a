"""LedgerClient: a typed method for every function of the registry and the ledger.

Loan, line and repayment ids are the idempotency keys: a record found on chain with the same
terms is reported as already recorded, never sent twice (see Transactor.transact).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address

from ledger.chain.errors import ContractRevert
from ledger.chain.pipeline import PipelinedOrigination
from ledger.chain.servicing import ServicingCalls
from ledger.chain.transactor import (
    CHAIN_GONE,
    FeeMode,
    NonceManager,
    OriginateResult,
    Receipt,
)
from ledger.domain import CoLoan, CreditLine, LoanStatus, Policy
from ledger.provenance import commitment, pack_signatures

__all__ = ["FeeMode", "LedgerClient", "NonceManager", "OriginateResult", "Receipt"]


class LedgerClient(ServicingCalls, PipelinedOrigination):
    """One member's connection to a deployment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the last co-loans recorded through this client, re-checked after an interruption
        # (two pipelined chunks' worth and more: what a node restart can take with it)
        self._recent: deque[tuple[CoLoan, tuple[bytes, ...]]] = deque(maxlen=2048)

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
        if self.interrupted:
            # if still down, the record below waits for the node and the check runs after it
            with contextlib.suppress(*CHAIN_GONE):
                self.reconcile_recent()
        try:
            receipt = self.transact(
                self.ledger,
                "originate",
                loan.as_abi(),
                pack_signatures(signatures),
                list(loan.schedule),
                gas=gas,
                landed=lambda: self.existing_loan(loan) is not None,
                label=f"originate 0x{loan.loan_id.hex()}",
            )
        except ContractRevert as exc:
            # a transaction that looked lost but landed after all: the id is ours, with our terms
            if exc.code == "IdAlreadyUsed" and (found := self.existing_loan(loan)) is not None:
                return found
            raise
        self.remember([(loan, tuple(signatures))])
        if self.interrupted:
            # the node came back while this record waited for it: what it had acknowledged
            # just before going away is checked now, not on some later record
            with contextlib.suppress(*CHAIN_GONE):
                self.reconcile_recent()
        if receipt is None:
            return OriginateResult(loan.loan_id, None, 0, 0, already_recorded=True)
        return OriginateResult(
            loan.loan_id, receipt.tx_hash, receipt.block_number, receipt.gas_used
        )

    def remember(self, recorded: Sequence[tuple[CoLoan, Sequence[bytes]]]) -> None:
        """Keep co-loans the node acknowledged, to be checked again after an interruption."""
        with self._retry_lock:
            self._recent.extend((loan, tuple(sigs)) for loan, sigs in recorded)

    def reconcile_recent(self) -> dict[bytes, OriginateResult]:
        """After the node stopped answering and came back, check the last co-loans this client
        saw recorded and send again any the chain no longer has: a local node restarted from a
        state dump (anvil --state) can come back without its last blocks. Idempotent by loan id.
        Returns what was sent again, by loan id."""
        self.interrupted = False
        with self._retry_lock:
            recent = list(self._recent)
        resent: dict[bytes, OriginateResult] = {}
        try:
            for k in self.missing([loan for loan, _ in recent]):
                loan, sigs = recent[k]
                with self._retry_lock:
                    self.retried.append(f"originate 0x{loan.loan_id.hex()} (lost in a restart)")
                resent[loan.loan_id] = self.originate(loan, sigs)
        except CHAIN_GONE:
            self.interrupted = True  # not back yet: check again later
            raise
        return resent

    def missing(self, loans: Sequence[CoLoan], per_call: int = 500) -> list[int]:
        """The positions of the loans the chain does not hold with these terms (batched reads)."""
        out: list[int] = []
        for start in range(0, len(loans), per_call):
            part = loans[start : start + per_call]
            states = self.call_many([(self.ledger, "loanState", (ln.loan_id,)) for ln in part])
            for k, (loan, (commit, _outstanding, status)) in enumerate(
                zip(part, states, strict=True)
            ):
                if status == 0 or bytes(commit) != commitment(loan):
                    out.append(start + k)
        return out

    def existing_loan(self, loan: CoLoan) -> OriginateResult | None:
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
            [pack_signatures(s) for s in signatures],
            [list(ln.schedule) for ln in loans],
            atomic,
            gas=gas,
        )

    def grant_line(
        self, line: CreditLine, signatures: Sequence[bytes], *, gas: int | None = None
    ) -> Receipt:
        return self.transact(
            self.ledger, "grantLine", line.as_abi(), pack_signatures(signatures), gas=gas
        )

    def close_line(self, line_id: bytes) -> Receipt:
        return self.transact(self.ledger, "closeLine", line_id)

    def freeze_line(self, line_id: bytes, frozen: bool = True) -> Receipt:
        """Freeze (or unfreeze) this bank's own share of a line it funds."""
        return self.transact(self.ledger, "freezeLine", line_id, frozen)

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
            landed=lambda: self._repayment_landed(loan, repayment_id, principal, interest),
            label=f"repay 0x{repayment_id.hex()}",
        )

    def _repayment_landed(
        self, loan: CoLoan, repayment_id: bytes, principal: int, interest: int
    ) -> bool:
        """True when this very repayment is on chain; an id already used by a different
        repayment is refused as the contract would refuse it, never taken for a retry."""
        if not self.call(self.ledger, "repaymentRecorded", repayment_id):
            return False
        found = self.events(
            "Repaid", from_block=self.deployment.deployment_block, repaymentId=repayment_id
        )
        for ev in found:
            a = ev.args
            if (a["loanId"], a["principal"], a["interest"]) == (
                loan.loan_id,
                principal,
                interest,
            ):
                return True
        from ledger.chain.errors import error_class

        raise error_class("IdAlreadyUsed")({"id": repayment_id})

    def set_status(self, loan: CoLoan, status: LoanStatus, reason: bytes = b"\0" * 32) -> Receipt:
        return self.transact(self.ledger, "setStatus", loan.as_abi(), int(status), reason)

    # ------------------------------------------------------------------ views

    def loan_state(
        self, loan_id: bytes, block: int | str = "latest"
    ) -> tuple[bytes, int, LoanStatus]:
        c, o, s = self.call(self.ledger, "loanState", loan_id, block=block)
        return bytes(c), o, LoanStatus(s)

    def tranche_outstanding(self, loan: CoLoan) -> list[int]:
        return list(self.call(self.ledger, "trancheOutstanding", loan.as_abi()))

    def borrower_exposure(self, borrower_key: bytes, block: int | str = "latest") -> dict:
        c, b, idx, counts = self.call(self.ledger, "borrowerExposure", borrower_key, block=block)
        return {"consumer": c, "business": b, "institutions": dict(zip(idx, counts, strict=True))}

    def headroom(self, borrower_key: bytes) -> dict:
        c, b, n, mx = self.call(self.ledger, "headroom", borrower_key)
        return {"consumer": c, "business": b, "institutions": n, "max_institutions": mx}

    def lender_usage(self, lender: str, partner: str, block: int | str = "latest") -> dict:
        total, with_p, total_limit, partner_limit, until, valid_until = self.call(
            self.ledger,
            "lenderUsage",
            to_checksum_address(lender),
            to_checksum_address(partner),
            block=block,
        )
        return {
            "total": total,
            "with_partner": with_p,
            "total_limit": total_limit,
            "partner_limit": partner_limit,
            "attested_until": until,
            "valid_until": valid_until,
        }

    def line_state(self, line_id: bytes) -> dict:
        rec, key = self.call(self.ledger, "lineState", line_id)
        limit, drawn, expires, status, product, pidx, inst, frozen = rec
        return {
            "frozen_slots": frozen,
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

    def profile(self, account: str) -> tuple[str, bytes]:
        name, licence = self.call(self.registry, "profile", to_checksum_address(account))
        return name, bytes(licence)

    def member_count(self) -> int:
        return self.call(self.registry, "memberCount")

    def member_at(self, index: int) -> str:
        return self.call(self.registry, "memberAt", index)

    def is_active(self, account: str, role: int) -> bool:
        return self.call(self.registry, "isActive", to_checksum_address(account), int(role))

    def policy_version(self) -> int:
        return self.call(self.registry, "policyVersion")

    def governor(self) -> str:
        return self.call(self.registry, "owner")

    def pending_governor(self) -> str:
        return self.call(self.registry, "pendingOwner")

    def paused(self) -> bool:
        return self.call(self.registry, "paused")

    def repayment_recorded(self, repayment_id: bytes) -> bool:
        return self.call(self.ledger, "repaymentRecorded", repayment_id)
