"""Reads within the caller's scope: loans, a borrower's exposure, a lender's limits.

Loan terms are not kept in contract storage (one slot per loan holds a commitment), so they come
from the `LoanOriginated` and `LineGranted` events, filtered by their indexed loan id or borrower
key; live figures (outstanding, status, exposure, usage) come from the contract's views, all at
one block so an answer is consistent.

Object-level rules (OWASP API1): the auditor sees every loan; the platform the loans it
originated; a lender the loans it funds a tranche of. Anything else is answered exactly as a
loan that does not exist, so an id cannot be probed for existence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.auth import Principal
from api.problems import Problem
from api.schemas.common import product_name, repayment_name
from api.schemas.reads import (
    ByProduct,
    Caps,
    ExposureOut,
    Headroom,
    LimitsOut,
    LoanView,
    PartnerUsage,
    TrancheView,
    Usage,
)
from api.service.node import Node
from ledger import allocation
from ledger.domain import ZERO32, CoLoan, CreditLine, LineStatus, LoanStatus, Policy, Role, to_hex


@dataclass(frozen=True, slots=True)
class Recorded:
    loan: CoLoan
    block_number: int
    tx_hash: str
    policy_version: int


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def status_name(s: LoanStatus | int) -> str:
    return LoanStatus(s).name.lower()


def plain(value: Any) -> Any:
    """web3 decodes structs to AttributeDicts (Mappings, not dicts): plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _loans(node: Node, **filters: bytes) -> list[Recorded]:
    events = node.client.events(
        "LoanOriginated", from_block=node.deployment.deployment_block, **filters
    )
    return [
        Recorded(
            CoLoan.from_abi(e.args["loan"]),
            e.block_number,
            to_hex(e.tx_hash),
            e.args["policyVersion"],
        )
        for e in events
    ]


def find_loan(node: Node, loan_id: bytes) -> Recorded | None:
    found = _loans(node, loanId=loan_id)
    return found[0] if found else None


def loans_of_borrower(node: Node, key: bytes) -> list[Recorded]:
    return _loans(node, borrowerKey=key)


def lines_of_borrower(node: Node, key: bytes, block: int) -> list[tuple[CreditLine, LineStatus]]:
    c = node.client
    events = c.events(
        "LineGranted", from_block=node.deployment.deployment_block, to_block=block, borrowerKey=key
    )
    out = []
    for e in events:
        line = CreditLine.from_abi(e.args["line"])
        rec, _ = c.call(c.ledger, "lineState", line.line_id, block=block)
        out.append((line, LineStatus(rec[3])))
    return out


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


def view(node: Node, rec: Recorded, block: int | str = "latest") -> LoanView:
    c = node.client
    loan = rec.loan
    _commit, outstanding, status = c.call(c.ledger, "loanState", loan.loan_id, block=block)
    amounts = [t.amount for t in loan.tranches]
    per_tranche = allocation.outstanding(amounts, loan.principal, int(outstanding))
    return LoanView(
        loan_id=_hex(loan.loan_id),
        borrower_key=_hex(loan.borrower_key),
        platform=loan.platform,
        product=product_name(loan.product),
        principal=loan.principal,
        apr_bps=loan.apr_bps,
        term_days=loan.term_days,
        repayment=repayment_name(loan.repayment),
        line_id=None if loan.line_id == ZERO32 else _hex(loan.line_id),
        document_digest=None if loan.document_digest == ZERO32 else _hex(loan.document_digest),
        outstanding=int(outstanding),
        status=status_name(status),
        tranches=[
            TrancheView(lender=t.lender, amount=t.amount, outstanding=o)
            for t, o in zip(loan.tranches, per_tranche, strict=True)
        ],
        policy_version=rec.policy_version,
        block_number=rec.block_number,
        tx_hash=rec.tx_hash,
    )


def own_exposure(node: Node, key: bytes, address: str, block: int) -> int:
    """`address`'s part of the borrower's exposure, by the same definition as the consortium's:
    its share of active lines' limits, plus its outstanding tranches of loans not drawn under an
    active line."""
    lines = lines_of_borrower(node, key, block)
    active = {line.line_id for line, st in lines if st == LineStatus.ACTIVE}
    total = sum(
        s.amount
        for line, st in lines
        if st == LineStatus.ACTIVE
        for s in line.shares
        if s.lender == address
    )
    for rec in loans_of_borrower(node, key):
        if rec.block_number > block or address not in rec.loan.signers:
            continue
        if rec.loan.line_id != ZERO32 and rec.loan.line_id in active:
            continue
        c = node.client
        _commit, outstanding, _st = c.call(c.ledger, "loanState", rec.loan.loan_id, block=block)
        amounts = [t.amount for t in rec.loan.tranches]
        per = allocation.outstanding(amounts, rec.loan.principal, int(outstanding))
        total += sum(o for t, o in zip(rec.loan.tranches, per, strict=True) if t.lender == address)
    return total


def _as_of(node: Node, head: int) -> int:
    """The block a read is answered as of: `head` (read with the caller's member record), once
    the read model has it."""
    return node.indexed.fresh(head) if node.indexed is not None else head


def get_loan(node: Node, principal: Principal, loan_id: str) -> LoanView:
    """One loan within the caller's scope, else the same 404 as for no loan at all."""
    from api.schemas.common import chain_id_of

    lid = chain_id_of(loan_id)
    if node.indexed is not None:
        _as_of(node, principal.head)
        found = node.indexed.loan(lid, principal.role, principal.address)
        if found is None:
            raise not_found(loan_id)
        return found
    rec = find_loan(node, lid)
    if rec is None or not in_scope(principal, rec.loan):
        raise not_found(loan_id)
    return view(node, rec)


def list_loans(node: Node, principal: Principal, key: bytes) -> list[LoanView]:
    block = _as_of(node, principal.head)
    if node.indexed is not None:
        return node.indexed.loans_of(key, principal.role, principal.address)
    return [
        view(node, r, block)
        for r in loans_of_borrower(node, key)
        if r.block_number <= block and in_scope(principal, r.loan)
    ]


def exposure(node: Node, principal: Principal, key: bytes) -> ExposureOut:
    # The head read with the caller's member record: the read model is awaited to hold it, so a
    # member reads its own writes.
    block = _as_of(node, principal.head)
    who = None if principal.role == "auditor" else principal.address  # the auditor funds nothing
    # The read model's maintained aggregates, not the contract's views: one local query instead
    # of two chain round trips, whatever the history's length (DESIGN §8).
    x = node.indexed.exposure(key, who) if node.indexed is not None else None
    if x is not None:
        # As of the block the read model held when read (the indexer may have moved past the
        # head since), not the head asked for.
        block = x.block
        consumer, business, institutions, own = x.consumer, x.business, x.institutions, x.own
        consumer_cap, business_cap, max_inst = x.consumer_cap, x.business_cap, x.max_institutions
    else:
        c = node.client
        consumer, business, idx, _n = c.call(c.ledger, "borrowerExposure", key, block=block)
        policy_raw, _v = c.call(c.registry, "currentPolicy", block=block)
        p = Policy.from_abi(policy_raw)
        consumer_cap, business_cap, max_inst = p.consumer_cap, p.business_cap, p.max_institutions
        institutions = len(idx)
        own = None if who is None else own_exposure(node, key, who, block)
    return ExposureOut(
        borrower_key=_hex(key),
        total_exposure=int(consumer) + int(business),
        exposure=ByProduct(consumer=int(consumer), business=int(business)),
        lender_count=institutions,
        caps=Caps(consumer=consumer_cap, business=business_cap, max_institutions=max_inst),
        headroom=Headroom(
            consumer=max(consumer_cap - int(consumer), 0),
            business=max(business_cap - int(business), 0),
            institutions=max(max_inst - institutions, 0),
        ),
        own_exposure=own,
        as_of_block=block,
    )


def platforms(node: Node, block: int) -> list[str]:
    c = node.client
    out = []
    # Member indices are 1-based (0 means "not a member" in the packed registry word).
    for i in range(1, int(c.call(c.registry, "memberCount", block=block)) + 1):
        addr = c.call(c.registry, "memberAt", i, block=block)
        if Role(c.call(c.registry, "member", addr, block=block)[0]) == Role.PLATFORM:
            out.append(addr)
    return out


def limits(node: Node, lender: str) -> LimitsOut:
    c = node.client
    block, now = node.chain_now()
    m = c.call(c.registry, "member", lender, block=block)
    if Role(m[0]) != Role.LENDER:
        raise Problem(404, "LenderNotFound", f"{lender} is not a lender member")
    # The totals (R6) do not depend on the partner; the zero address stands for "none".
    total, _w, total_limit, _p, _u = c.call(
        c.ledger, "lenderUsage", lender, "0x" + "00" * 20, block=block
    )
    partners: list[PartnerUsage] = []
    for p in platforms(node, block):
        _t, with_p, _tl, p_limit, _until = c.call(c.ledger, "lenderUsage", lender, p, block=block)
        partners.append(
            PartnerUsage(
                partner=p,
                outstanding=int(with_p),
                limit=int(p_limit),
                headroom=max(int(p_limit) - int(with_p), 0),
            )
        )
    return LimitsOut(
        lender=lender,
        joint_loans=Usage(
            outstanding=int(total),
            limit=int(total_limit),
            headroom=max(int(total_limit) - int(total), 0),
        ),
        partners=partners,
        tier1_capital=int(m[4]),
        total_loan_balance=int(m[5]),
        attested_until=int(m[7]),
        attestation_fresh=int(m[7]) >= now,
        as_of_block=block,
    )
