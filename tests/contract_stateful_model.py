"""The Python model that tests/test_contract_stateful.py drives the ledger against: the
consortium it runs on (banks, borrowers, policy), what it records of every loan and line, the
outcome it predicts for every transaction, and the helpers that build and send records."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from eth_utils import keccak

from ledger import allocation
from ledger.chain.errors import ContractRevert
from ledger.domain import (
    ZERO32,
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
    MemberStatus,
    Policy,
    Product,
    RepaymentType,
    Tranche,
    sort_tranches,
)
from ledger.localnet.consortium import LocalConsortium
from ledger.provenance import sign

DAY = 86_400
HALF_DAY = DAY // 2  # every deadline sits half a day off the whole-day clock steps
POLICY = Policy(
    consumer_cap=5_000_000, business_cap=20_000_000
)  # R3 = 3, R4 = 30%, R5 = 25%, R6 = 50%
# per bank: (tier-1 capital, total loan balance, attestation valid for this many days + half a day)
BANKS = [
    (16_000_000, 14_000_000, 30),
    (8_000_000, 30_000_000, 50),
    (40_000_000, 10_000_000, 70),
    (20_000_000, 20_000_000, 89),
]
BORROWERS = [keccak(f"stateful-borrower-{i}".encode()) for i in range(4)]
OPEN = (LoanStatus.ACTIVE, LoanStatus.OVERDUE, LoanStatus.DEFAULTED)
LEGAL = {
    LoanStatus.ACTIVE: {LoanStatus.OVERDUE},
    LoanStatus.OVERDUE: {LoanStatus.ACTIVE, LoanStatus.DEFAULTED, LoanStatus.WRITTEN_OFF},
    LoanStatus.DEFAULTED: {LoanStatus.WRITTEN_OFF},
}


@dataclass
class World:
    cx: LocalConsortium
    platforms: list  # LocalAccount, the bootstrap platform first
    banks: list
    keys: dict  # address -> private key


@dataclass
class LoanModel:
    loan: CoLoan
    outstanding: int
    status: LoanStatus


@dataclass
class LineModel:
    line: CreditLine
    status: LineStatus
    drawn: int


class LedgerModel:
    """LedgerMachine's view of the ledger and its predictions; the machine holds the state."""

    world: World
    loans: dict[bytes, LoanModel]
    lines: dict[bytes, LineModel]
    members: dict
    index: dict
    outcomes: Counter

    # ------------------------------------------------------------------ model views

    @property
    def cx(self) -> LocalConsortium:
        return self.world.cx

    def now(self) -> int:
        return self.cx.now()

    def exposure(self, key: bytes, product: Product) -> int:
        lines = sum(
            m.line.limit
            for m in self.lines.values()
            if m.line.borrower_key == key
            and m.line.product == product
            and m.status == LineStatus.ACTIVE
        )
        loans = sum(
            m.outstanding
            for m in self.loans.values()
            if m.loan.borrower_key == key
            and m.loan.product == product
            and (m.loan.line_id == ZERO32 or self.lines[m.loan.line_id].status != LineStatus.ACTIVE)
        )
        return lines + loans

    def institutions(self, key: bytes) -> Counter:
        c: Counter = Counter()
        for m in self.lines.values():
            if m.line.borrower_key == key and m.status == LineStatus.ACTIVE:
                c.update(self.index[t.lender] for t in m.line.shares)
        for m in self.loans.values():
            if m.loan.borrower_key == key and m.status in OPEN:
                c.update(self.index[t.lender] for t in m.loan.tranches)
        return c

    def usage(self, bank: str, platform: str | None = None) -> int:
        total = 0
        for m in self.loans.values():
            if m.status not in OPEN or (platform is not None and m.loan.platform != platform):
                continue
            amounts = [t.amount for t in m.loan.tranches]
            outs = allocation.outstanding(amounts, m.loan.principal, m.outstanding)
            total += sum(o for t, o in zip(m.loan.tranches, outs, strict=True) if t.lender == bank)
        return total

    def active(self, address: str) -> bool:
        return self.members[address]["status"] == MemberStatus.ACTIVE

    # ------------------------------------------------------------------ predictions

    def predict_parties(self, tranches, platform: str, bad_sig: int | None, now: int) -> str | None:
        for i, t in enumerate(tranches):
            m = self.members[t.lender]
            if m["status"] != MemberStatus.ACTIVE:
                return "NotActiveMember"
            if t.lender != platform and m["attested_until"] < now:
                return "StaleAttestation"
            if i == bad_sig:
                return "InvalidSignature"
        if len(tranches) - 1 < POLICY.min_bank_tranches:  # R0: a platform-only record
            return "TooFewBankTranches"
        return None

    def predict_r3(self, key: bytes, tranches) -> str | None:
        open_ = self.institutions(key)
        new = {self.index[t.lender] for t in tranches} - set(open_)
        if len(open_) + len(new) > POLICY.max_institutions:
            return "TooManyInstitutions"
        return None

    def predict_share(self, tranches, platform: str, total: int) -> str | None:
        own = next(t.amount for t in tranches if t.lender == platform)
        if own * 10_000 < total * POLICY.min_platform_share_bps:
            return "PlatformShareTooLow"
        return None

    def predict_loan(self, loan: CoLoan, bad_sig: int | None, now: int) -> str | None:
        err = self.predict_parties(loan.tranches, loan.platform, bad_sig, now)
        if err:
            return err
        if (
            loan.product == Product.CONSUMER
            and loan.repayment == RepaymentType.BULLET
            and loan.term_days > POLICY.max_consumer_bullet_days
        ):
            return "BulletTermTooLong"
        err = self.predict_share(loan.tranches, loan.platform, loan.principal)
        if err:
            return err
        if loan.line_id == ZERO32:
            if self.exposure(loan.borrower_key, loan.product) + loan.principal > POLICY.cap(
                loan.product
            ):
                return "BorrowerCapExceeded"
        else:
            lm = self.lines[loan.line_id]
            if lm.status != LineStatus.ACTIVE or now > lm.line.expires_at:
                return "LineNotActive"
            if lm.line.borrower_key != loan.borrower_key or lm.line.product != loan.product:
                return "LineMismatch"
            if lm.line.platform != loan.platform:
                return "NotServicer"  # another platform, with no servicing transfer
            holders = {t.lender for t in lm.line.shares}
            if any(t.lender not in holders for t in loan.tranches):
                return "NotLineShareHolder"
            if lm.drawn + loan.principal > lm.line.limit:
                return "LineLimitExceeded"
        err = self.predict_r3(loan.borrower_key, loan.tranches)
        if err:
            return err
        for t in loan.tranches:
            if t.lender == loan.platform:
                continue
            m = self.members[t.lender]
            if (
                self.usage(t.lender, loan.platform) + t.amount
                > m["tier1_capital"] * POLICY.max_partner_capital_bps // 10_000
            ):
                return "PartnerConcentrationExceeded"
            if (
                self.usage(t.lender) + t.amount
                > m["total_loan_balance"] * POLICY.max_joint_loan_bps // 10_000
            ):
                return "JointLoanShareExceeded"
        return None

    def predict_line(self, line: CreditLine, bad_sig: int | None, now: int) -> str | None:
        err = self.predict_parties(line.shares, line.platform, bad_sig, now)
        if err:
            return err
        err = self.predict_share(line.shares, line.platform, line.limit)
        if err:
            return err
        if self.exposure(line.borrower_key, line.product) + line.limit > POLICY.cap(line.product):
            return "BorrowerCapExceeded"
        return self.predict_r3(line.borrower_key, line.shares)

    # ------------------------------------------------------------------ helpers

    def tranches(
        self, total: int, platform: str, banks: list[int], bps: int, weights: list[int]
    ) -> tuple:
        if not banks:
            return (Tranche(platform, total),)
        own = max(1, total * bps // 10_000)
        rest = total - own - len(banks)  # one fen each first, so none is zero
        ws = [weights[b] for b in banks]
        parts = [1 + rest * w // sum(ws) for w in ws]
        parts[-1] += total - own - sum(parts)
        shares = [Tranche(platform, own)]
        shares += [
            Tranche(self.world.banks[b].address, p) for b, p in zip(banks, parts, strict=True)
        ]
        return sort_tranches(shares)

    def signatures(self, record, bad_sig: int | None) -> list[bytes]:
        domain = self.cx.plat.domain
        sigs = [sign(self.world.keys[s], domain, record) for s in record.signers]
        if bad_sig is not None:
            sigs[bad_sig] = sign(self.cx.auditor.key, domain, record)  # someone else's key
        return sigs

    def submit(self, predicted: str | None, fn, *args):
        """Send; the chain must refuse exactly when and why the model says. Returns the
        client's result when accepted, None when refused."""
        try:
            result = fn(*args)
        except ContractRevert as exc:
            assert predicted == exc.code, f"model predicted {predicted}, chain said {exc}"
            self.outcomes[exc.code] += 1
            return None
        assert predicted is None, f"model predicted {predicted}, chain accepted"
        # every id here is fresh, so the client never reports "already on chain" (None)
        assert result is not None and not getattr(result, "already_recorded", False)
        self.outcomes["ok:" + fn.__name__] += 1
        return result

    def record_loan(self, loan: CoLoan, bad_sig: int | None) -> None:
        now = self.now()
        predicted = self.predict_loan(loan, bad_sig, now)
        result = self.submit(
            predicted,
            self.cx.client(self._account(loan.platform)).originate,
            loan,
            self.signatures(loan, bad_sig),
        )
        if result is None:
            assert self.cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.NONE
            return
        self.loans[loan.loan_id] = LoanModel(loan, loan.principal, LoanStatus.ACTIVE)
        if loan.line_id != ZERO32:
            self.lines[loan.line_id].drawn += loan.principal

    def _account(self, address: str):
        return next(a for a in [*self.world.platforms, *self.world.banks] if a.address == address)

    def pick_loan(self, pick: int) -> LoanModel:
        return list(self.loans.values())[pick % len(self.loans)]

    def pick_line(self, pick: int) -> LineModel:
        return list(self.lines.values())[pick % len(self.lines)]

    def release(self, m: LoanModel, amount: int) -> None:
        m.outstanding -= amount
        if m.loan.line_id != ZERO32:
            self.lines[m.loan.line_id].drawn -= amount
