"""Undoing ledger events, newest first, for a reorg rollback.

Each function is the exact inverse of what `ledger.rules.apply_*` (through the projection) did
for that event, so that undoing the orphaned events in reverse order puts every outstanding
amount, status and aggregate back where it stood at the common ancestor. Rows the events
created are deleted by block number afterwards (`ledger.indexer`); registry state is rebuilt by
replaying the registry's remaining events, which are few.

Where the state an undo starts from is not what the event left behind, the database and the
events disagree and `ProjectionError` stops the rollback (its transaction is not committed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ledger import allocation
from ledger.domain import ZERO32, CoLoan, LineStatus, LoanStatus, Tranche
from ledger.ingest.common import ProjectionError, unhex
from ledger.ingest.decode import ChainEvent
from ledger.ingest.projection import Projection
from ledger.rules import Book


def _open(book: Book, key: bytes, parties: Sequence[Tranche]) -> None:
    records = book.borrower(key).open_records
    for t in parties:
        idx = book.members[t.lender].index
        records[idx] = records.get(idx, 0) + 1


def _close(book: Book, key: bytes, parties: Sequence[Tranche]) -> None:
    records = book.borrower(key).open_records
    for t in parties:
        idx = book.members[t.lender].index
        n = records.get(idx, 0) - 1
        if n < 0:
            raise ProjectionError(f"borrower 0x{key.hex()} has no open record with member {idx}")
        if n == 0:
            records.pop(idx, None)
        else:
            records[idx] = n


def _restore(p: Projection, loan: CoLoan, amounts: Sequence[int], principal: int) -> None:
    """Inverse of rules._release: principal flows back into a loan."""
    book = p.book
    for t, a in zip(loan.tranches, amounts, strict=True):
        p.pair(loan.borrower_key, t.lender).loan_outstanding += a
        if t.lender == loan.platform or a == 0:
            continue
        book.lender_total[t.lender] = book.lender_total.get(t.lender, 0) + a
        k = (t.lender, loan.platform)
        book.lender_partner[k] = book.lender_partner.get(k, 0) + a
    if principal == 0:
        return
    counted = True
    if loan.line_id != ZERO32:
        line = p.line(loan.line_id)
        line.drawn += principal
        counted = line.status != LineStatus.ACTIVE
    if counted:
        book.borrower(loan.borrower_key).exposure[loan.product] += principal


def _originated(p: Projection, ev: ChainEvent) -> None:
    rec = p.loan(unhex(ev.args["loanId"]))
    loan, book = rec.loan, p.book
    if rec.outstanding != loan.principal or rec.status != LoanStatus.ACTIVE:
        raise ProjectionError(f"loan 0x{loan.loan_id.hex()} still has later activity")
    if loan.line_id == ZERO32:
        book.borrower(loan.borrower_key).exposure[loan.product] -= loan.principal
    else:
        p.line(loan.line_id).drawn -= loan.principal
    _close(book, loan.borrower_key, loan.tranches)
    for t in loan.tranches:
        p.pair(loan.borrower_key, t.lender).loan_outstanding -= t.amount
        if t.lender != loan.platform:
            book.lender_total[t.lender] -= t.amount
            book.lender_partner[(t.lender, loan.platform)] -= t.amount
    del book.loans[loan.loan_id]
    p.dead_loans.add(loan.loan_id)
    p.touch_loan(loan)


def _granted(p: Projection, ev: ChainEvent) -> None:
    ln = p.line(unhex(ev.args["lineId"]))
    line = ln.line
    if ln.status != LineStatus.ACTIVE or ln.drawn != 0:
        raise ProjectionError(f"line 0x{line.line_id.hex()} still has later activity")
    p.book.borrower(line.borrower_key).exposure[line.product] -= line.limit
    _close(p.book, line.borrower_key, line.shares)
    for s in line.shares:
        p.pair(line.borrower_key, s.lender).line_limit -= s.amount
    del p.book.lines[line.line_id]
    p.dead_lines.add(line.line_id)
    p.touch_line(line)


def _line_ended(p: Projection, ev: ChainEvent) -> None:
    ln = p.line(unhex(ev.args["lineId"]))
    line = ln.line
    if ln.status != LineStatus(ev.args["status"]) or ln.drawn != ev.args["drawn"]:
        raise ProjectionError(f"line 0x{line.line_id.hex()} is not as its end left it")
    p.book.borrower(line.borrower_key).exposure[line.product] += line.limit - ln.drawn
    _open(p.book, line.borrower_key, line.shares)
    for s in line.shares:
        p.pair(line.borrower_key, s.lender).line_limit += s.amount
    ln.status = LineStatus.ACTIVE
    p.ended[line.line_id] = None
    p.touch_line(line)


def _repaid(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    rec = p.loan(unhex(a["loanId"]))
    loan = rec.loan
    if rec.outstanding != a["outstanding"] or rec.status == LoanStatus.REPAID:
        raise ProjectionError(f"loan 0x{loan.loan_id.hex()} is not as repayment left it")
    _restore(p, loan, a["principalAllocation"], a["principal"])
    rec.outstanding += a["principal"]
    paid = p.paid[loan.loan_id]
    for i in range(len(loan.tranches)):
        paid[i][0] -= a["principalAllocation"][i]
        paid[i][1] -= a["interestAllocation"][i]
    p.book.repayment_ids.discard(unhex(a["repaymentId"]))
    p.touch_loan(loan)


def _status(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    rec = p.loan(unhex(a["loanId"]))
    loan, frm, to = rec.loan, LoanStatus(a["from"]), LoanStatus(a["to"])
    if rec.status != to:
        raise ProjectionError(f"loan 0x{loan.loan_id.hex()} is {rec.status.name}, not {to.name}")
    if to == LoanStatus.WRITTEN_OFF:
        released = a["releasedPrincipal"]
        amounts = [t.amount for t in loan.tranches]
        _restore(p, loan, allocation.outstanding(amounts, loan.principal, released), released)
        rec.outstanding = released
    if to in (LoanStatus.WRITTEN_OFF, LoanStatus.REPAID):
        _open(p.book, loan.borrower_key, loan.tranches)  # the loan is open again
    rec.status = frm
    p.touch_loan(loan)


_UNDO: dict[str, Callable[[Projection, ChainEvent], None]] = {
    "LoanOriginated": _originated,
    "LineGranted": _granted,
    "LineEnded": _line_ended,
    "Repaid": _repaid,
    "LoanStatusChanged": _status,
}


def undo(p: Projection, ev: ChainEvent) -> None:
    """Undo one ledger event; events must come newest first. Registry events are not undone
    here (the rollback replays the registry instead)."""
    handler = _UNDO.get(ev.name)
    if handler is None:
        return
    try:
        handler(p, ev)
    except KeyError as exc:
        raise ProjectionError(
            f"undo {ev.name} at block {ev.block_number} log {ev.log_index}: no state for {exc}"
        ) from exc
