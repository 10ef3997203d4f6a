"""Repayments and status changes on the platform node, and the per-item batch origination."""

from __future__ import annotations

import json
from typing import Any

from api import store
from api.problems import Problem, from_revert, from_rule
from api.schemas.common import chain_id_of
from api.schemas.records import (
    Allocation,
    BatchIn,
    BatchItem,
    BatchOut,
    RecordOut,
    RepaymentIn,
    RepaymentOut,
    StatusIn,
    StatusOut,
)
from api.service import idem, originate, reads
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from api.service.platform import Platform
from ledger.chain.errors import ContractRevert
from ledger.domain import CoLoan, LoanStatus, to_hex
from ledger.identity import InvalidResidentId
from ledger.records import status_name
from ledger.rules import RuleError


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
        return 201, out.model_dump()

    return idem.run(ctx, "repayment", to_hex(rid), canonical, work)


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


def batch(p: Platform, req: BatchIn) -> BatchOut:
    """Each loan is checked and co-signed on its own; those that pass go to the chain in one
    non-atomic batch, where each is recorded or rejected (LoanRejected) on its own. Items already
    recorded under their id return their original result."""
    items: list[BatchItem | None] = [None] * len(req.loans)
    ready: list[tuple[int, CoLoan, list[bytes], str]] = []
    ctx = p.ctx
    try:
        for i, item in enumerate(req.loans):
            loan_id = to_hex(chain_id_of(item.loan_id, ctx.address))
            try:
                key, doc, digest, canonical = originate.loan_request(ctx, item)
                claim = _claim(ctx, loan_id, canonical)
                if claim is not None:
                    items[i] = BatchItem(loan_id=loan_id, status=claim[0], result=claim[1])
                    continue
                try:
                    loan, sigs = originate.prepare_loan(p, item, doc, digest, key)
                except BaseException:
                    _release(ctx, loan_id)
                    raise
                ready.append((i, loan, sigs, loan_id))
            except (Problem, RuleError, ContractRevert, InvalidResidentId) as exc:
                items[i] = _failed(loan_id, exc)
    except BaseException:
        for *_rest, loan_id in ready:  # nothing was sent: free every claim taken so far
            _release(ctx, loan_id)
        raise
    if ready:
        for _i, loan, sigs, loan_id in ready:
            # As for a single loan: once sent, a retry resumes with these very terms.
            pending = originate.pending_of(loan, sigs)
            store.save_pending(ctx.engine, "loan", loan_id, json.dumps(pending))
        try:
            receipt = ctx.client.originate_batch(
                [r[1] for r in ready], [r[2] for r in ready], atomic=False
            )
        except ContractRevert as exc:
            for i, _loan, _sigs, loan_id in ready:
                _release(ctx, loan_id)
                items[i] = _failed(loan_id, exc)
        else:
            rejected = {
                e.args["loanId"]: ctx.client.errors.decode(e.args["reason"])
                for e in ctx.client.receipt_events(receipt, "LoanRejected")
            }
            for i, loan, _sigs, loan_id in ready:
                err = rejected.get(loan.loan_id)
                if err is not None:
                    ctx.metrics.rejected("loan", err.code, err.rule, "contract")
                    _release(ctx, loan_id)
                    items[i] = _failed(loan_id, err)
                    continue
                ctx.metrics.submitted("loan")
                out = originate.record_out(loan, receipt.tx_hash, receipt.block_number)
                store.finish(
                    ctx.engine, "loan", loan_id, 201, out.model_dump_json(exclude_none=True)
                )
                items[i] = BatchItem(loan_id=loan_id, status=201, result=out)
    done = [x for x in items if x is not None]
    accepted = sum(1 for x in done if x.status == 201)
    return BatchOut(accepted=accepted, rejected=len(done) - accepted, results=done)


def _claim(ctx: MemberContext, loan_id: str, canonical: dict[str, Any]) -> tuple[int, Any] | None:
    """Claim the id for this batch, or the stored result of an earlier identical request."""
    rec = idem.claim(ctx, "loan", loan_id, idem.request_hash(canonical))
    if rec is None:
        return None
    if rec.state == "done":
        return rec.status_code, RecordOut.model_validate_json(rec.response)
    raise idem.in_progress("loan", loan_id)


def _release(ctx: MemberContext, loan_id: str) -> None:
    store.forget(ctx.engine, "loan", loan_id)


def _failed(
    loan_id: str, exc: Problem | RuleError | ContractRevert | InvalidResidentId
) -> BatchItem:
    if isinstance(exc, InvalidResidentId):
        problem = Problem(
            422,
            "InvalidResidentId",
            str(exc),
            errors=[{"field": exc.field, "rule": exc.rule, "message": str(exc)}],
        )
    elif isinstance(exc, RuleError):
        problem = from_rule(exc)
    elif isinstance(exc, ContractRevert):
        problem = from_revert(exc)
    else:
        problem = exc
    return BatchItem(loan_id=loan_id, status=problem.status, problem=problem.body())
