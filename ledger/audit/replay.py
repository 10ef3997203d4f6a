"""Replays the history record by record and judges each one as of its own block.

The registry's events rebuild who was a member in which role and status, the capital figures and
the policy version in force at every point; the ledger's events are judged against that state
with the same ledger.rules the nodes use, then applied to the same `Book`, so exposure and lender
usage are replayed exactly as the contract keeps them. Every record's EIP-712 digest is computed
once, before the judging starts, and its signers are recovered on worker threads meanwhile
(ledger.audit.signatures); the judging still compares each with its tranche's member in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from ledger import allocation, rules
from ledger.audit.events import ChainEvent
from ledger.audit.report import AuditReport
from ledger.audit.signatures import Recovery
from ledger.domain import (
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
    MemberStatus,
    Policy,
    Role,
    id_platform,
    to_hex,
)
from ledger.provenance import Domain, digest

# rule codes by the check that owns them
_PROVENANCE = {
    "NotActiveMember",
    "MemberIsFrozen",
    "WrongRole",
    "SubmitterNotPlatform",
    "IdOutsideNamespace",
    "NotServicer",
    "SignatureExpired",
    "LedgerPaused",
}
_ARITHMETIC = {
    "TrancheSumMismatch",
    "TranchesNotSorted",
    "ZeroAmount",
    "AmountTooLarge",
    "EmptyTranches",
    "PlatformTrancheMissing",
    "IdAlreadyUsed",
}
_LEGAL = {
    LoanStatus.ACTIVE: {LoanStatus.OVERDUE},
    LoanStatus.OVERDUE: {LoanStatus.ACTIVE, LoanStatus.DEFAULTED, LoanStatus.WRITTEN_OFF},
    LoanStatus.DEFAULTED: {LoanStatus.WRITTEN_OFF},
}

ContractSigCheck = Callable[[str, bytes, bytes, int], bool]


class Replay:
    def __init__(
        self,
        report: AuditReport,
        domain: Domain,
        timestamps: dict[int, int],
        contract_signature_ok: ContractSigCheck,
    ) -> None:
        self.report = report
        self.domain = domain
        self.timestamps = timestamps
        self.contract_signature_ok = contract_signature_ok
        self.book = rules.Book(policy=Policy())
        self.policies: list[Policy] = []
        self.signatures = 0
        self.repayments: dict[bytes, tuple[bytes, int, int, int]] = {}
        self.records = {
            "loans": 0,
            "lines": 0,
            "repayments": 0,
            "status_changes": 0,
            "line_ends": 0,
            "line_freezes": 0,
            "member_changes": 0,
            "attestations": 0,
            "policies": 0,
            "servicing_transfers": 0,
        }

    def run(self, events: Iterable[ChainEvent]) -> None:
        events = list(events)
        with Recovery() as recovery:
            self._recovery = recovery
            # every digest first: hashing beside the recovering threads would wait on the GIL at
            # each hash; the recovery then runs while the rules are judged
            self._prepared: deque[tuple[CoLoan | CreditLine, bytes | None]] = deque()
            for ev in events:
                if ev.name == "LoanOriginated":
                    self._prepare(CoLoan.from_abi(ev.args["loan"]), ev.args["signatures"])
                elif ev.name == "LineGranted":
                    self._prepare(CreditLine.from_abi(ev.args["line"]), ev.args["signatures"])
            recovery.start()
            for ev in events:
                handler = getattr(self, f"_on_{ev.name}", None)
                if handler is not None:
                    self._apply(handler, ev)

    def _apply(self, handler: Callable[[ChainEvent], None], ev: ChainEvent) -> None:
        """Run one event's handler; data the replay cannot place (a member, loan or line it never
        saw, e.g. from a ledger wired to another registry) is a violation, never a crash."""
        try:
            handler(ev)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            self.report.add(
                "state",
                "UnreplayableEvent",
                f"{ev.name} refers to data the replay does not know "
                f"({type(exc).__name__}: {exc})",
                where=ev.where,
            )

    def _prepare(self, record: CoLoan | CreditLine, signatures: list[bytes]) -> None:
        if len(signatures) != len(record.signers):
            self._prepared.append((record, None))  # a count mismatch: nothing to recover
            return
        d = digest(self.domain, record)
        for sig in signatures:
            self._recovery.add(d, bytes(sig))
        self._prepared.append((record, d))

    # ------------------------------------------------------------------ registry

    def _on_MemberAdmitted(self, ev: ChainEvent) -> None:  # noqa: N802 - event names
        m = rules.MemberState(role=Role(ev.args["role"]), index=ev.args["index"])
        self.book.members[ev.args["account"]] = m
        self.records["member_changes"] += 1

    def _on_MemberStatusChanged(self, ev: ChainEvent) -> None:  # noqa: N802
        m = self.book.members.get(ev.args["account"])
        if m is not None:
            m.status = MemberStatus(ev.args["to"])
        self.records["member_changes"] += 1

    def _on_MemberFrozen(self, ev: ChainEvent) -> None:  # noqa: N802
        m = self.book.members.get(ev.args["account"])
        if m is not None:
            m.frozen = bool(ev.args["frozen"])
        self.records["member_changes"] += 1

    def _on_CapitalAttested(self, ev: ChainEvent) -> None:  # noqa: N802
        m = self.book.members[ev.args["lender"]]
        m.tier1_capital = ev.args["tier1Capital"]
        m.total_loan_balance = ev.args["totalLoanBalance"]
        m.attested_until = ev.args["validUntil"]
        m.attested_at = self.timestamps[ev.block_number]
        self.records["attestations"] += 1

    def _on_PolicyUpdated(self, ev: ChainEvent) -> None:  # noqa: N802
        p = Policy.from_abi(ev.args["policy"])
        self.policies.append(p)
        self.book.policy = p
        if ev.args["version"] != len(self.policies):
            self.report.add(
                "rules",
                "PolicyVersionGap",
                f"policy version {ev.args['version']} follows {len(self.policies) - 1}",
                where=ev.where,
            )
        self.records["policies"] += 1

    def _on_ServicingTransferred(self, ev: ChainEvent) -> None:  # noqa: N802
        """A council-approved servicing transfer: only away from a suspended or removed platform,
        only to an active, unfrozen platform that kept its own servicing (as the registry
        checks); from now on the successor services what `from` did."""
        src, dst = ev.args["from"], ev.args["to"]
        f, t = self.book.members.get(src), self.book.members.get(dst)
        if f is None or f.role != Role.PLATFORM or f.status == MemberStatus.ACTIVE:
            self.report.add(
                "provenance", "ServicingNotTransferable", f"servicing moved away from {src}",
                where=ev.where,
            )  # fmt: skip
        if (
            t is None or t.role != Role.PLATFORM or t.status != MemberStatus.ACTIVE or t.frozen
            or dst in self.book.servicers
        ):  # fmt: skip
            self.report.add(
                "provenance", "InvalidServicer", f"servicing moved to {dst}", where=ev.where
            )
        self.book.servicers[src] = dst
        self.records["servicing_transfers"] += 1

    def _on_Paused(self, ev: ChainEvent) -> None:  # noqa: N802
        self.book.paused = True

    def _on_Unpaused(self, ev: ChainEvent) -> None:  # noqa: N802
        self.book.paused = False

    # ------------------------------------------------------------------ ledger records

    def _flag(self, ev: ChainEvent, record: bytes, check: str, code: str, message: str) -> None:
        """A violation by the record `record` (a loan, line or repayment id) in event `ev`."""
        self.report.add(check, code, message, record=to_hex(record), where=ev.where)

    def _judge(
        self, ev: ChainEvent, record: CoLoan | CreditLine, d: bytes | None, signatures: list[bytes]
    ) -> None:
        rid = to_hex(record.loan_id if isinstance(record, CoLoan) else record.line_id)
        now = self.timestamps[ev.block_number]
        if ev.args["policyVersion"] != len(self.policies):
            self.report.add(
                "rules",
                "PolicyVersionMismatch",
                f"judged under version {ev.args['policyVersion']}, "
                f"but version {len(self.policies)} was in force",
                record=rid,
                where=ev.where,
            )
        self._check_signatures(ev, record, d, signatures, rid)
        if isinstance(record, CoLoan):
            verdict = rules.check_loan(self.book, record, now)
        else:
            verdict = rules.check_line(self.book, record, now)
        if verdict is not None:
            check = (
                "provenance"
                if verdict.code in _PROVENANCE
                else "arithmetic"
                if verdict.code in _ARITHMETIC
                else "rules"
            )
            self.report.add(
                check,
                verdict.code,
                f"recorded although {verdict}",
                record=rid,
                where=ev.where,
                details={k: _plain(v) for k, v in verdict.values.items()},
            )

    def _check_signatures(
        self,
        ev: ChainEvent,
        record: CoLoan | CreditLine,
        d: bytes | None,
        signatures: list[bytes],
        rid: str,
    ) -> None:
        signers = record.signers
        if d is None:
            self.report.add(
                "provenance",
                "SignatureCountMismatch",
                f"{len(signatures)} signatures for {len(signers)} signers",
                record=rid,
                where=ev.where,
            )
            return
        for signer, sig in zip(signers, signatures, strict=True):
            self.signatures += 1
            # the signers were recovered in this order (see _prepare); None: not a valid signature
            ok = self._recovery.next() == bytes.fromhex(signer[2:])
            if not ok and not self.contract_signature_ok(signer, d, bytes(sig), ev.block_number):
                self.report.add(
                    "provenance",
                    "InvalidSignature",
                    f"no valid signature by {signer}",
                    record=rid,
                    where=ev.where,
                    details={"signer": signer},
                )

    def _on_LoanOriginated(self, ev: ChainEvent) -> None:  # noqa: N802
        loan, d = self._prepared.popleft()
        self._judge(ev, loan, d, ev.args["signatures"])
        if loan.loan_id in self.book.loans:
            return  # reported as IdAlreadyUsed; the first record stands
        rules.apply_loan(self.book, loan)
        self.records["loans"] += 1

    def _on_LineGranted(self, ev: ChainEvent) -> None:  # noqa: N802
        line, d = self._prepared.popleft()
        self._judge(ev, line, d, ev.args["signatures"])
        if line.line_id in self.book.lines:
            return
        rules.apply_line(self.book, line)
        self.records["lines"] += 1

    def _on_Repaid(self, ev: ChainEvent) -> None:  # noqa: N802
        lid = bytes(ev.args["loanId"])
        rec = self.book.loans.get(lid)
        if rec is None:
            self._flag(ev, lid, "arithmetic", "UnknownLoan", "repayment of a loan never originated")
            return
        self.records["repayments"] += 1
        principal, interest = ev.args["principal"], ev.args["interest"]
        rid = bytes(ev.args["repaymentId"])
        # the contract takes a repayment only from the loan's servicer, in its own namespace
        servicer = self.book.servicer(rec.loan.platform)
        if id_platform(rid) != servicer:
            self._flag(
                ev, rid, "provenance", "IdOutsideNamespace",
                f"repayment id outside the namespace of {servicer}, the loan's servicer",
            )  # fmt: skip
        if rid in self.book.repayment_ids:
            self._flag(ev, rid, "arithmetic", "IdAlreadyUsed", "repayment id used twice")
        if principal > rec.outstanding:
            self._flag(
                ev,
                lid,
                "arithmetic",
                "RepaymentExceedsOutstanding",
                f"repaid {principal} of {rec.outstanding} outstanding",
            )
            return
        amounts = [t.amount for t in rec.loan.tranches]
        expected_i = allocation.split(amounts, rec.loan.principal, interest)
        expected_p = rules.apply_repayment(self.book, lid, rid, principal)
        self.repayments[rid] = (lid, principal, interest, self.book.loans[lid].outstanding)
        for part, expected in (("principal", expected_p), ("interest", expected_i)):
            split = list(ev.args[f"{part}Allocation"])
            if split != expected:
                message = f"{part} split {split}, rounding rule gives {expected}"
                self._flag(ev, lid, "arithmetic", "AllocationMismatch", message)
        if ev.args["outstanding"] != self.book.loans[lid].outstanding:
            self._flag(
                ev,
                lid,
                "arithmetic",
                "OutstandingMismatch",
                f"event says {ev.args['outstanding']} outstanding, replay "
                f"{self.book.loans[lid].outstanding}",
            )

    def _on_LoanStatusChanged(self, ev: ChainEvent) -> None:  # noqa: N802
        lid = bytes(ev.args["loanId"])
        rec = self.book.loans.get(lid)
        to = LoanStatus(ev.args["to"])
        self.records["status_changes"] += 1
        if rec is None:
            self._flag(ev, lid, "arithmetic", "UnknownLoan", "status change of an unknown loan")
            return
        if to == LoanStatus.REPAID:
            if rec.status != LoanStatus.REPAID:
                self._flag(
                    ev,
                    lid,
                    "arithmetic",
                    "IllegalTransition",
                    "marked repaid with principal outstanding",
                )
            return
        if to not in _LEGAL.get(rec.status, set()):
            self._flag(ev, lid, "rules", "IllegalTransition", f"{rec.status.name} -> {to.name}")
        if to == LoanStatus.WRITTEN_OFF:
            released = rules.apply_write_off(self.book, lid)
            if released != ev.args["releasedPrincipal"]:
                self._flag(
                    ev,
                    lid,
                    "arithmetic",
                    "WriteOffMismatch",
                    f"released {ev.args['releasedPrincipal']}, outstanding was {released}",
                )
        else:
            rec.status = to

    def _on_LineShareFrozen(self, ev: ChainEvent) -> None:  # noqa: N802
        lid, lender = bytes(ev.args["lineId"]), ev.args["lender"]
        line = self.book.lines.get(lid)
        self.records["line_freezes"] += 1
        if line is None or line.status != LineStatus.ACTIVE:
            self._flag(ev, lid, "rules", "LineNotActive", "a share of an inactive line frozen")
            return
        index = self.book.members[lender].index
        if lender not in {t.lender for t in line.line.shares}:
            self._flag(
                ev, lid, "rules", "NotLineShareHolder", f"{lender} froze a line it does not fund"
            )
            return
        # later draws with a tranche from this bank are judged against it (rules: LineFrozen)
        if ev.args["frozen"]:
            line.frozen.add(index)
        else:
            line.frozen.discard(index)

    def _on_LineEnded(self, ev: ChainEvent) -> None:  # noqa: N802
        lid = bytes(ev.args["lineId"])
        line = self.book.lines.get(lid)
        self.records["line_ends"] += 1
        if line is None or line.status != LineStatus.ACTIVE:
            self._flag(ev, lid, "arithmetic", "LineNotActive", "an inactive line ended again")
            return
        if (ev.args["limit"], ev.args["drawn"]) != (line.line.limit, line.drawn):
            self._flag(
                ev,
                lid,
                "arithmetic",
                "LineMismatch",
                f"event limit/drawn {ev.args['limit']}/{ev.args['drawn']}, replay "
                f"{line.line.limit}/{line.drawn}",
            )
        status = LineStatus(ev.args["status"])
        now = self.timestamps[ev.block_number]
        if status == LineStatus.EXPIRED and now <= line.line.expires_at:
            # a line ends as expired only after the expiry its parties signed
            self._flag(
                ev,
                lid,
                "rules",
                "LineNotExpired",
                f"expired at {now}, before its signed expiry {line.line.expires_at}",
            )
        rules.apply_line_end(self.book, lid, status)


def _plain(v: object) -> object:
    return to_hex(v) if isinstance(v, bytes) else v
