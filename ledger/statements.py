"""A member's statement and portfolio from the chain's own events, so they reconcile to the fen
with the chain: per loan and in total, a bank's principal and interest received, the service fees
it paid the platform out of that interest, guarantee payouts (代偿) and recoveries; a platform's
fee income; a bank's outstanding by five-category classification."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger import allocation
from ledger.chain.events import ChainEvent
from ledger.domain import CoLoan, LoanStatus, to_hex
from ledger.economics import CATEGORY_NAMES, Category

_FIELDS = ("principal", "interest", "fees_paid", "interest_kept", "guarantee_payouts",
           "recoveries", "fee_income")  # fmt: skip


@dataclass
class Statement:
    member: str
    start: int
    end: int
    loans: dict[str, dict[str, int]] = field(default_factory=dict)

    def _line(self, loan_id: bytes) -> dict[str, int]:
        return self.loans.setdefault(to_hex(loan_id), dict.fromkeys(_FIELDS, 0))

    def as_json(self) -> dict[str, Any]:
        total = dict.fromkeys(_FIELDS, 0)
        for line in self.loans.values():
            for k in _FIELDS:
                total[k] += line[k]
        return {"member": self.member, "from": self.start, "to": self.end,
                "loans": self.loans, "total": total}  # fmt: skip


def statement(
    member: str, loans: Mapping[bytes, CoLoan], events: Iterable[ChainEvent], start: int, end: int
) -> Statement:
    """`member`'s statement over events whose block time is in [start, end). `events` carry
    their block timestamp; `loans` are the loans they name."""
    out = Statement(member, start, end)
    fees_by_repayment: dict[bytes, list[int]] = {}
    evs = [e for e in events if start <= e.timestamp < end]
    for e in evs:
        if e.name == "ServiceFees":
            fees_by_repayment[bytes(e.args["repaymentId"])] = list(e.args["fees"])
    for e in evs:
        loan = loans.get(bytes(e.args.get("loanId", b"")))
        if loan is None:
            continue
        idx = next((i for i, t in enumerate(loan.tranches) if t.lender == member), None)
        if e.name == "ServiceFees" and loan.platform == member:
            out._line(loan.loan_id)["fee_income"] += sum(e.args["fees"])
        if idx is None:
            continue
        line = out._line(loan.loan_id)
        if e.name == "Repaid":
            interest = e.args["interestAllocation"][idx]
            fee = fees_by_repayment.get(bytes(e.args["repaymentId"]), [0] * len(loan.tranches))[idx]
            line["principal"] += e.args["principalAllocation"][idx]
            line["interest"] += interest
            line["fees_paid"] += fee
            line["interest_kept"] += interest - fee
        elif e.name == "Compensated":
            line["guarantee_payouts"] += e.args["payouts"][idx]
        elif e.name == "Recovered":
            line["recoveries"] += e.args["split"][idx]
    return out


def portfolio(
    member: str,
    loans: Mapping[bytes, tuple[CoLoan, int, LoanStatus]],
    payouts: Mapping[bytes, list[int]],
    categories: Mapping[bytes, int],
) -> dict[str, Any]:
    """`member`'s outstanding principal per loan and by category. `loans`: (terms, the loan's
    outstanding, status) by id; `payouts`: compensatory payments per tranche (they reduce the
    banks' outstanding); `categories`: each loan's category for this member (its own recorded
    classification, else the floor's)."""
    by_category = {name: 0 for name in CATEGORY_NAMES.values()}
    rows = []
    for lid, (loan, outstanding, status) in loans.items():
        idx = next((i for i, t in enumerate(loan.tranches) if t.lender == member), None)
        if idx is None:
            continue
        amounts = [t.amount for t in loan.tranches]
        left = allocation.outstanding(amounts, loan.principal, outstanding)[idx]
        if status == LoanStatus.WRITTEN_OFF:
            left = 0
        left -= min(left, payouts.get(lid, [0] * len(amounts))[idx])
        category = CATEGORY_NAMES[Category(categories.get(lid, 0))]
        by_category[category] += left
        rows.append({"loan_id": to_hex(lid), "outstanding": left, "category": category,
                     "status": status.name.lower()})  # fmt: skip
    return {"member": member, "by_category": by_category, "total": sum(by_category.values()),
            "loans": rows}  # fmt: skip
