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
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger import apr_bounds
from ledger.chain.client import LedgerClient
from ledger.chain.connect import is_dev_chain, wait_for_chain_time
from ledger.chain.deployment import DEV_DELAY, Deployment, deploy, fund, hand_over
from ledger.domain import (
    DEFAULT_POLICY,
    CoLoan,
    CreditLine,
    Policy,
    Product,
    RepaymentType,
    Role,
    Tranche,
    record_id,
    sort_tranches,
)
from ledger.governance import Council, ProposalState, encode_action
from ledger.keys import DevConsortium, dev_account, dev_consortium
from ledger.provenance import sign
from ledger.schedule import Instalment

# Large enough that R5/R6 do not bind in ordinary use; tests set their own figures.
DEFAULT_TIER1 = 10**12  # fen
DEFAULT_LOAN_BALANCE = 10**13  # fen
# A guarantor's attested net assets: R10 lets it cover 10x, 5,000,000 CNY, room for the demo.
DEFAULT_NET_ASSETS = 50_000_000  # fen

_ids = itertools.count(1)


def new_id(label: str = "id", owner: str | None = None) -> bytes:
    """A fresh 32-byte id, unique in this process and across processes; in platform `owner`'s
    namespace when given (loan, line and repayment ids must be: ledger.domain.record_id)."""
    raw = f"{label}|{os.getpid()}|{time.time_ns()}|{next(_ids)}"
    return record_id(owner, raw) if owner else keccak(raw.encode())


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
    # accounts admitted later whose keys the council helper may also vote with
    extra: dict[str, LocalAccount] = field(default_factory=dict)
    # the guarantee company admitted at bootstrap (`ledger up`), if any
    guarantor: LocalAccount | None = None

    def client(self, account: LocalAccount) -> LedgerClient:
        c = self.clients.get(account.address)
        if c is None:
            c = LedgerClient(self.rpc_url, self.deployment, account)
            self.clients[account.address] = c
        return c

    @property
    def gov(self) -> CouncilDriver:
        """The registry's governance, run through the council end to end (DEV-ONLY keys)."""
        return CouncilDriver(self)

    @property
    def deployer(self) -> LedgerClient:
        """The deployer's client: after hand-over it governs nothing; good for reads."""
        return self.client(self.governor)

    def council_members(self) -> list[LocalAccount]:
        """The dev accounts on the council now, platform first."""
        reader = self.deployer
        known = [self.platform, *self.lenders, self.auditor, *self.extra.values()]
        return [a for a in known if reader.call(reader.council, "isCouncilMember", a.address)]

    def council_run(self, action: str, *args: Any, salt: bytes | None = None) -> Any:
        """DEV-ONLY: one council decision end to end: the first active dev member proposes,
        the next ones approve until a majority has, the chain's clock is moved past the
        timelock's delay, and the proposer executes. Returns the execution's receipt."""
        # no Python pre-check: the contract is the judge the tests put to the test
        data = encode_action(self.deployer.registry, action, *args, check=False)
        return self.council_call(self.deployment.registry, data, salt=salt)

    def council_call(self, target: str, data: str, *, salt: bytes | None = None) -> Any:
        """DEV-ONLY: council_run for any call (e.g. the council's own setMinApprovals)."""
        voters = self.council_members()
        if not voters:
            raise RuntimeError("no dev member is on the council")
        first = Council(self.client(voters[0]))
        pid, _ = first.propose_call(target, data, salt=salt)
        for account in voters[1:]:
            if first.status(pid).state != ProposalState.PENDING:
                break
            Council(self.client(account)).approve(pid)
        st = first.status(pid)
        if st.state != ProposalState.SCHEDULED:
            raise RuntimeError(f"the dev members alone cannot reach the threshold: {st}")
        self.advance(first.delay())
        return first.execute(pid)

    def advance(self, seconds: int) -> None:
        """Let `seconds` pass on the chain: on the local dev chain, move its clock forward and
        mine a block; on any other chain (interval mining, no dev methods) wait for a block
        that late."""
        w3 = self.deployer.w3
        if not is_dev_chain(self.deployment.chain_id):
            wait_for_chain_time(w3, self.now() + int(seconds) + 1)
            return
        if seconds:
            w3.provider.make_request("evm_increaseTime", [int(seconds)])
        w3.provider.make_request("evm_mine", [])

    @property
    def plat(self) -> LedgerClient:
        return self.client(self.platform)

    def accounts(self) -> dict[str, LocalAccount]:
        everyone = [self.governor, self.platform, self.auditor, *self.lenders]
        return {a.address: a for a in [*everyone, *([self.guarantor] if self.guarantor else [])]}

    def reset_clients(self) -> None:
        for c in self.clients.values():
            c.close()
        self.clients.clear()

    def now(self) -> int:
        return int(self.deployer.w3.eth.get_block("latest")["timestamp"])

    def loan(
        self,
        principal: int,
        shares: Sequence[tuple[LocalAccount | str, int]] | None = None,
        *,
        borrower_key: bytes | None = None,
        product: Product = Product.CONSUMER,
        repayment: RepaymentType = RepaymentType.INSTALMENT,
        term_days: int | None = None,
        apr_bps: int | None = None,
        line_id: bytes = b"\0" * 32,
        deadline: int | None = None,
        platform: LocalAccount | None = None,
        loan_id: bytes | None = None,
        schedule_digest: bytes | None = None,
        schedule: Sequence[Instalment] = (),
        start: int | None = None,
        words: Sequence[int] | None = None,
    ) -> CoLoan:
        """A co-loan; by default the platform funds 40% and the first two lenders 30% each,
        180 days at 12%. With a `schedule` started at `start`, the terms commit to it: its
        digest, its term and its all-in APR unless given (an insider's lie), its words sent."""
        platform = platform or self.platform
        if schedule:
            c = apr_bounds.committed(schedule, principal, self.now() if start is None else start)
            term_days = c.term_days if term_days is None else term_days
            apr_bps = c.apr_bps if apr_bps is None else apr_bps
            schedule_digest = c.digest if schedule_digest is None else schedule_digest
            words = c.words if words is None else words
        if shares is None:
            p = principal * 4 // 10
            a = (principal - p) // 2
            shares = [(platform, p), (self.lenders[0], a), (self.lenders[1], principal - p - a)]
        tranches = sort_tranches(
            [Tranche(s if isinstance(s, str) else s.address, amt) for s, amt in shares]
        )
        return CoLoan(
            loan_id=loan_id or new_id("loan", platform.address),
            borrower_key=borrower_key or new_id("borrower"),
            platform=platform.address,
            product=product,
            principal=principal,
            apr_bps=1_200 if apr_bps is None else apr_bps,
            term_days=180 if term_days is None else term_days,
            repayment=repayment,
            deadline=deadline if deadline is not None else self.now() + 3_600,
            tranches=tranches,
            line_id=line_id,
            schedule_digest=schedule_digest or b"\0" * 32,
            schedule=tuple(words or ()),
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
        platform: LocalAccount | None = None,
    ) -> CreditLine:
        platform = platform or self.platform
        if shares is None:
            p = limit * 4 // 10
            a = (limit - p) // 2
            shares = [(platform, p), (self.lenders[0], a), (self.lenders[1], limit - p - a)]
        now = self.now()
        return CreditLine(
            line_id=line_id or new_id("line", platform.address),
            borrower_key=borrower_key or new_id("borrower"),
            platform=platform.address,
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
    delay: int = DEV_DELAY,
    keys: DevConsortium | None = None,
    guarantor: bool = False,
    net_assets: int = DEFAULT_NET_ASSETS,
) -> LocalConsortium:
    """Deploy and populate a consortium on a local chain: DEV-ONLY keys unless `keys` are
    given (the production-like chain's keystores). On the dev chain the accounts get a balance;
    elsewhere they must already be funded or gas be free (ledger.chain.deployment.fund).
    With `guarantor` (or a guarantor in `keys`), a guarantee company is admitted beside the
    others and attests `net_assets`, as `ledger up` runs it; off by default because many tests
    admit their own guarantor through the council."""
    keys = keys or dev_consortium(n_lenders)
    governor, platform, auditor = keys["governor"], keys["platform"], keys["auditor"]
    # `governor` is the deployer: it admits the first members, then hands the registry to the
    # council's timelock and keeps no power
    lenders = list(keys["lenders"])
    g = keys.get("guarantor") or (dev_account("guarantor", 0) if guarantor else None)
    fund(rpc_url, [a.address for a in [governor, platform, auditor, *lenders, *([g] if g else [])]])
    deployment = deploy(rpc_url, governor, policy)
    cx = LocalConsortium(rpc_url, deployment, governor, platform, lenders, auditor, guarantor=g)
    gov = cx.deployer
    gov.admit_member(platform.address, Role.PLATFORM, "Platform (dev)")
    for i, lender in enumerate(lenders):
        gov.admit_member(lender.address, Role.LENDER, f"Bank {chr(65 + i)} (dev)")
    gov.admit_member(auditor.address, Role.AUDITOR, "Auditor (dev)")
    if g is not None:
        # not on the council (only platforms, banks and the auditor are), so admitting it here
        # changes no threshold; the deployer admits it as it admits the others
        gov.admit_member(g.address, Role.GUARANTOR, "Guarantor (dev)")
    until = cx.now() + policy.max_attestation_age - 60
    for lender in lenders:
        cx.client(lender).attest_capital(tier1, loan_balance, until)
    if g is not None:
        cx.client(g).attest_capital(net_assets, 0, until)  # R10's base: net assets, no loans
    hand_over(rpc_url, governor, deployment, delay, allow_short_delay=True)  # a local chain
    cx.reset_clients()  # the deployer's nonce moved outside its client
    return cx


class CouncilDriver:
    """DEV-ONLY: the old governor's methods, each run as a council decision (LocalConsortium.
    council_run); reads go to the deployer's client."""

    def __init__(self, cx: LocalConsortium) -> None:
        self._cx = cx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cx.deployer, name)

    def admit_member(
        self, account: str, role: int, name: str, licence_hash: bytes = b"\0" * 32
    ) -> Any:
        return self._cx.council_run("admit", account, role, name, licence_hash)

    def suspend_member(self, account: str) -> Any:
        return self._cx.council_run("suspend", account)

    def reinstate_member(self, account: str) -> Any:
        return self._cx.council_run("reinstate", account)

    def remove_member(self, account: str) -> Any:
        return self._cx.council_run("remove", account)

    def set_frozen(self, account: str, frozen: bool) -> Any:
        return self._cx.council_run("freeze", account, frozen)

    def set_policy(self, policy: Policy) -> Any:
        return self._cx.council_run("policy", policy)

    def transfer_servicing(self, src: str, dst: str) -> Any:
        return self._cx.council_run("transfer-servicing", src, dst)

    def pause(self) -> Any:
        """The emergency brake: one member (the first active dev member) pauses at once."""
        return self._cx.client(self._cx.council_members()[0]).pause()

    def unpause(self) -> Any:
        return self._cx.council_run("unpause")

    def transfer_governor(self, new_governor: str) -> Any:
        cx = self._cx
        data = cx.deployer.registry.encode_abi("transferOwnership", args=[new_governor])
        return cx.council_call(cx.deployment.registry, data)
