"""The audit's replay of the loan economics: each repayment's service fees against the
partnership terms in force at its block, every guarantee payout and recovery split to the fen,
every prepayment's new schedule (its principal sums to the outstanding, it starts after the
principal repaid, and, for a held schedule, it is what ledger.prepayment's rule gives), and, for
loans whose schedule the auditor holds (a node's database), the schedule against its signed
digest and the declared all-in APR against the IRR recomputed from it.

Mixed into ledger.audit.replay.Replay, which dispatches events by name (`_on_<Event>`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger import allocation, apr, apr_bounds, economics
from ledger import schedule as sched
from ledger.audit.events import ChainEvent
from ledger.domain import ZERO32, CoLoan, to_hex
from ledger.prepayment import InForce

# a declared APR may be this many bps below the recomputed one (rounding) before it is flagged
APR_TOLERANCE_BPS = 1

Schedules = Mapping[bytes, tuple[int, tuple[sched.Instalment, ...]]]


class EconomicsChecks:
    """Economics handlers; state kept per replay."""

    report: Any
    book: Any
    timestamps: dict[int, int]
    schedules: Schedules
    records: dict[str, int]

    def _economics_init(self, schedules: Schedules | None) -> None:
        self.schedules = schedules or {}
        self.partnerships: dict[tuple[str, str], tuple[int, int, int]] = {}
        self.interest_splits: dict[bytes, tuple[bytes, list[int]]] = {}
        self.recovered: dict[bytes, int] = {}
        self.in_force: dict[bytes, InForce] = {}
        self.records.update(
            {"fee_splits": 0, "compensations": 0, "recoveries": 0, "schedules_checked": 0,
             "prepayments": 0}
        )  # fmt: skip

    def _eflag(
        self, ev: ChainEvent, record: bytes, code: str, message: str, **details: Any
    ) -> None:
        self.report.add(
            "economics", code, message, record=to_hex(record), where=ev.where, details=details
        )

    def check_schedule(self, ev: ChainEvent, loan: CoLoan) -> None:
        """The held schedule hashes to the signed digest, sums to the principal, and the declared
        APR is not more than APR_TOLERANCE_BPS below the IRR recomputed from it, from the start
        the signed terms define (last due - term_days days). The contract refuses such a loan
        since it checks the schedule sent with it (ScheduleCheck); this replay still catches one
        recorded by an older deployment, or in the few-fen gap of the contract's bounds."""
        held = self.schedules.get(loan.loan_id)
        if held is None or loan.schedule_digest == ZERO32:
            return
        _held_start, rows = held
        self.records["schedules_checked"] += 1
        if sched.digest(rows) != loan.schedule_digest:
            self._eflag(
                ev,
                loan.loan_id,
                "ScheduleMismatch",
                "the schedule held does not hash to the signed digest",
            )
            return
        try:
            sched.check(rows, loan.principal)
            # the start the signed terms define (the chain judges the APR from it too)
            start = apr_bounds.start_of(rows[-1].due, loan.term_days)
            true_apr = apr.all_in_apr_bps(rows, loan.principal, start)
        except (sched.ScheduleError, ValueError) as exc:
            self._eflag(ev, loan.loan_id, "InvalidSchedule", str(exc))
            return
        if loan.apr_bps < true_apr - APR_TOLERANCE_BPS:
            self._eflag(
                ev,
                loan.loan_id,
                "AprUnderstated",
                f"declared all-in APR {loan.apr_bps} bps, the schedule's IRR is {true_apr}",
                declared=loan.apr_bps,
                computed=true_apr,
            )

    def _on_PartnershipSigned(self, ev: ChainEvent) -> None:  # noqa: N802
        t = ev.args["terms"]
        terms = (t["feeBps"], t["validFrom"], t["validUntil"])
        self.partnerships[(ev.args["bank"], ev.args["platform"])] = terms

    def remember_interest(self, ev: ChainEvent, loan_id: bytes, split: list[int]) -> None:
        self.interest_splits[bytes(ev.args["repaymentId"])] = (loan_id, split)

    def _on_ServiceFees(self, ev: ChainEvent) -> None:  # noqa: N802
        rid = bytes(ev.args["repaymentId"])
        lid, split = self.interest_splits.get(rid, (bytes(ev.args["loanId"]), None))
        rec = self.book.loans.get(lid)
        if split is None or rec is None:
            self._eflag(ev, rid, "UnknownRepayment", "service fees of a repayment never recorded")
            return
        self.records["fee_splits"] += 1
        now = self.timestamps[ev.block_number]
        loan = rec.loan
        fee_bps = []
        for t in loan.tranches:
            terms = self.partnerships.get((t.lender, loan.platform))
            ok = t.lender != loan.platform and terms is not None and terms[1] <= now <= terms[2]
            fee_bps.append(terms[0] if ok and terms else 0)
        want = [economics.service_fee(x, b) for x, b in zip(split, fee_bps, strict=True)]
        got = list(ev.args["fees"])
        if got != want:
            self._eflag(
                ev,
                lid,
                "FeeSplitMismatch",
                f"fees {got}, the partnership terms give {want}",
                fees=got,
                expected=want,
            )

    def _on_Compensated(self, ev: ChainEvent) -> None:  # noqa: N802
        lid = bytes(ev.args["loanId"])
        self.records["compensations"] += 1
        payouts = list(ev.args["payouts"])
        if sum(payouts) != ev.args["total"]:
            self._eflag(
                ev,
                lid,
                "PayoutSumMismatch",
                f"payouts sum to {sum(payouts)}, the event says {ev.args['total']}",
            )
        rec = self.book.loans.get(lid)
        if rec is not None:
            amounts = [t.amount for t in rec.loan.tranches]
            left = allocation.outstanding(amounts, rec.loan.principal, rec.outstanding)
            if any(p > o for p, o in zip(payouts, left, strict=True)):
                self._eflag(
                    ev,
                    lid,
                    "PayoutExceedsOutstanding",
                    f"payouts {payouts} exceed tranche outstanding {left}",
                )

    def _on_Recovered(self, ev: ChainEvent) -> None:  # noqa: N802
        lid = bytes(ev.args["loanId"])
        rec = self.book.loans.get(lid)
        if rec is None:
            self._eflag(ev, lid, "UnknownLoan", "recovery on a loan never originated")
            return
        self.records["recoveries"] += 1
        before = self.recovered.get(lid, 0)
        after = before + ev.args["amount"]
        self.recovered[lid] = after
        amounts = [t.amount for t in rec.loan.tranches]
        want = economics.split_recovery(amounts, rec.loan.principal, before, after)
        if list(ev.args["split"]) != want:
            self._eflag(
                ev,
                lid,
                "RecoverySplitMismatch",
                f"split {list(ev.args['split'])}, the rounding rule gives {want}",
            )

    def _on_Prepaid(self, ev: ChainEvent) -> None:  # noqa: N802
        """The new schedule hashes to its digest, carries exactly the outstanding principal and
        starts after the principal repaid; with the schedule held, it is the rule's."""
        lid = bytes(ev.args["loanId"])
        rec = self.book.loans.get(lid)
        if rec is None:
            self._eflag(ev, lid, "UnknownLoan", "prepayment on a loan never originated")
            return
        self.records["prepayments"] += 1
        a = ev.args
        words = [int(w) for w in a["schedule"]]
        rows = tuple(sched.Instalment.from_word(w) for w in words)
        repaid = rec.loan.principal - rec.outstanding
        if sched.words_digest(words) != bytes(a["scheduleDigest"]):
            self._eflag(ev, lid, "ScheduleMismatch", "the new schedule does not hash to its digest")
        if sum(i.principal for i in rows) != rec.outstanding or a["principalBase"] != repaid:
            self._eflag(
                ev,
                lid,
                "PrepaymentMismatch",
                f"the new schedule carries {sum(i.principal for i in rows)} fen after "
                f"{a['principalBase']} repaid; the ledger has {rec.outstanding} outstanding "
                f"after {repaid}",
            )
        held = self.schedules.get(lid)
        if held is not None and sched.digest(held[1]) != rec.loan.schedule_digest:
            held = None  # named once, by check_schedule
        cur = self.in_force.get(lid) or (InForce(held[1]) if held else None)
        if cur is None:
            return
        try:
            after = cur.replay(int(a["principal"]), int(a["covered"]), int(a["principalBase"]))
        except ValueError as exc:
            self._eflag(ev, lid, "PrepaymentMismatch", str(exc))
            return
        self.in_force[lid] = after
        if after.rows != rows:
            self._eflag(
                ev,
                lid,
                "PrepaymentMismatch",
                "the new schedule is not what the prepayment rule gives",
            )


def held_schedules(database_url: str) -> Schedules:
    """The schedules a node holds (its api_loan_schedule table), by loan id; none if the
    database has no such table (a node from before schedules)."""
    import json

    import sqlalchemy as sa

    from ledger.store.db import database_url as normalised

    engine = sa.create_engine(normalised(database_url))
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("api_loan_schedule"):
                return {}
            rows = conn.execute(
                sa.text("SELECT loan_id, start, instalments FROM api_loan_schedule")
            )
            return {
                bytes.fromhex(lid[2:]): (int(start), sched.from_json(json.loads(text)))
                for lid, start, text in rows
            }
    finally:
        engine.dispose()
