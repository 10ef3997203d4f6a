"""The lender node's side of co-signing: check the terms against its own appetite and the
consortium's rules, then sign them with its own key.

The order is deliberate: who asks and whether this lender is a party at all (cheap, no chain),
then its appetite (the bank's own policy), then a deadline sanity check, then the consortium
rules against chain state. Every refusal is a 409 problem that names the lender and the reason.
"""

from __future__ import annotations

from api.auth import Principal
from api.problems import Problem, from_rule
from api.schemas.records import (
    CosignBatchIn,
    CosignBatchOut,
    CosignIn,
    CosignItem,
    CosignOut,
    ScheduleTerms,
)
from api.service import schedules
from api.service.book import judge, judge_many
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from ledger import provenance
from ledger.domain import CoLoan, CreditLine, to_hex
from ledger.records import product_name
from ledger.rules import RuleError, Violation


def cosign(
    ctx: MemberContext, chain: ConsortiumView, caller: Principal, req: CosignIn
) -> CosignOut:
    record = req.terms.record()
    _admissible(ctx, caller, record, req.kind)
    violation, now = judge(chain, record)
    return _sign(ctx, record, req.kind, violation, now, req.schedule)


def cosign_batch(
    ctx: MemberContext, chain: ConsortiumView, caller: Principal, req: CosignBatchIn
) -> CosignBatchOut:
    """Each record checked as `cosign` checks one, against one snapshot of the chain read in one
    round trip, in order (each one signed counts against the next, as on chain): a signature or
    the problem for each, in the request's order."""
    records = [t.record() for t in req.items]
    given = req.schedules or [None] * len(records)
    results: list[CosignItem | None] = [None] * len(records)
    admitted: list[int] = []
    for i, record in enumerate(records):
        try:
            _admissible(ctx, caller, record, req.kind)
            admitted.append(i)
        except Problem as exc:
            results[i] = CosignItem(status=exc.status, problem=exc.body())
    verdicts, now = judge_many(chain, [records[i] for i in admitted])
    for i, violation in zip(admitted, verdicts, strict=True):
        try:
            out = _sign(ctx, records[i], req.kind, violation, now, given[i])
        except Problem as exc:
            results[i] = CosignItem(status=exc.status, problem=exc.body())
        else:
            results[i] = CosignItem(status=200, signature=out.signature, digest=out.digest)
    return CosignBatchOut(signer=ctx.address, results=[r for r in results if r is not None])


def _admissible(
    ctx: MemberContext, caller: Principal, record: CoLoan | CreditLine, kind: str
) -> None:
    """Who asks, whether this lender is a party, and its appetite: the checks without the chain."""
    me = ctx.address
    if record.platform != caller.address:
        raise Problem(
            403,
            "NotYourRecord",
            f"the terms name platform {record.platform}; {caller.address} may not propose them",
        )
    parties = record.tranches if isinstance(record, CoLoan) else record.shares
    mine = next((t for t in parties if t.lender == me), None)
    if mine is None:
        raise Problem(409, "NotAParty", f"{me} funds no tranche of this {kind}", lender=me)
    appetite = ctx.settings.appetite
    product = product_name(record.product)
    if product not in appetite.products:
        _refused(ctx, kind, "ProductNotAccepted")
        raise Problem(
            409,
            "ProductNotAccepted",
            f"{ctx.settings.name} does not fund {product} {kind}s",
            lender=me,
            product=product,
            accepted=list(appetite.products),
        )
    if appetite.max_tranche is not None and mine.amount > appetite.max_tranche:
        _refused(ctx, kind, "AppetiteExceeded")
        raise Problem(
            409,
            "AppetiteExceeded",
            f"{ctx.settings.name} funds tranches of at most {appetite.max_tranche} fen, "
            f"asked for {mine.amount}",
            lender=me,
            requested=mine.amount,
            max_tranche=appetite.max_tranche,
        )


def _sign(
    ctx: MemberContext,
    record: CoLoan | CreditLine,
    kind: str,
    violation: Violation | None,
    now: int,
    schedule: ScheduleTerms | None,
) -> CosignOut:
    """The deadline sanity check, then the rules' verdict, then this lender's signature."""
    me = ctx.address
    # A signature is good until its deadline; a lender does not hand out long-lived ones.
    latest = now + ctx.settings.max_cosign_deadline_s
    if record.deadline > latest:
        raise Problem(
            409,
            "DeadlineTooFar",
            f"deadline {record.deadline} is more than {ctx.settings.max_cosign_deadline_s}s away",
            lender=me,
            deadline=record.deadline,
            latest=latest,
        )
    if violation is not None:
        ctx.metrics.rejected(kind, violation.code, violation.rule, "cosign")
        problem = from_rule(RuleError(violation))
        problem.extra["lender"] = me
        raise problem
    if isinstance(record, CoLoan):
        checked = schedules.verify_for_cosign(record, schedule, me)
        if checked is not None:
            schedules.save(ctx.engine, record, *checked)
    d = provenance.digest(ctx.client.domain, record)
    return CosignOut(
        signature=to_hex(provenance.sign_digest(ctx.account.key, d)), signer=me, digest=to_hex(d)
    )


def _refused(ctx: MemberContext, kind: str, code: str) -> None:
    ctx.metrics.rejected(kind, code, None, "appetite")
