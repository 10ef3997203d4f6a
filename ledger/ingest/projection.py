"""Events into read-model state, with the contract's own accounting.

The ledger side runs `ledger.rules.Book` and its `apply_*` functions, the same Python model of
the contract's storage the pre-checks use, over the slice of state one batch of events touches
(loaded by `ledger.ingest.state`). Where an event carries what the contract computed (repayment
allocations, released principal, a line's limit and drawn amount), the model's result must
agree, or indexing stops with `ProjectionError`: a read model that silently disagrees with the
chain is worse than one that is behind.

Besides the Book, the projection keeps what the chain does not: each borrower's outstanding
principal and line limits per institution, and each tranche's principal and interest paid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger import allocation
from ledger.chain.events import ChainEvent
from ledger.domain import (
    DEFAULT_POLICY,
    ZERO32,
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
)
from ledger.ingest import registry, servicing
from ledger.ingest.common import ProjectionError, book_member, unhex
from ledger.rules import (
    Book,
    LineState,
    LoanState,
    apply_line,
    apply_line_end,
    apply_loan,
    apply_repayment,
    apply_write_off,
)


@dataclass(slots=True)
class Pair:
    """One borrower with one institution (a borrower_lenders row, less open_records, which the
    Book keeps per member index)."""

    member_index: int
    loan_outstanding: int = 0
    line_limit: int = 0


@dataclass(slots=True)
class RecordMeta:
    """Where a loan or line came from; only for records created in this batch."""

    policy_version: int
    block_number: int
    tx_hash: bytes
    log_index: int
    signatures: list[bytes]


@dataclass
class Projection:
    """State for one batch: load, apply events in order, flush."""

    members: dict[str, dict[str, Any]]  # members rows by address
    consortium: dict[str, Any] | None
    book: Book = field(init=False)
    pairs: dict[tuple[bytes, str], Pair] = field(default_factory=dict)
    paid: dict[bytes, list[list[int]]] = field(default_factory=dict)  # [principal, interest]
    ended: dict[bytes, int | None] = field(default_factory=dict)  # line -> ended_block
    new_loans: dict[bytes, RecordMeta] = field(default_factory=dict)
    new_lines: dict[bytes, RecordMeta] = field(default_factory=dict)
    touched_loans: set[bytes] = field(default_factory=set)
    touched_lines: set[bytes] = field(default_factory=set)
    touched_borrowers: set[bytes] = field(default_factory=set)
    touched_pairs: set[tuple[bytes, str]] = field(default_factory=set)
    touched_lenders: set[str] = field(default_factory=set)
    touched_partners: set[tuple[str, str]] = field(default_factory=set)
    touched_members: set[str] = field(default_factory=set)
    # a bank's latest category per (loan, bank): LoanServicing's Classified (ingest.servicing)
    classified: dict[tuple[bytes, str], int] = field(default_factory=dict)
    consortium_touched: bool = False
    inserts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The policy is irrelevant here: the apply_* functions record, they do not judge.
        self.book = Book(policy=DEFAULT_POLICY)
        for address, row in self.members.items():
            self.book.members[address] = book_member(row)

    # ------------------------------------------------------------------ plumbing

    def insert(self, table: str, row: dict[str, Any]) -> None:
        self.inserts.setdefault(table, []).append(row)

    def loan(self, loan_id: bytes) -> LoanState:
        rec = self.book.loans.get(loan_id)
        if rec is None:
            raise ProjectionError(f"unknown loan 0x{loan_id.hex()}")
        return rec

    def line(self, line_id: bytes) -> LineState:
        ln = self.book.lines.get(line_id)
        if ln is None:
            raise ProjectionError(f"unknown credit line 0x{line_id.hex()}")
        return ln

    def pair(self, key: bytes, lender: str) -> Pair:
        p = self.pairs.get((key, lender))
        if p is None:
            p = self.pairs[(key, lender)] = Pair(self.book.members[lender].index)
        return p

    def touch_loan(self, loan: CoLoan) -> None:
        self.touched_loans.add(loan.loan_id)
        self.touched_borrowers.add(loan.borrower_key)
        for t in loan.tranches:
            self.touched_pairs.add((loan.borrower_key, t.lender))
            if t.lender != loan.platform:
                self.touched_lenders.add(t.lender)
                self.touched_partners.add((t.lender, loan.platform))
        if loan.line_id != ZERO32:
            self.touched_lines.add(loan.line_id)

    def touch_line(self, line: CreditLine) -> None:
        self.touched_lines.add(line.line_id)
        self.touched_borrowers.add(line.borrower_key)
        for s in line.shares:
            self.touched_pairs.add((line.borrower_key, s.lender))

    def consortium_row(self) -> dict[str, Any]:
        if self.consortium is None:
            self.consortium = {
                "id": 1,
                "governor": None,
                "pending_governor": None,
                "paused": False,
                "policy_version": 0,
            }
        self.consortium_touched = True
        return self.consortium

    def member_row(self, address: str) -> dict[str, Any]:
        row = self.members.get(address)
        if row is None:
            raise ProjectionError(f"event for {address}, which was never admitted")
        self.touched_members.add(address)
        return row

    # ------------------------------------------------------------------ forward

    def apply(self, ev: ChainEvent) -> None:
        handler = _FORWARD.get(ev.name)
        if handler is None:
            return
        try:
            handler(self, ev)
        except KeyError as exc:
            raise ProjectionError(
                f"{ev.name} at block {ev.block_number} log {ev.log_index}: no state for {exc}"
            ) from exc

    # ledger

    def _created(
        self, ev: ChainEvent, rid: bytes, book: dict, new: dict[bytes, RecordMeta], what: str
    ) -> None:
        """A loan or line is new: it must not exist yet, and its provenance is kept."""
        if rid in book:
            kind, verb = what.split()
            raise ProjectionError(f"{kind} 0x{rid.hex()} {verb} twice")
        new[rid] = _meta(ev)

    def _originated(self, ev: ChainEvent) -> None:
        loan = CoLoan.from_abi(ev.args["loan"])
        self._created(ev, loan.loan_id, self.book.loans, self.new_loans, "loan originated")
        apply_loan(self.book, loan)
        self.paid[loan.loan_id] = [[0, 0] for _ in loan.tranches]
        for t in loan.tranches:
            self.pair(loan.borrower_key, t.lender).loan_outstanding += t.amount
        self.touch_loan(loan)

    def _granted(self, ev: ChainEvent) -> None:
        line = CreditLine.from_abi(ev.args["line"])
        self._created(ev, line.line_id, self.book.lines, self.new_lines, "line granted")
        apply_line(self.book, line)
        self.ended[line.line_id] = None
        for s in line.shares:
            self.pair(line.borrower_key, s.lender).line_limit += s.amount
        self.touch_line(line)

    def _line_ended(self, ev: ChainEvent) -> None:
        a = ev.args
        ln = self.line(unhex(a["lineId"]))
        if ln.status != LineStatus.ACTIVE or (ln.line.limit, ln.drawn) != (a["limit"], a["drawn"]):
            raise ProjectionError(f"line 0x{ln.line.line_id.hex()} ended from another state")
        apply_line_end(self.book, ln.line.line_id, LineStatus(a["status"]))
        for s in ln.line.shares:
            self.pair(ln.line.borrower_key, s.lender).line_limit -= s.amount
        self.ended[ln.line.line_id] = ev.block_number
        self.touch_line(ln.line)

    def _repaid(self, ev: ChainEvent) -> None:
        a = ev.args
        rec = self.loan(unhex(a["loanId"]))
        loan = rec.loan
        alloc = apply_repayment(self.book, loan.loan_id, unhex(a["repaymentId"]), a["principal"])
        amounts = [t.amount for t in loan.tranches]
        interest = allocation.split(amounts, loan.principal, a["interest"])
        if (alloc, interest, rec.outstanding) != (
            a["principalAllocation"],
            a["interestAllocation"],
            a["outstanding"],
        ):
            raise ProjectionError(
                f"repayment {a['repaymentId']}: the contract split it as "
                f"{a['principalAllocation']}/{a['interestAllocation']}, "
                f"Python as {alloc}/{interest}"
            )
        paid = self.paid[loan.loan_id]
        for i, t in enumerate(loan.tranches):
            paid[i][0] += alloc[i]
            paid[i][1] += interest[i]
            self.pair(loan.borrower_key, t.lender).loan_outstanding -= alloc[i]
            self.insert(
                "repayment_allocations",
                {
                    "repayment_id": unhex(a["repaymentId"]),
                    "idx": i,
                    "lender": t.lender,
                    "principal": alloc[i],
                    "interest": interest[i],
                    "block_number": ev.block_number,
                },
            )
        self.insert(
            "repayments",
            {
                "repayment_id": unhex(a["repaymentId"]),
                "loan_id": loan.loan_id,
                "principal": a["principal"],
                "interest": a["interest"],
                "outstanding_after": a["outstanding"],
                "block_number": ev.block_number,
                "log_index": ev.log_index,
                "tx_hash": ev.tx_hash,
            },
        )
        self.touch_loan(loan)

    def _status(self, ev: ChainEvent) -> None:
        a = ev.args
        rec = self.loan(unhex(a["loanId"]))
        loan, frm, to = rec.loan, LoanStatus(a["from"]), LoanStatus(a["to"])
        if to == LoanStatus.REPAID:
            # apply_repayment closed the loan on the Repaid event just before, as the contract
            # does in the same call
            if rec.status != LoanStatus.REPAID:
                raise ProjectionError(f"loan 0x{loan.loan_id.hex()} marked repaid while open")
        elif rec.status != frm:
            raise ProjectionError(f"loan 0x{loan.loan_id.hex()} is {rec.status.name}, not {frm}")
        elif to == LoanStatus.WRITTEN_OFF:
            amounts = [t.amount for t in loan.tranches]
            remaining = allocation.outstanding(amounts, loan.principal, rec.outstanding)
            if apply_write_off(self.book, loan.loan_id) != a["releasedPrincipal"]:
                raise ProjectionError(f"loan 0x{loan.loan_id.hex()}: released principal differs")
            for t, r in zip(loan.tranches, remaining, strict=True):
                self.pair(loan.borrower_key, t.lender).loan_outstanding -= r
        else:
            rec.status = to
        self.insert(
            "loan_status_changes",
            {
                "block_number": ev.block_number,
                "log_index": ev.log_index,
                "loan_id": loan.loan_id,
                "from_status": int(frm),
                "to_status": int(to),
                "reason": unhex(a["reason"]),
                "released_principal": a["releasedPrincipal"],
                "tx_hash": ev.tx_hash,
            },
        )
        self.touch_loan(loan)

    def _rejected(self, ev: ChainEvent) -> None:
        self.insert(
            "loan_rejections",
            {
                "block_number": ev.block_number,
                "log_index": ev.log_index,
                "loan_id": unhex(ev.args["loanId"]),
                "reason": unhex(ev.args["reason"]),
                "tx_hash": ev.tx_hash,
            },
        )


def _meta(ev: ChainEvent) -> RecordMeta:
    return RecordMeta(
        policy_version=ev.args["policyVersion"],
        block_number=ev.block_number,
        tx_hash=ev.tx_hash,
        log_index=ev.log_index,
        signatures=[unhex(s) for s in ev.args["signatures"]],
    )


_FORWARD: dict[str, Callable[[Projection, ChainEvent], None]] = {
    **registry.HANDLERS,
    **servicing.HANDLERS,
    "LoanOriginated": Projection._originated,
    "LineGranted": Projection._granted,
    "LineEnded": Projection._line_ended,
    "Repaid": Projection._repaid,
    "LoanStatusChanged": Projection._status,
    "LoanRejected": Projection._rejected,
}
