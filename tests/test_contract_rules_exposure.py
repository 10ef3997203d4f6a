"""R1-R3 and credit lines, judged by the contracts on a real chain (anvil and Hardhat node):
the borrower caps, the institutions limit, and how lines count as exposure.

How every rule is probed at its boundary: tests/contract_rules_support.py.
"""

from __future__ import annotations

import pytest

from ledger.domain import CoLoan, LineStatus, LoanStatus, Product
from ledger.localnet.consortium import new_id
from tests.contract_rules_support import (
    BUSINESS_CAP,
    CONSUMER_CAP,
    exposure,
    grant,
    index_of,
    originate,
    platform_share,
    refused,
    set_next_timestamp,
)

# ---------------------------------------------------------------------------------- R1, R2


@pytest.mark.parametrize(
    ("product", "cap"), [(Product.CONSUMER, CONSUMER_CAP), (Product.BUSINESS, BUSINESS_CAP)]
)
def test_cap_exactly_accepted_one_fen_over_refused(cx, product, cap):
    over = cx.loan(cap + 1, product=product)
    with refused(
        "BorrowerCapExceeded", borrowerKey=over.borrower_key, exposure=0, requested=cap + 1, cap=cap
    ):
        cx.plat.originate(over, cx.sign(over))
    assert cx.plat.loan_state(over.loan_id)[2] == LoanStatus.NONE

    at = cx.loan(cap, product=product)
    originate(cx, at)
    exp = exposure(cx, at.borrower_key)
    assert (exp["consumer"], exp["business"]) == (
        (cap, 0) if product == Product.CONSUMER else (0, cap)
    )
    assert cx.plat.headroom(at.borrower_key)[product.name.lower()] == 0


@pytest.mark.parametrize(
    ("product", "cap", "existing"),
    [(Product.CONSUMER, CONSUMER_CAP, 15_000_000), (Product.BUSINESS, BUSINESS_CAP, 60_000_000)],
)
def test_cap_counts_existing_exposure(cx, product, cap, existing):
    key = new_id("borrower")
    originate(cx, cx.loan(existing, borrower_key=key, product=product))
    rest = cap - existing

    over = cx.loan(rest + 1, borrower_key=key, product=product)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=existing, requested=rest + 1, cap=cap
    ):
        cx.plat.originate(over, cx.sign(over))

    originate(cx, cx.loan(rest, borrower_key=key, product=product))
    assert exposure(cx, key)[product.name.lower()] == cap


def test_consumer_and_business_exposure_are_counted_separately(cx):
    key = new_id("borrower")
    originate(cx, cx.loan(CONSUMER_CAP, borrower_key=key, product=Product.CONSUMER))
    # a full consumer book does not eat into the business cap, nor the other way round
    originate(cx, cx.loan(BUSINESS_CAP, borrower_key=key, product=Product.BUSINESS))
    exp = exposure(cx, key)
    assert (exp["consumer"], exp["business"]) == (CONSUMER_CAP, BUSINESS_CAP)

    one_c = cx.loan(2, platform_share(cx, 2), borrower_key=key, product=Product.CONSUMER)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=CONSUMER_CAP, requested=2, cap=CONSUMER_CAP
    ):
        cx.plat.originate(one_c, cx.sign(one_c))
    one_b = cx.loan(2, platform_share(cx, 2), borrower_key=key, product=Product.BUSINESS)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=BUSINESS_CAP, requested=2, cap=BUSINESS_CAP
    ):
        cx.plat.originate(one_b, cx.sign(one_b))


def test_repayment_releases_exposure(cx):
    key = new_id("borrower")
    first = cx.loan(CONSUMER_CAP, borrower_key=key)
    originate(cx, first)
    cx.plat.repay(first, new_id("repayment", cx.platform.address), 1_000_000)
    assert exposure(cx, key)["consumer"] == CONSUMER_CAP - 1_000_000

    over = cx.loan(1_000_001, borrower_key=key)
    with refused(
        "BorrowerCapExceeded",
        borrowerKey=key,
        exposure=CONSUMER_CAP - 1_000_000,
        requested=1_000_001,
        cap=CONSUMER_CAP,
    ):
        cx.plat.originate(over, cx.sign(over))
    originate(cx, cx.loan(1_000_000, borrower_key=key))
    assert exposure(cx, key)["consumer"] == CONSUMER_CAP


# ---------------------------------------------------------------------------------- R3


def test_institution_limit_counts_distinct_institutions_and_frees_on_repayment(cx):
    p, l0, l1, l2 = cx.platform, *cx.lenders
    key = new_id("borrower")
    a = cx.loan(3_000_000, [(p, 1_000_000), (l0, 1_000_000), (l1, 1_000_000)], borrower_key=key)
    originate(cx, a)
    # the same three institutions again: no new one, accepted
    originate(cx, cx.loan(1_000_000, [(p, 500_000), (l0, 500_000)], borrower_key=key))
    assert exposure(cx, key)["institutions"] == {
        index_of(cx, p): 2,
        index_of(cx, l0): 2,
        index_of(cx, l1): 1,
    }
    assert cx.plat.headroom(key)["institutions"] == 3

    fourth = cx.loan(1_000_000, [(p, 400_000), (l0, 300_000), (l2, 300_000)], borrower_key=key)
    with refused("TooManyInstitutions", borrowerKey=key, institutions=4, max=3):
        cx.plat.originate(fourth, cx.sign(fourth))

    # partly repaid, lender 1 still has an open record with the borrower
    cx.plat.repay(a, new_id("repayment", cx.platform.address), a.principal - 1)
    with refused("TooManyInstitutions", borrowerKey=key, institutions=4, max=3):
        cx.plat.originate(fourth, cx.sign(fourth))

    cx.plat.repay(a, new_id("repayment", cx.platform.address), 1)
    assert cx.plat.loan_state(a.loan_id)[1:] == (0, LoanStatus.REPAID)
    originate(cx, fourth)
    assert exposure(cx, key)["institutions"] == {
        index_of(cx, p): 2,
        index_of(cx, l0): 2,
        index_of(cx, l2): 1,
    }


# ---------------------------------------------------------------------------------- credit lines


def test_line_limit_counts_as_exposure_and_draws_add_none(cx):
    line = cx.line(CONSUMER_CAP)
    key = line.borrower_key
    grant(cx, line)
    assert exposure(cx, key)["consumer"] == CONSUMER_CAP

    def draw(principal: int) -> CoLoan:
        return cx.loan(principal, borrower_key=key, line_id=line.line_id)

    originate(cx, draw(12_000_000))
    assert exposure(cx, key)["consumer"] == CONSUMER_CAP
    assert cx.plat.line_state(line.line_id)["drawn"] == 12_000_000

    over = draw(8_000_001)
    with refused(
        "LineLimitExceeded",
        lineId=line.line_id,
        drawn=12_000_000,
        requested=8_000_001,
        limit=CONSUMER_CAP,
    ):
        cx.plat.originate(over, cx.sign(over))
    originate(cx, draw(8_000_000))
    assert cx.plat.line_state(line.line_id)["drawn"] == CONSUMER_CAP
    assert exposure(cx, key)["consumer"] == CONSUMER_CAP


def test_line_limit_plus_standalone_loan_within_cap(cx):
    line = cx.line(15_000_000)
    key = line.borrower_key
    grant(cx, line)
    over = cx.loan(5_000_001, borrower_key=key)
    with refused(
        "BorrowerCapExceeded",
        borrowerKey=key,
        exposure=15_000_000,
        requested=5_000_001,
        cap=CONSUMER_CAP,
    ):
        cx.plat.originate(over, cx.sign(over))
    originate(cx, cx.loan(5_000_000, borrower_key=key))
    assert exposure(cx, key)["consumer"] == CONSUMER_CAP

    second_line = cx.line(2, platform_share(cx, 2), borrower_key=key)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=CONSUMER_CAP, requested=2, cap=CONSUMER_CAP
    ):
        cx.plat.grant_line(second_line, cx.sign(second_line))


def test_closing_a_line_releases_its_limit_but_not_what_was_drawn(cx):
    line = cx.line(CONSUMER_CAP)
    key = line.borrower_key
    grant(cx, line)
    drawn = cx.loan(12_000_000, borrower_key=key, line_id=line.line_id)
    originate(cx, drawn)
    cx.plat.close_line(line.line_id)
    assert cx.plat.line_state(line.line_id)["status"] == LineStatus.CLOSED
    assert exposure(cx, key)["consumer"] == 12_000_000

    over = cx.loan(8_000_001, borrower_key=key)
    with refused(
        "BorrowerCapExceeded",
        borrowerKey=key,
        exposure=12_000_000,
        requested=8_000_001,
        cap=CONSUMER_CAP,
    ):
        cx.plat.originate(over, cx.sign(over))
    # the drawn loan, repaid after the close, now releases exposure itself
    cx.plat.repay(drawn, new_id("repayment", cx.platform.address), 2_000_000)
    assert exposure(cx, key)["consumer"] == 10_000_000


def test_draw_must_match_the_line(cx):
    line = cx.line(10_000_000)
    grant(cx, line)
    other_borrower = cx.loan(1_000_000, line_id=line.line_id)
    with refused("LineMismatch", lineId=line.line_id):
        cx.plat.originate(other_borrower, cx.sign(other_borrower))
    other_product = cx.loan(
        1_000_000, borrower_key=line.borrower_key, line_id=line.line_id, product=Product.BUSINESS
    )
    with refused("LineMismatch", lineId=line.line_id):
        cx.plat.originate(other_product, cx.sign(other_product))
    no_line = cx.loan(1_000_000, borrower_key=line.borrower_key, line_id=new_id("line"))
    with refused("LineNotActive", lineId=no_line.line_id, status=int(LineStatus.NONE)):
        cx.plat.originate(no_line, cx.sign(no_line))


def test_line_must_expire_in_the_future(cx):
    now = cx.now()
    line = cx.line(1_000_000, expires_in=0)
    assert line.expires_at == now
    with refused("ExpiryInPast", expiresAt=now, nowTs=now):
        cx.plat.grant_line(line, cx.sign(line))
    # one second after the block it lands in: accepted
    set_next_timestamp(cx, now + 1)
    block = grant(cx, cx.line(1_000_000, expires_in=2))
    assert cx.gov.w3.eth.get_block(block)["timestamp"] == now + 1
