"""The auditor node's audit endpoints: the full report and one loan's evidence, both built from
the chain alone (ledger.audit, ledger.evidence), never from this node's own database."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.deps import ConsortiumDep, ContextDep, require
from api.problems import Problem, responses
from api.routes import LoanIdPath
from api.schemas.common import chain_id_of

router = APIRouter(tags=["audit"])
AuditorOnly = Annotated[Any, Depends(require("auditor"))]


@router.get("/v1/audit/report", responses=responses(401, 403, 422))
def audit_report(
    ctx: ContextDep,
    chain: ConsortiumDep,
    _auditor: AuditorOnly,
    block: Annotated[int | None, Query(ge=0, description="Audit as of this block.")] = None,
) -> dict[str, Any]:
    """Replay and verify the whole on-chain history: bytecode, signatures and roles as of each
    record's block, R1-R8 under the policy then in force, state against the contract's views,
    repayment arithmetic. `ok` is true only when `violations` is empty."""
    from ledger.audit import run_audit

    head = chain.head()
    if block is not None and block > head:
        raise Problem(422, "BlockInFuture", f"block {block} is after the head {head}",
                      block=block, head=head)
    return run_audit(ctx.settings.rpc_url, ctx.deployment, block=block).to_json()


@router.get("/v1/loans/{loan_id}/evidence", responses=responses(401, 403, 404, 422))
def loan_evidence(loan_id: LoanIdPath, ctx: ContextDep, _auditor: AuditorOnly) -> dict[str, Any]:
    """Evidence for one loan: transaction, block header, receipt, log, signatures with the
    signers recovered from them, document digest and an eth_getProof storage proof of the
    borrower's exposure at that block. `ledger verify-evidence FILE` checks it offline."""
    from ledger.evidence import EvidenceError, collect

    try:
        return collect(ctx.settings.rpc_url, ctx.deployment, chain_id_of(loan_id, ctx.address))
    except EvidenceError:
        raise Problem(404, "LoanNotFound", "no such loan on this ledger") from None

