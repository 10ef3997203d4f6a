"""Reads within the caller's scope: loans, a borrower's exposure, a lender's limits.

A node answers them from one read model, chosen once when it is built (api.wiring):
`IndexedReads` (api/service/indexed.py: its own indexer's database) or `ChainReads` (here:
the chain alone). Loan terms are not kept in contract storage (one slot per loan holds a
commitment), so on the chain they come from the `LoanOriginated` and `LineGranted` events,
filtered by their indexed loan id or borrower key; live figures (outstanding, status,
exposure, usage) come from the contract's views, all at one block so an answer is consistent.

Object-level rules (OWASP API1): the auditor sees every loan; the platform the loans it
originated; a lender the loans it funds a tranche of. Anything else is answered exactly as a
loan that does not exist, so an id cannot be probed for existence.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from api.auth import Principal
from api.problems import Problem
from api.schemas.common import chain_id_of
from api.schemas.reads import (
    ByProduct,
    Caps,
    ExposureOut,
    Headroom,
    LimitsOut,
    LoanView,
    PartnerUsage,
    Usage,
)
from api.service.consortium import ConsortiumView, Recorded
from ledger import allocation
from ledger.domain import ZERO32, CoLoan, LineStatus, Role, to_hex
from ledger.records import loan_view


class Exposure(NamedTuple):
    consumer: int
    business: int
    institutions: int
    consumer_cap: int
    business_cap: int
    max_institutions: int
    own: int | None
    block: int  # the block the figures are as of


class ReadModel(Protocol):
    """Where a node's scoped reads come from."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def lag(self, head: int) -> int | None:
        """Blocks behind `head`; None when there is nothing to be behind (the chain itself)."""

    def down(self) -> str | None:
        """Why the read model is not being kept now (its indexer process is not running)."""

    def as_of(self, head: int) -> int:
        """The block a read is answered as of: `head`, once the read model holds it."""

    def loan(self, loan_id: bytes, principal: Principal) -> LoanView | None: ...
    def loans_of(self, key: bytes, principal: Principal, block: int) -> list[LoanView]: ...
    def exposure(self, key: bytes, who: str | None, block: int) -> Exposure: ...


def in_scope(principal: Principal, loan: CoLoan) -> bool:
    if principal.role == "auditor":
        return True
    if principal.role == "platform":
        return loan.platform == principal.address
    if principal.role == "lender":
        return principal.address in loan.signers
    return False


def not_found(loan_id: str) -> Problem:
    return Problem(404, "LoanNotFound", f"no loan {loan_id} within your scope")


class ChainReads:
    """The read model that is the chain itself: never behind, slower on long histories."""

    def __init__(self, chain: ConsortiumView) -> None:
        self.chain = chain

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def lag(self, head: int) -> int | None:
        return None

    def down(self) -> str | None:
        return None

    def as_of(self, head: int) -> int:
        return head

    def _per_tranche(self, loan: CoLoan, block: int | str) -> tuple[int, int, list[int]]:
        outstanding, status = self.chain.loan_state(loan.loan_id, block)
        amounts = [t.amount for t in loan.tranches]
        return outstanding, status, allocation.outstanding(amounts, loan.principal, outstanding)

    def view(self, rec: Recorded, block: int | str = "latest") -> LoanView:
        outstanding, status, per = self._per_tranche(rec.loan, block)
        return LoanView(
            **loan_view(
                rec.loan,
                outstanding,
                status,
                per,
                policy_version=rec.policy_version,
                block_number=rec.block_number,
                tx_hash=rec.tx_hash,
            )  # fmt: skip
        )

    def loan(self, loan_id: bytes, principal: Principal) -> LoanView | None:
        rec = self.chain.find_loan(loan_id)
        if rec is None or not in_scope(principal, rec.loan):
            return None
        return self.view(rec)

    def loans_of(self, key: bytes, principal: Principal, block: int) -> list[LoanView]:
        return [
            self.view(r, block)
            for r in self.chain.loans(borrowerKey=key)
            if r.block_number <= block and in_scope(principal, r.loan)
        ]

    def own_exposure(self, key: bytes, address: str, block: int) -> int:
        """`address`'s part of the borrower's exposure, by the same definition as the
        consortium's: its share of active lines' limits, plus its outstanding tranches of loans
        not drawn under an active line."""
        lines = self.chain.lines_of(key, block)
        active = {line.line_id for line, st in lines if st == LineStatus.ACTIVE}
        total = sum(
            s.amount
            for line, st in lines
            if st == LineStatus.ACTIVE
            for s in line.shares
            if s.lender == address
        )
        for rec in self.chain.loans(borrowerKey=key):
            loan = rec.loan
            if rec.block_number > block or address not in loan.signers:
                continue
            if loan.line_id != ZERO32 and loan.line_id in active:
                continue
            _o, _s, per = self._per_tranche(loan, block)
            total += sum(o for t, o in zip(loan.tranches, per, strict=True) if t.lender == address)
        return total

    def exposure(self, key: bytes, who: str | None, block: int) -> Exposure:
        x = self.chain.borrower_exposure(key, block)
        p = self.chain.policy(block)
        own = None if who is None else self.own_exposure(key, who, block)
        return Exposure(
            x.consumer, x.business, len(x.institutions), p.consumer_cap, p.business_cap,
            p.max_institutions, own, block,
        )  # fmt: skip


def get_loan(reads: ReadModel, principal: Principal, loan_id: str) -> LoanView:
    """One loan within the caller's scope, else the same 404 as for no loan at all."""
    reads.as_of(principal.head)
    found = reads.loan(chain_id_of(loan_id, principal.address), principal)
    if found is None:
        raise not_found(loan_id)
    return found


def list_loans(reads: ReadModel, principal: Principal, key: bytes) -> list[LoanView]:
    return reads.loans_of(key, principal, reads.as_of(principal.head))


def exposure(reads: ReadModel, principal: Principal, key: bytes) -> ExposureOut:
    # The head read with the caller's member record: the read model is awaited to hold it, so a
    # member reads its own writes.
    block = reads.as_of(principal.head)
    who = None if principal.role == "auditor" else principal.address  # the auditor funds nothing
    x = reads.exposure(key, who, block)
    consumer, business, institutions = x.consumer, x.business, x.institutions
    return ExposureOut(
        borrower_key=to_hex(key),
        total_exposure=consumer + business,
        exposure=ByProduct(consumer=consumer, business=business),
        lender_count=institutions,
        caps=Caps(
            consumer=x.consumer_cap, business=x.business_cap, max_institutions=x.max_institutions
        ),
        headroom=Headroom(
            consumer=max(x.consumer_cap - consumer, 0),
            business=max(x.business_cap - business, 0),
            institutions=max(x.max_institutions - institutions, 0),
        ),
        own_exposure=x.own,
        as_of_block=x.block,
    )


def _usage(outstanding: int, limit: int) -> dict[str, int]:
    return {"outstanding": outstanding, "limit": limit, "headroom": max(limit - outstanding, 0)}


def limits(chain: ConsortiumView, lender: str) -> LimitsOut:
    block, now = chain.now()
    m = chain.member(lender, block)
    if m.role != Role.LENDER:
        raise Problem(404, "LenderNotFound", f"{lender} is not a lender member")
    # The totals (R6) do not depend on the partner.
    total = chain.usage(lender, block=block)
    partners = []
    for p in chain.platforms(block):
        u = chain.usage(lender, p, block)
        partners.append(PartnerUsage(partner=p, **_usage(u.with_partner, u.partner_limit)))
    return LimitsOut(
        lender=lender,
        joint_loans=Usage(**_usage(total.total, total.total_limit)),
        partners=partners,
        tier1_capital=m.tier1_capital,
        total_loan_balance=m.total_loan_balance,
        attested_until=m.attested_until,
        # R8 judges the attestation at use, by the policy in force now (not only its period)
        attestation_valid_until=total.valid_until,
        attestation_fresh=total.valid_until >= now,
        as_of_block=block,
    )
