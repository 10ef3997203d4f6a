"""The lender node's side of co-signing: check the terms against its own appetite and the
consortium's rules, then sign them with its own key.

The order is deliberate: who asks and whether this lender is a party at all (cheap, no chain),
then its appetite (the bank's own policy), then a deadline sanity check, then the consortium
rules against chain state. Every refusal is a 409 problem that names the lender and the reason.
"""

from __future__ import annotations

from api.auth import Principal
from api.problems import Problem, from_rule
from api.schemas.common import product_name
from api.schemas.records import CosignIn, CosignOut, LoanTerms
from api.service.book import snapshot
from api.service.node import Node
from api.service.terms import line_of, loan_of
from ledger import provenance
from ledger.domain import CoLoan
from ledger.rules import RuleError, check_line, check_loan


def cosign(node: Node, caller: Principal, req: CosignIn) -> CosignOut:
    record = loan_of(req.terms) if isinstance(req.terms, LoanTerms) else line_of(req.terms)
    kind = req.kind
    me = node.address
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
    appetite = node.settings.appetite
    product = product_name(record.product)
    if product not in appetite.products:
        _refused(node, kind, "ProductNotAccepted")
        raise Problem(
            409,
            "ProductNotAccepted",
            f"{node.settings.name} does not fund {product} {kind}s",
            lender=me,
            product=product,
            accepted=list(appetite.products),
        )
    if appetite.max_tranche is not None and mine.amount > appetite.max_tranche:
        _refused(node, kind, "AppetiteExceeded")
        raise Problem(
            409,
            "AppetiteExceeded",
            f"{node.settings.name} funds tranches of at most {appetite.max_tranche} fen, "
            f"asked for {mine.amount}",
            lender=me,
            requested=mine.amount,
            max_tranche=appetite.max_tranche,
        )
    book, _block, now = snapshot(node.client, record)
    # A signature is good until its deadline; a lender does not hand out long-lived ones.
    latest = now + node.settings.max_cosign_deadline_s
    if record.deadline > latest:
        raise Problem(
            409,
            "DeadlineTooFar",
            f"deadline {record.deadline} is more than {node.settings.max_cosign_deadline_s}s away",
            lender=me,
            deadline=record.deadline,
            latest=latest,
        )
    violation = (
        check_loan(book, record, now)
        if isinstance(record, CoLoan)
        else check_line(book, record, now)
    )
    if violation is not None:
        node.metrics.rejected(kind, violation.code, violation.rule, "cosign")
        problem = from_rule(RuleError(violation))
        problem.extra["lender"] = me
        raise problem
    signature = provenance.sign(node.account.key, node.client.domain, record)
    return CosignOut(
        signature="0x" + signature.hex(),
        signer=me,
        digest="0x" + provenance.digest(node.client.domain, record).hex(),
    )


def _refused(node: Node, kind: str, code: str) -> None:
    node.metrics.rejected(kind, code, None, "appetite")
