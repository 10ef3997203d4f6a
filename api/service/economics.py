"""The nodes' economics writes: a bank offers partnership terms and the platform accepts them, a
bank classifies its own tranche. Each is checked here first (a 4xx problem naming the field and
rule, nothing sent), then the contract judges again."""

from __future__ import annotations

from typing import Any

from api.problems import Problem
from api.schemas.common import chain_id_of
from api.service import prepayments, schedules
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from ledger import economics
from ledger.chain.servicing import Partnership
from ledger.domain import LoanStatus


def _field(status: int, code: str, field: str, rule: str, detail: str, **extra: Any) -> Problem:
    return Problem(
        status, code, detail, errors=[{"field": field, "rule": rule, "message": detail}], **extra
    )


def terms_of(body: Any) -> Partnership:
    t = Partnership(
        body.fee_bps, body.min_fee_bps, body.max_fee_bps, body.valid_from, body.valid_until
    )
    if not t.min_fee_bps <= t.fee_bps <= t.max_fee_bps <= 10_000:
        raise _field(
            422,
            "FeeShareOutOfRange",
            "fee_bps",
            "within_range",
            f"fee_bps {t.fee_bps} is outside its disclosed range "
            f"{t.min_fee_bps}..{t.max_fee_bps} (at most 10,000)",
            feeBps=t.fee_bps,
            minFeeBps=t.min_fee_bps,
            maxFeeBps=t.max_fee_bps,
        )
    if t.valid_from >= t.valid_until:
        raise _field(
            422,
            "InvalidPeriod",
            "valid_until",
            "after_valid_from",
            "valid_until must be after valid_from",
        )
    return t


def offer(ctx: MemberContext, body: Any) -> dict[str, Any]:
    terms = terms_of(body)
    receipt = ctx.client.offer_partnership(body.platform, terms)
    return {
        "bank": ctx.address,
        "platform": body.platform,
        **body.model_dump(exclude={"platform"}),
        "tx_hash": receipt.tx_hash if receipt else None,
    }


def accept(ctx: MemberContext, body: Any) -> dict[str, Any]:
    terms = terms_of(body)
    receipt = ctx.client.accept_partnership(body.bank, terms)
    return {
        "bank": body.bank,
        "platform": ctx.address,
        **body.model_dump(exclude={"bank"}),
        "tx_hash": receipt.tx_hash if receipt else None,
    }


def classify(
    ctx: MemberContext, chain: ConsortiumView, loan_id: str, category: str
) -> dict[str, Any]:
    """This bank's classification of its tranche: never milder than the floor for the loan's
    days past due now (ClassificationBelowFloor, 422 naming `category`)."""
    lid = chain_id_of(loan_id, ctx.address)  # a bank names loans by their 0x id
    rec = chain.find_loan(lid)
    if rec is None or ctx.address not in rec.loan.signers or ctx.address == rec.loan.platform:
        raise Problem(404, "LoanNotFound", f"no loan {loan_id} with a tranche of yours")
    held = schedules.load(ctx.engine, lid)
    if held is None:
        raise Problem(409, "ScheduleMissing", "this node holds no schedule for the loan")
    names = {v: k for k, v in economics.CATEGORY_NAMES.items()}
    wanted = names[category]
    outstanding, status = chain.loan_state(lid)
    _block, now = chain.now()
    p = chain.policy()
    floor = economics.Floor(p.special_mention_max_dpd, p.substandard_max_dpd, p.doubtful_max_dpd)
    repaid = rec.loan.principal - outstanding if status != LoanStatus.WRITTEN_OFF else 0
    cur = prepayments.in_force(ctx, lid, held[1])
    dpd = cur.days_past_due(repaid, now)
    least = floor.category(dpd)
    if wanted < least:
        raise _field(
            422,
            "ClassificationBelowFloor",
            "category",
            "not_milder_than_floor",
            f"{category} is milder than the floor's {economics.CATEGORY_NAMES[least]} "
            f"at {dpd} days past due",
            category=int(wanted),
            floor=int(least),
            dpd=dpd,
        )
    receipt = ctx.client.classify(rec.loan, cur.rows, int(wanted))
    return {
        "loan_id": loan_id,
        "lender": ctx.address,
        "category": category,
        "days_past_due": dpd,
        "floor": economics.CATEGORY_NAMES[least],
        "tx_hash": receipt.tx_hash if receipt else None,
    }
