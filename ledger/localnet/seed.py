"""DEV-ONLY demo data: a little synthetic history recorded straight through the chain client
(the story told over HTTP against the running nodes is ledger.story, `ledger demo`). The resident
IDs are synthetic (valid check digits, made-up numbers) and only their keyed pseudonyms reach the
chain."""

from __future__ import annotations

from ledger.domain import LoanStatus, Product, RepaymentType
from ledger.identity import DEV_PEPPER, _check_digit, borrower_key
from ledger.localnet.consortium import LocalConsortium, new_id


def synthetic_id(n: int) -> str:
    """A synthetic, valid-format resident ID (region 110105, born 1990-01-01 + n days)."""
    first17 = f"110105199001{(n % 28) + 1:02d}{n % 1000:03d}"
    return first17 + _check_digit(first17)


def seed(cx: LocalConsortium) -> dict[str, int]:
    plat = cx.plat
    keys = [borrower_key(synthetic_id(i), DEV_PEPPER) for i in range(4)]
    loans = 0
    # a joint credit line with one drawing under it
    line = cx.line(5_000_000, borrower_key=keys[0])
    plat.grant_line(line, cx.sign(line))
    drawn = cx.loan(1_200_000, borrower_key=keys[0], line_id=line.line_id)
    plat.originate(drawn, cx.sign(drawn))
    loans += 1
    # standalone co-loans, one business, one consumer bullet
    a = cx.loan(3_000_000, borrower_key=keys[1])
    b = cx.loan(8_000_000, borrower_key=keys[2], product=Product.BUSINESS)
    c = cx.loan(600_000, borrower_key=keys[3], repayment=RepaymentType.BULLET, term_days=90)
    for ln in (a, b, c):
        plat.originate(ln, cx.sign(ln))
        loans += 1
    # repayments: partial on a, in full on c; b goes overdue
    plat.repay(a, new_id("repayment", cx.platform.address), 1_000_000, 30_000)
    plat.repay(c, new_id("repayment", cx.platform.address), 600_000, 9_000)
    plat.set_status(b, LoanStatus.OVERDUE, b"DPD30".ljust(32, b"\0"))
    return {"borrowers": len(keys), "credit_lines": 1, "loans": loans, "repayments": 2}
