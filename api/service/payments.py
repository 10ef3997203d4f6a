"""Repayments and status changes on the platform node."""

from __future__ import annotations

from typing import Any

from api.problems import from_revert
from api.schemas.common import chain_id_of
from api.schemas.payments import (
    Allocation,
    PrepaymentOut,
    RepaymentIn,
    RepaymentOut,
    StatusIn,
    StatusOut,
)
from api.service import idem, prepayments, reads, schedules
from api.service.consortium import ConsortiumView
from api.service.platform import Platform
from ledger.chain.errors import ContractRevert
from ledger.domain import CoLoan, LoanStatus, to_hex
from ledger.records import status_name


def _own_loan(p: Platform, loan_id: str) -> CoLoan:
    rec = p.chain.find_loan(chain_id_of(loan_id, p.ctx.address))
    # the loan's platform, or its successor after a servicing transfer
    if rec is None or p.chain.servicer(rec.loan.platform) != p.ctx.address:
        raise reads.not_found(loan_id)
    return rec.loan


def repay(p: Platform, loan_id: str, req: RepaymentIn) -> tuple[int, dict[str, Any], bool]:
    ctx = p.ctx
    rid = chain_id_of(req.repayment_id, ctx.address)
    canonical = {
        "loan_id": to_hex(chain_id_of(loan_id, ctx.address)),
        **req.model_dump(mode="json"),
    }
    canonical["repayment_id"] = to_hex(rid)

    def work(_pending: idem.Pending | None, save: idem.Save) -> tuple[int, dict[str, Any]]:
        loan = _own_loan(p, loan_id)
        cur = _precheck_prepayment(p, loan, rid, req)
        save({"submitted": True})
        try:
            receipt = ctx.client.repay(loan, rid, req.principal, req.interest)
        except ContractRevert as exc:
            ctx.metrics.rejected("repayment", exc.code, exc.rule, "contract")
            raise from_revert(exc) from None
        ctx.metrics.submitted("repayment")
        if receipt is not None:
            (found,) = ctx.client.receipt_events(receipt, "Repaid")
        else:  # recorded by an earlier attempt whose receipt was lost
            found = p.chain.repaid(rid)
            assert found is not None, "the contract reported this repayment as recorded"
        a, tx_hash, block = found.args, to_hex(found.tx_hash), found.block_number
        out = RepaymentOut(
            loan_id=to_hex(loan.loan_id),
            repayment_id=to_hex(rid),
            principal=int(a["principal"]),
            interest=int(a["interest"]),
            outstanding=int(a["outstanding"]),
            status="repaid" if int(a["outstanding"]) == 0 else _status_now(p.chain, loan),
            allocation=[
                Allocation(lender=t.lender, principal=int(pr), interest=int(i))
                for t, pr, i in zip(
                    loan.tranches, a["principalAllocation"], a["interestAllocation"], strict=True
                )
            ],
            tx_hash=tx_hash,
            block_number=block,
        )
        if req.prepayment and out.outstanding:
            if cur is None:  # a retry: the repayment was recorded before
                held = schedules.load(ctx.engine, loan.loan_id)
                cur = prepayments.in_force(ctx, loan.loan_id, held[1] if held else ())
            repaid = loan.principal - out.outstanding
            out.prepayment = PrepaymentOut(**prepayments.record(ctx, loan, cur, repaid))
        return 201, out.model_dump()

    return idem.run(ctx, "repayment", to_hex(rid), canonical, work)


def _precheck_prepayment(
    p: Platform, loan: CoLoan, rid: bytes, req: RepaymentIn
) -> prepayments.InForce | None:
    """For a repayment flagged as a prepayment and not yet recorded: the schedule in force, after
    checking the prepayment rule accepts it (a 4xx problem otherwise, nothing sent)."""
    if not req.prepayment or p.chain.repaid(rid) is not None:
        return None
    outstanding, _status = p.chain.loan_state(loan.loan_id)
    if req.principal >= outstanding:
        return None  # repaid in full: nothing left to reschedule
    _block, now = p.chain.now()
    held = schedules.load(p.ctx.engine, loan.loan_id)
    return prepayments.precheck(p.ctx, loan, held, outstanding, req.principal, now)


def _status_now(chain: ConsortiumView, loan: CoLoan) -> str:
    _outstanding, status = chain.loan_state(loan.loan_id)
    return status_name(status)


def set_status(p: Platform, loan_id: str, req: StatusIn) -> tuple[int, dict[str, Any], bool]:
    ctx = p.ctx

    def work(_pending: idem.Pending | None, save: idem.Save) -> tuple[int, dict[str, Any]]:
        loan = _own_loan(p, loan_id)
        reason = req.reason.encode("ascii").ljust(32, b"\0")
        save({"submitted": True})
        try:
            receipt = ctx.client.set_status(loan, LoanStatus[req.status.upper()], reason)
        except ContractRevert as exc:
            ctx.metrics.rejected("status", exc.code, exc.rule, "contract")
            raise from_revert(exc) from None
        (e,) = ctx.client.receipt_events(receipt, "LoanStatusChanged")
        a = e.args
        out = StatusOut(
            loan_id=to_hex(loan.loan_id),
            status=status_name(a["to"]),
            previous_status=status_name(a["from"]),
            released_principal=int(a["releasedPrincipal"]),
            tx_hash=receipt.tx_hash,
            block_number=receipt.block_number,
        )
        return 200, out.model_dump()

    if req.change_id is None:
        status, body = work(None, lambda _p: None)
        return status, body, False
    canonical = {
        "loan_id": to_hex(chain_id_of(loan_id, ctx.address)),
        **req.model_dump(mode="json"),
    }
    return idem.run(ctx, "status", to_hex(chain_id_of(req.change_id, ctx.address)), canonical, work)
