"""A random but reproducible consortium workload for the indexer tests: credit lines, co-loans
(standalone and drawn under lines) across three lenders, repayments, status changes and
write-offs, line closes and expiries, rejected loans in non-atomic batches, and registry
activity (capital attestations, a policy version, freezes, a pause). Transactions the contract
refuses (a rule, a race in the model) are skipped: only what lands produces events.

`servicing_story` adds every LoanServicing event the indexer keeps, on loans of its own."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from ledger import schedule as sched
from ledger.chain.deployment import fund
from ledger.chain.errors import LedgerError
from ledger.domain import (
    DEFAULT_POLICY,
    CoLoan,
    CreditLine,
    LoanStatus,
    Product,
    RepaymentType,
    Role,
)
from ledger.keys import dev_account
from ledger.localnet.consortium import LocalConsortium, new_id


def admit_guarantor(cx: LocalConsortium) -> LocalAccount:
    """A guarantor admitted by the governor, its net assets attested for 30 days."""
    g = dev_account("guarantor", 0)
    fund(cx.rpc_url, [g.address])
    cx.gov.admit_member(g.address, Role.GUARANTOR, "Guarantor (dev)")
    cx.client(g).attest_capital(10**9, 0, cx.now() + 30 * 86_400)
    return g


def servicing_story(
    cx: LocalConsortium, g: LocalAccount
) -> tuple[CoLoan, tuple[sched.Instalment, ...]]:
    """Every LoanServicing event the indexer keeps: a guarantee recorded, then released when its
    loan is repaid; another compensated on default; a bank's classifications, the second
    stricter; a recovery on the written-off loan; a prepayment of 500 CNY with the first
    instalment (the prepaid loan and its committed schedule are returned)."""

    def scheduled() -> tuple[CoLoan, tuple[sched.Instalment, ...]]:
        start = cx.now() + 60
        s = sched.build("equal_instalment", 1_000_000, 12, 1200, start)
        loan = cx.loan(1_000_000, schedule=s, start=start)
        cx.plat.originate(loan, cx.sign(loan))
        return loan, s

    gc, bank = cx.client(g), cx.client(cx.lenders[0])
    repaid, s = scheduled()
    gc.offer_guarantee(repaid.loan_id, 5_000)
    cx.plat.accept_guarantee(repaid, g.address, 5_000)
    bank.classify(repaid, s, 0)
    bank.classify(repaid, s, 2)
    cx.plat.repay(repaid, new_id("rp", cx.platform.address), repaid.principal, 0)
    gc.release_guarantee(repaid)
    bad, _s = scheduled()
    gc.offer_guarantee(bad.loan_id, 8_000)
    cx.plat.accept_guarantee(bad, g.address, 8_000)
    cx.plat.set_status(bad, LoanStatus.OVERDUE)
    cx.plat.set_status(bad, LoanStatus.DEFAULTED)
    gc.compensate(bad)
    cx.plat.set_status(bad, LoanStatus.WRITTEN_OFF)
    cx.plat.recover(bad, new_id("rc", cx.platform.address), 12_345)
    early, s = scheduled()
    cx.plat.repay(early, new_id("rp", cx.platform.address), s[0].principal + 50_000, s[0].interest)
    cx.plat.prepay(early, s)
    return early, s


@dataclass
class Workload:
    cx: LocalConsortium
    seed: int = 1
    borrowers: int = 6
    done: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.keys = [new_id(f"borrower{i}") for i in range(self.borrowers)]
        self.loans: dict[bytes, list] = {}  # id -> [loan, outstanding, status]
        self.lines: dict[bytes, CreditLine] = {}  # active lines

    def _shares(self, amount: int) -> list:
        lenders = self.rng.sample(self.cx.lenders, self.rng.choice([1, 2, 2, 3]))
        own = amount * 4 // 10
        rest = amount - own
        each = rest // len(lenders)
        shares = [(self.cx.platform, own + rest - each * len(lenders))]
        return shares + [(lender, each) for lender in lenders]

    def _try(self, name: str, fn) -> bool:  # type: ignore[no-untyped-def]
        try:
            fn()
        except LedgerError:
            return False
        self.done[name] += 1
        return True

    # ------------------------------------------------------------------ operations

    def loan(self) -> None:
        cx, rng = self.cx, self.rng
        key = rng.choice(self.keys)
        product = Product.BUSINESS if rng.random() < 0.2 else Product.CONSUMER
        line_id = b"\0" * 32
        mine = [
            ln for ln in self.lines.values() if ln.borrower_key == key and ln.product == product
        ]
        principal = rng.randrange(50_000, 2_000_000)
        if mine and rng.random() < 0.6:
            line = rng.choice(mine)
            line_id, principal = line.line_id, rng.randrange(10_000, line.limit // 3)
            shares = [(s.lender, 0) for s in line.shares]  # same parties as the line
            parties = [s for s, _ in shares]
            shares = self._split(principal, parties)
        else:
            shares = self._shares(principal)
        bullet = rng.random() < 0.2
        loan = cx.loan(
            principal,
            shares,
            borrower_key=key,
            product=product,
            line_id=line_id,
            repayment=RepaymentType.BULLET if bullet else RepaymentType.INSTALMENT,
            term_days=90 if bullet else 360,
        )
        if self._try("loan", lambda: cx.plat.originate(loan, cx.sign(loan))):
            self.loans[loan.loan_id] = [loan, principal, LoanStatus.ACTIVE]

    def _split(self, amount: int, parties: list[str]) -> list:
        platform = self.cx.platform.address
        others = [p for p in parties if p != platform]
        own = amount * 4 // 10
        each = (amount - own) // max(1, len(others))
        return [(platform, amount - each * len(others))] + [(p, each) for p in others]

    def line(self) -> None:
        cx, rng = self.cx, self.rng
        limit = rng.randrange(1_000_000, 5_000_000)
        line = cx.line(
            limit,
            self._shares(limit),
            borrower_key=rng.choice(self.keys),
            product=Product.BUSINESS if rng.random() < 0.2 else Product.CONSUMER,
            expires_in=150 if rng.random() < 0.3 else 30 * 86_400,
        )
        if self._try("line", lambda: cx.plat.grant_line(line, cx.sign(line))):
            self.lines[line.line_id] = line

    def _open(self, *statuses: LoanStatus) -> list | None:
        found = [v for v in self.loans.values() if v[2] in statuses]
        return self.rng.choice(found) if found else None

    def repay(self) -> None:
        rec = self._open(LoanStatus.ACTIVE, LoanStatus.OVERDUE, LoanStatus.DEFAULTED)
        if rec is None:
            return
        loan, outstanding, _ = rec
        r = self.rng.random()
        principal = (
            outstanding if r < 0.3 else 0 if r < 0.4 else self.rng.randrange(1, outstanding + 1)
        )
        interest = (
            self.rng.randrange(1, 20_000) if principal == 0 else self.rng.randrange(0, 20_000)
        )
        if self._try(
            "repay",
            lambda: self.cx.plat.repay(
                loan, new_id("repay", self.cx.platform.address), principal, interest
            ),
        ):
            rec[1] -= principal
            if rec[1] == 0:
                rec[2] = LoanStatus.REPAID

    def status(self) -> None:
        moves = {
            LoanStatus.OVERDUE: (LoanStatus.ACTIVE,),
            LoanStatus.ACTIVE: (LoanStatus.OVERDUE,),
            LoanStatus.DEFAULTED: (LoanStatus.OVERDUE,),
            LoanStatus.WRITTEN_OFF: (LoanStatus.OVERDUE, LoanStatus.DEFAULTED),
        }
        to = self.rng.choice([LoanStatus.OVERDUE] * 3 + list(moves))
        rec = self._open(*moves[to])
        if rec is None:
            return
        if self._try(
            f"status {to.name}",
            lambda: self.cx.plat.set_status(rec[0], to, b"DPD".ljust(32, b"\0")),
        ):
            rec[2] = to
            if to == LoanStatus.WRITTEN_OFF:
                rec[1] = 0

    def end_line(self) -> None:
        if not self.lines:
            return
        line = self.rng.choice(list(self.lines.values()))
        plat = self.cx.plat
        if self.rng.random() < 0.5:
            ok = self._try("close line", lambda: plat.close_line(line.line_id))
        else:
            w3 = plat.w3
            w3.provider.make_request("evm_increaseTime", [200])
            w3.provider.make_request("evm_mine", [])
            ok = self._try("expire line", lambda: plat.expire_line(line.line_id))
        if ok:
            del self.lines[line.line_id]

    def registry(self) -> None:
        cx, rng = self.cx, self.rng
        r = rng.random()
        if r < 0.5:
            lender = rng.choice(cx.lenders)
            until = cx.now() + 30 * 86_400
            self._try(
                "attest",
                lambda: cx.client(lender).attest_capital(
                    10**12 + rng.randrange(10**6), 10**13, until
                ),
            )
        elif r < 0.7:
            lender = rng.choice(cx.lenders).address
            self._try(
                "freeze",
                lambda: (cx.gov.set_frozen(lender, True), cx.gov.set_frozen(lender, False)),
            )
        elif r < 0.85:
            days = rng.choice([300, 365])
            policy = DEFAULT_POLICY.__class__(max_consumer_bullet_days=days)
            self._try("policy", lambda: cx.gov.set_policy(policy))
        else:
            self._try("pause", lambda: (cx.gov.pause(), cx.gov.unpause()))

    def rejected_batch(self) -> None:
        cx = self.cx
        good = [
            cx.loan(100_000 + i, self._shares(100_000 + i), borrower_key=new_id("b"))
            for i in range(2)
        ]
        bad = cx.loan(
            100_000, [(cx.platform, 10_000), (cx.lenders[0], 90_000)]
        )  # R4: platform share too low
        loans = [good[0], bad, good[1]]
        if self._try(
            "batch",
            lambda: cx.plat.originate_batch(loans, [cx.sign(ln) for ln in loans], atomic=False),
        ):
            for ln in good:
                self.loans[ln.loan_id] = [ln, ln.principal, LoanStatus.ACTIVE]

    def run(self, steps: int) -> Counter[str]:
        ops = [
            (self.loan, 30), (self.line, 8), (self.repay, 25), (self.status, 18),
            (self.end_line, 6), (self.registry, 6), (self.rejected_batch, 2),
        ]  # fmt: skip
        fns, weights = zip(*ops, strict=True)
        for _ in range(steps):
            self.rng.choices(fns, weights)[0]()
        return self.done

    def recorded(self) -> list[CoLoan]:
        return [v[0] for v in self.loans.values()]
