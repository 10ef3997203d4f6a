"""The lender node's side of co-signing: check the terms against its own appetite and the
consortium's rules, then sign them with its own key.

The order is deliberate: who asks and whether this lender is a party at all (cheap, no chain),
then its appetite (the bank's own policy), then a deadline sanity check, then the consortium
rules against chain state. Every refusal is a 409 problem that names the lender and the reason.
"""

from __future__ import annotations

from api.auth import Principal
from api.problems import Problem, from_rule
from api.schemas.records import CosignIn, CosignOut
from api.service import schedules
from api.service.book import judge
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from ledger import provenance
from ledger.domain import CoLoan, to_hex
from ledger.records import product_name
from ledger.rules import RuleError


def cosign(
    ctx: MemberContext, chain: ConsortiumView, caller: Principal, req: CosignIn
) -> CosignOut:
    record = req.terms.record()
    kind = req.kind
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
    violation, now = judge(chain, record)
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
        checked = schedules.verify_for_cosign(record, req.schedule, me)
        if checked is not None:
            schedules.save(ctx.engine, record, *checked)
    signature = provenance.sign(ctx.account.key, ctx.client.domain, record)
    return CosignOut(
        signature=to_hex(signature),
        signer=me,
        digest=to_hex(provenance.digest(ctx.client.domain, record)),
    )


def _refused(ctx: MemberContext, kind: str, code: str) -> None:
    ctx.metrics.rejected(kind, code, None, "appetite")
