"""The platform node's keeper that moves its loans' status with days past due (issue 16 item 5).

Each tick, for every open loan of this platform whose schedule the node holds, days past due
are computed from the schedule in force (after any prepayment) and the principal repaid on
chain (ledger.economics, the same count LoanServicing judges classifications by) as of the
chain's clock:
- DPD 0 and overdue: back to active;
- DPD >= 1 and active: overdue;
- DPD > `default_after_dpd` (default 90, where the floor turns substandard) and overdue:
  defaulted (the guarantor may then compensate).
A write-off stays a human decision. Refusals that mean another actor got there first, or a
pause, are left for the next tick.
"""

from __future__ import annotations

import logging

from sqlmodel import Session, select

from api.service import prepayments, schedules
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from api.service.periodic import Periodic
from api.store import LoanSchedule
from ledger.chain.errors import ContractRevert
from ledger.domain import LoanStatus

log = logging.getLogger("api.keeper")
REASON = b"DPD".ljust(32, b"\0")
_SETTLED = frozenset({"IllegalTransition", "LoanNotOpen", "LedgerPaused", "UnknownLoan"})


class DpdKeeper(Periodic):
    """A background thread ticking every `interval_s` seconds (see the module's doc)."""

    name = "dpd-keeper"

    def __init__(
        self, ctx: MemberContext, chain: ConsortiumView, default_after_dpd: int, interval_s: float
    ) -> None:
        super().__init__(interval_s)
        self.ctx, self.chain, self.default_after = ctx, chain, default_after_dpd
        self._closed: set[bytes] = set()

    def tick(self) -> list[tuple[bytes, LoanStatus]]:
        """Move each of this platform's open loans to the status its DPD calls for; the moves."""
        _head, now = self.chain.now()
        with Session(self.ctx.engine) as s:
            ids = [bytes.fromhex(r[2:]) for r in s.exec(select(LoanSchedule.loan_id))]
        moves = []
        for lid in ids:
            if lid in self._closed:
                continue
            held = schedules.load(self.ctx.engine, lid)
            rec = self.chain.find_loan(lid)
            if held is None or rec is None or rec.loan.platform != self.ctx.address:
                continue
            outstanding, status = self.chain.loan_state(lid)
            if status not in (LoanStatus.ACTIVE, LoanStatus.OVERDUE):
                self._closed.add(lid)
                continue
            cur = prepayments.in_force(self.ctx, lid, held[1])
            dpd = cur.days_past_due(rec.loan.principal - outstanding, now)
            for to in self._path(status, dpd):
                try:
                    self.ctx.client.set_status(rec.loan, to, REASON)
                except ContractRevert as exc:
                    if exc.code in _SETTLED:
                        break
                    raise
                log.info("loan 0x%s: %s at %d days past due", lid.hex(), to.name.lower(), dpd)
                moves.append((lid, to))
        return moves

    def _path(self, status: LoanStatus, dpd: int) -> list[LoanStatus]:
        if dpd == 0:
            return [LoanStatus.ACTIVE] if status == LoanStatus.OVERDUE else []
        path = [LoanStatus.OVERDUE] if status == LoanStatus.ACTIVE else []
        if dpd > self.default_after:
            path.append(LoanStatus.DEFAULTED)
        return path
