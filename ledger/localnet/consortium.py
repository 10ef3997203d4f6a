"""A local consortium for development, demos, benchmarks and tests: DEV-ONLY keys.

Deploys the contracts with the deterministic dev keys from ledger.keys, funds them, admits a
platform, lenders and an auditor, and has each lender attest capital. Never point this at a chain
that carries real money: the keys are public.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.chain.client import LedgerClient
from ledger.chain.deployment import Deployment, deploy, fund
from ledger.domain import (
    DEFAULT_POLICY,
    CoLoan,
    CreditLine,
    Policy,
    Product,
    RepaymentType,
    Role,
    Tranche,
    sort_tranches,
)
from ledger.keys import dev_consortium
from ledger.provenance import sign

# Large enough that R5/R6 do not bind in ordinary use; tests set their own figures.
DEFAULT_TIER1 = 10**12  # fen
DEFAULT_LOAN_BALANCE = 10**13  # fen

_ids = itertools.count(1)


def new_id(label: str = "id") -> bytes:
    """A fresh 32-byte id, unique in this process and across processes."""
    return keccak(f"{label}|{os.getpid()}|{time.time_ns()}|{next(_ids)}".encode())


@dataclass
class LocalConsortium:
    """DEV-ONLY: a deployed consortium and one client per member."""

    rpc_url: str
    deployment: Deployment
    governor: LocalAccount
    platform: LocalAccount
    lenders: list[LocalAccount]
    auditor: LocalAccount
    clients: dict[str, LedgerClient] = field(default_factory=dict)

    def client(self, account: LocalAccount) -> LedgerClient:
        c = self.clients.get(account.address)
        if c is None:
            c = LedgerClient(self.rpc_url, self.deployment, account)
            self.clients[account.address] = c
        return c

    @property
    def gov(self) -> LedgerClient:
        return self.client(self.governor)

    @property
    def plat(self) -> LedgerClient:
        return self.client(self.platform)

    def accounts(self) -> dict[str, LocalAccount]:
        out = {a.address: a for a in [self.governor, self.platform, self.auditor, *self.lenders]}
        return out

    def reset_clients(self) -> None:
        for c in self.clients.values():
            c.close()
        self.clients.clear()

    def now(self) -> int:
        return int(self.gov.w3.eth.get_block("latest")["timestamp"])

    def loan(
        self,
        principal: int,
        shares: Sequence[tuple[LocalAccount | str, int]] | None = None,
        *,
        borrower_key: bytes | None = None,
        product: Product = Product.CONSUMER,
        repayment: RepaymentType = RepaymentType.INSTALMENT,
        term_days: int = 180,
        apr_bps: int = 1_200,
        line_id: bytes = b"\0" * 32,
        deadline: int | None = None,
        platform: LocalAccount | None = None,
        loan_id: bytes | None = None,
    ) -> CoLoan:
        """A co-loan; by default the platform funds 40% and the first two lenders 30% each."""
        platform = platform or self.platform
        if shares is None:
            p = principal * 4 // 10
            a = (principal - p) // 2
            shares = [(platform, p), (self.lenders[0], a), (self.lenders[1], principal - p - a)]
        tranches = sort_tranches(
            [Tranche(s if isinstance(s, str) else s.address, amt) for s, amt in shares]
        )
        return CoLoan(
            loan_id=loan_id or new_id("loan"),
            borrower_key=borrower_key or new_id("borrower"),
            platform=platform.address,
            product=product,
            principal=principal,
            apr_bps=apr_bps,
            term_days=term_days,
            repayment=repayment,
            deadline=deadline if deadline is not None else self.now() + 3_600,
            tranches=tranches,
            line_id=line_id,
        )

    def line(
        self,
        limit: int,
        shares: Sequence[tuple[LocalAccount | str, int]] | None = None,
        *,
        borrower_key: bytes | None = None,
        product: Product = Product.CONSUMER,
        expires_in: int = 30 * 86_400,
        deadline: int | None = None,
        line_id: bytes | None = None,
    ) -> CreditLine:
        if shares is None:
            p = limit * 4 // 10
            a = (limit - p) // 2
            shares = [(self.platform, p), (self.lenders[0], a), (self.lenders[1], limit - p - a)]
        now = self.now()
        return CreditLine(
            line_id=line_id or new_id("line"),
            borrower_key=borrower_key or new_id("borrower"),
            platform=self.platform.address,
            product=product,
            limit=limit,
            expires_at=now + expires_in,
            deadline=deadline if deadline is not None else now + 3_600,
            shares=sort_tranches(
                [Tranche(s if isinstance(s, str) else s.address, amt) for s, amt in shares]
            ),
        )

    def sign(self, record: CoLoan | CreditLine) -> list[bytes]:
        """Every party's signature, in tranche order, with its own dev key."""
        accounts = self.accounts()
        return [sign(accounts[s].key, self.plat.domain, record) for s in record.signers]


def bootstrap(
    rpc_url: str,
    *,
    n_lenders: int = 3,
    policy: Policy = DEFAULT_POLICY,
    tier1: int = DEFAULT_TIER1,
    loan_balance: int = DEFAULT_LOAN_BALANCE,
) -> LocalConsortium:
    """DEV-ONLY: deploy and populate a consortium on a local chain."""
    keys = dev_consortium(n_lenders)
    governor, platform, auditor = keys["governor"], keys["platform"], keys["auditor"]
    lenders = list(keys["lenders"])
    fund(rpc_url, [a.address for a in [governor, platform, auditor, *lenders]])
    deployment = deploy(rpc_url, governor, policy)
    cx = LocalConsortium(rpc_url, deployment, governor, platform, lenders, auditor)
    gov = cx.gov
    gov.admit_member(platform.address, Role.PLATFORM, "Platform (dev)")
    for i, lender in enumerate(lenders):
        gov.admit_member(lender.address, Role.LENDER, f"Bank {chr(65 + i)} (dev)")
    gov.admit_member(auditor.address, Role.AUDITOR, "Auditor (dev)")
    until = cx.now() + policy.max_attestation_age - 60
    for lender in lenders:
        cx.client(lender).attest_capital(tier1, loan_balance, until)
    return cx
