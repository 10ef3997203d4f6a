"""The economics calls on chain beside origination and repayment: partnership terms (registry),
guarantees, compensatory payments, classification and recoveries (LoanServicing). Mixed into
LedgerClient, which supplies `transact`, `call` and the contracts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import schedule as sched
from ledger.domain import CoLoan
from ledger.schedule import Instalment


@dataclass(frozen=True, slots=True)
class Partnership:
    """A bank-platform partnership's terms (IConsortiumRegistry.Partnership)."""

    fee_bps: int
    min_fee_bps: int
    max_fee_bps: int
    valid_from: int
    valid_until: int

    def as_abi(self) -> tuple[int, int, int, int, int]:
        return (self.fee_bps, self.min_fee_bps, self.max_fee_bps, self.valid_from,
                self.valid_until)  # fmt: skip

    @classmethod
    def from_abi(cls, v: Sequence[int]) -> Partnership:
        return cls(*(int(x) for x in v))

    def fee_at(self, now: int) -> int:
        """The fee share in force at `now` (0 outside the validity period)."""
        return self.fee_bps if self.valid_from <= now <= self.valid_until else 0


class ServicingCalls:
    """Typed methods for the partnership, guarantee, classification and recovery calls."""

    registry: Any
    servicing: Any
    transact: Any
    call: Any

    # ------------------------------------------------------------------ partnerships (registry)

    def offer_partnership(self, platform: str, terms: Partnership) -> Any:
        """A bank offers `platform` these terms; they bind once the platform accepts them."""
        return self.transact(self.registry, "offerPartnership", platform, terms.as_abi())

    def accept_partnership(self, bank: str, terms: Partnership) -> Any:
        """The platform accepts exactly the terms `bank` offered."""
        return self.transact(self.registry, "acceptPartnership", bank, terms.as_abi())

    def partnership(self, bank: str, platform: str) -> Partnership:
        return Partnership.from_abi(self.call(self.registry, "partnership", bank, platform))

    def service_fees(
        self, platform: str, lenders: Sequence[str], interest: Sequence[int]
    ) -> list[int]:
        return list(
            self.call(self.registry, "serviceFees", platform, list(lenders), list(interest))
        )

    # ------------------------------------------------------------------ LoanServicing

    def offer_guarantee(self, loan_id: bytes, cover_bps: int) -> Any:
        return self.transact(self.servicing, "offerGuarantee", loan_id, cover_bps)

    def accept_guarantee(self, loan: CoLoan, guarantor: str, cover_bps: int) -> Any:
        return self.transact(self.servicing, "acceptGuarantee", loan.as_abi(), guarantor, cover_bps)

    def compensate(self, loan: CoLoan) -> Any:
        return self.transact(self.servicing, "compensate", loan.as_abi())

    def release_guarantee(self, loan: CoLoan) -> Any:
        return self.transact(self.servicing, "releaseGuarantee", loan.as_abi())

    def classify(self, loan: CoLoan, schedule: Sequence[Instalment], category: int) -> Any:
        words = sched.words(schedule)
        return self.transact(self.servicing, "classify", loan.as_abi(), words, int(category))

    def prepay(self, loan: CoLoan, schedule: Sequence[Instalment]) -> Any:
        """Record that the principal repaid includes a prepayment: `schedule` is the schedule in
        force; the contract rescales its remaining instalments (ledger.prepayment)."""
        words = sched.words(schedule)
        return self.transact(self.servicing, "prepay", loan.as_abi(), words)

    def current_schedule(self, loan_id: bytes) -> tuple[bytes, int]:
        """(first 24 bytes of the digest of the schedule in force after the last prepayment, the
        principal repaid before it starts); zero bytes if never prepaid."""
        d, base = self.call(self.servicing, "currentSchedule", loan_id)
        return bytes(d), int(base)

    def recover(self, loan: CoLoan, recovery_id: bytes, amount: int) -> Any:
        return self.transact(self.servicing, "recover", loan.as_abi(), recovery_id, amount)

    def guarantee_of(self, loan_id: bytes) -> dict[str, Any]:
        g = self.call(self.servicing, "guaranteeOf", loan_id)
        return {"guarantor": g[0], "cover_bps": g[1], "amount": g[2], "settled": g[3]}

    def offer_of(self, loan_id: bytes, guarantor: str) -> int:
        """The cover `guarantor` offers on the loan, not yet accepted (0 if none)."""
        return int(self.call(self.servicing, "offerOf", loan_id, guarantor))

    def guaranteed_outstanding(self, guarantor: str) -> int:
        return self.call(self.servicing, "guaranteedOutstanding", guarantor)

    def compensation_of(self, loan_id: bytes) -> list[int]:
        return list(self.call(self.servicing, "compensationOf", loan_id))

    def classification_of(self, loan_id: bytes, lender: str) -> int | None:
        recorded, category = self.call(self.servicing, "classificationOf", loan_id, lender)
        return int(category) if recorded else None

    def recovered(self, loan_id: bytes) -> int:
        return self.call(self.servicing, "recovered", loan_id)

    def chain_days_past_due(
        self, schedule: Sequence[Instalment], principal_repaid: int, at: int
    ) -> int:
        """LoanServicing.daysPastDue: the chain's own count, for agreement checks."""
        words = sched.words(schedule)
        return self.call(self.servicing, "daysPastDue", words, principal_repaid, at)

    def chain_rescale(
        self, schedule: Sequence[Instalment], principal_repaid: int, at: int
    ) -> tuple[int, int, list[int]]:
        """LoanServicing.rescale: the chain's prepayment rule (covered, prepaid, new words)."""
        words = sched.words(schedule)
        k, extra, out = self.call(self.servicing, "rescale", words, principal_repaid, at)
        return int(k), int(extra), [int(w) for w in out]

    def chain_schedule_digest(self, schedule: Sequence[Instalment]) -> bytes:
        return bytes(self.call(self.servicing, "scheduleDigest", sched.words(schedule)))
