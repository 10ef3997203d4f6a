"""R7, the policy and the record structure, judged by the contracts on a real chain (anvil and
Hardhat node): the consumer bullet term, policy versions and bounds, tranches, amounts and ids.

How every rule is probed at its boundary: tests/contract_rules_support.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ledger.domain import (
    DEFAULT_POLICY,
    MAX_AMOUNT,
    CoLoan,
    Policy,
    Product,
    RepaymentType,
    Tranche,
    sort_tranches,
)
from ledger.localnet.consortium import new_id
from tests.contract_rules_support import (
    CONSUMER_CAP,
    attest,
    exposure,
    grant,
    originate,
    platform_share,
    refused,
)

ZERO32 = b"\0" * 32


# ---------------------------------------------------------------------------------- R7


@pytest.mark.parametrize(
    ("product", "repayment", "days", "accepted"),
    [
        (Product.CONSUMER, RepaymentType.BULLET, 365, True),
        (Product.CONSUMER, RepaymentType.BULLET, 366, False),
        (Product.BUSINESS, RepaymentType.BULLET, 366, True),
        (Product.CONSUMER, RepaymentType.INSTALMENT, 366, True),
    ],
)
def test_consumer_bullet_term(cx, product, repayment, days, accepted):
    loan = cx.loan(1_000_000, product=product, repayment=repayment, term_days=days)
    if accepted:
        originate(cx, loan)
    else:
        with refused("BulletTermTooLong", loanId=loan.loan_id, termDays=days, maxDays=365):
            cx.plat.originate(loan, cx.sign(loan))


# ---------------------------------------------------------------------------------- policy


def test_policy_versions(cx):
    v1, version = cx.plat.current_policy()
    assert (v1, version) == (DEFAULT_POLICY, 1)
    assert v1.effective_block == cx.deployment.deployment_block

    key = new_id("borrower")
    originate(cx, cx.loan(15_000_000, borrower_key=key))  # judged under v1

    v2 = dataclasses.replace(DEFAULT_POLICY, consumer_cap=10_000_000)
    receipt = cx.gov.set_policy(v2)
    current, version = cx.plat.current_policy()
    assert (current, version) == (v2, 2)
    assert current.effective_block == receipt.block_number
    old = cx.plat.policy_at(1)
    assert old == DEFAULT_POLICY and old.consumer_cap == CONSUMER_CAP
    assert old.effective_block == v1.effective_block

    # history is not re-judged: the 15,000,000 loan stands, but nothing more fits under v2
    assert exposure(cx, key)["consumer"] == 15_000_000
    more = cx.loan(2, platform_share(cx, 2), borrower_key=key)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=15_000_000, requested=2, cap=10_000_000
    ):
        cx.plat.originate(more, cx.sign(more))

    over = cx.loan(10_000_001)
    with refused(
        "BorrowerCapExceeded",
        borrowerKey=over.borrower_key,
        exposure=0,
        requested=10_000_001,
        cap=10_000_000,
    ):
        cx.plat.originate(over, cx.sign(over))
    at = cx.loan(10_000_000)
    res = cx.plat.originate(at, cx.sign(at))
    raw = cx.plat.w3.eth.get_transaction_receipt(res.tx_hash)
    (event,) = cx.plat.ledger.events.LoanOriginated().process_receipt(raw)
    assert event["args"]["policyVersion"] == 2


def test_every_rule_reads_the_new_policy(cx):
    """Each field of the packed policy word, changed at once, is the number its rule applies."""
    p, l0, l1 = cx.platform, cx.lenders[0], cx.lenders[1]
    v2 = Policy(
        consumer_cap=10_000_000,
        business_cap=50_000_000,
        max_institutions=2,
        min_platform_share_bps=5_000,
        max_partner_capital_bps=100,
        max_joint_loan_bps=200,
        max_consumer_bullet_days=30,
        max_attestation_age=86_400,
    )
    cx.gov.set_policy(v2)
    assert cx.plat.current_policy() == (v2, 2)

    def half(principal: int, **kw: Any) -> CoLoan:  # platform 50% + 1 fen, one bank
        mine = principal // 2 + 1
        return cx.loan(principal, [(p, mine), (l0, principal - mine)], **kw)

    def check(loan: CoLoan, code: str, **values: Any) -> None:
        with refused(code, **values):
            cx.plat.originate(loan, cx.sign(loan))

    r1 = half(10_000_001)
    check(
        r1,
        "BorrowerCapExceeded",
        borrowerKey=r1.borrower_key,
        exposure=0,
        requested=10_000_001,
        cap=10_000_000,
    )
    r2 = half(50_000_001, product=Product.BUSINESS)
    check(
        r2,
        "BorrowerCapExceeded",
        borrowerKey=r2.borrower_key,
        exposure=0,
        requested=50_000_001,
        cap=50_000_000,
    )
    r3 = cx.loan(1_000, [(p, 600), (l0, 200), (l1, 200)])
    check(r3, "TooManyInstitutions", borrowerKey=r3.borrower_key, institutions=3, max=2)
    r4 = cx.loan(1_000, [(p, 499), (l0, 501)])
    check(r4, "PlatformShareTooLow", id=r4.loan_id, platformAmount=499, total=1_000, minBps=5_000)
    r7 = half(1_000, repayment=RepaymentType.BULLET, term_days=31)
    check(r7, "BulletTermTooLong", loanId=r7.loan_id, termDays=31, maxDays=30)
    originate(  # with the second bank: the first's R5/R6 usage stays 0 for the checks below
        cx, cx.loan(1_000, [(p, 500), (l1, 500)], repayment=RepaymentType.BULLET, term_days=30)
    )

    now = cx.now()
    with refused("InvalidAttestation", validUntil=now + 86_401, nowTs=now, maxAge=86_400):
        cx.client(l0).attest_capital(1_000_000, 1_000_000, now + 86_401)
    attest(cx, l0, 1_000_000, 10**13, valid_for=86_400)  # R5: 1% of 1,000,000 = 10,000
    r5 = cx.loan(20_002, [(p, 10_001), (l0, 10_001)])
    check(
        r5,
        "PartnerConcentrationExceeded",
        lender=l0.address,
        partner=p.address,
        outstanding=0,
        requested=10_001,
        limit=10_000,
    )
    attest(cx, l0, 10**12, 1_000_000, valid_for=86_400)  # R6: 2% of 1,000,000 = 20,000
    r6 = cx.loan(40_002, [(p, 20_001), (l0, 20_001)])
    check(
        r6,
        "JointLoanShareExceeded",
        lender=l0.address,
        outstanding=0,
        requested=20_001,
        limit=20_000,
    )


def test_only_the_council_sets_policy(cx):
    for account in (cx.platform, cx.lenders[0], cx.auditor, cx.governor):
        with refused("OwnableUnauthorizedAccount", account=account.address):
            cx.client(account).set_policy(dataclasses.replace(DEFAULT_POLICY, consumer_cap=1))
    assert cx.plat.current_policy()[1] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"max_institutions": 6}, "maxInstitutions"),
        ({"max_institutions": 0}, "maxInstitutions"),
        ({"consumer_cap": 0}, "consumerCap"),
        ({"business_cap": 0}, "businessCap"),
        ({"min_platform_share_bps": 10_001}, "minPlatformShareBps"),
        ({"max_consumer_bullet_days": 0}, "maxConsumerBulletDays"),
        ({"max_attestation_age": 0}, "maxAttestationAge"),
    ],
)
def test_invalid_policy_refused(cx, change, field):
    with refused("InvalidPolicy", field=field):
        cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, **change))
    assert cx.plat.current_policy()[1] == 1


def test_policy_limits_at_their_bounds_accepted(cx):
    bound = dataclasses.replace(
        DEFAULT_POLICY,
        consumer_cap=200_000 * 100,
        business_cap=1_000_000 * 100,
        max_institutions=5,
        min_platform_share_bps=3_000,
        max_partner_capital_bps=2_500,
        max_joint_loan_bps=5_000,
        max_consumer_bullet_days=365,
    )
    cx.gov.set_policy(bound)
    assert cx.plat.current_policy() == (bound, 2)
    cx.gov.set_policy(dataclasses.replace(bound, min_platform_share_bps=10_000))
    assert cx.plat.current_policy()[1] == 3


@pytest.mark.parametrize(
    ("change", "field", "value", "bound"),
    [
        ({"consumer_cap": 200_000 * 100 + 1}, "consumerCap", 200_000 * 100 + 1, 200_000 * 100),
        ({"consumer_cap": 2**48 - 1}, "consumerCap", 2**48 - 1, 200_000 * 100),
        ({"business_cap": 1_000_000 * 100 + 1}, "businessCap", 100_000_001, 100_000_000),
        ({"min_platform_share_bps": 2_999}, "minPlatformShareBps", 2_999, 3_000),
        ({"min_platform_share_bps": 0}, "minPlatformShareBps", 0, 3_000),
        ({"max_partner_capital_bps": 2_501}, "maxPartnerCapitalBps", 2_501, 2_500),
        ({"max_joint_loan_bps": 5_001}, "maxJointLoanBps", 5_001, 5_000),
        ({"max_consumer_bullet_days": 366}, "maxConsumerBulletDays", 366, 365),
    ],
)
def test_a_council_vote_cannot_cross_a_hard_bound(cx, change, field, value, bound):
    """Insider: even a unanimous council cannot lift R1 to 2^48-1 fen or R4 to 0% (DESIGN §4)."""
    from ledger.governance import policy_bound_violations

    policy = dataclasses.replace(DEFAULT_POLICY, **change)
    # the Python mirror (ledger.governance) refuses it the same way, before any transaction
    assert policy_bound_violations(policy) == [(field, value, bound)]
    with refused("PolicyOutOfBounds", field=field, value=value, bound=bound):
        cx.gov.set_policy(policy)
    assert cx.plat.current_policy()[1] == 1


# ---------------------------------------------------------------------------------- structure


def test_tranches_must_sum_to_principal(cx):
    base = cx.loan(1_000_000)
    short = dataclasses.replace(
        base,
        tranches=(
            *base.tranches[:-1],
            dataclasses.replace(base.tranches[-1], amount=base.tranches[-1].amount - 1),
        ),
    )
    with refused("TrancheSumMismatch", sum=999_999, total=1_000_000):
        cx.plat.originate(short, cx.sign(short))
    long = dataclasses.replace(base, principal=999_999)
    with refused("TrancheSumMismatch", sum=1_000_000, total=999_999):
        cx.plat.originate(long, cx.sign(long))


def test_tranches_must_be_strictly_ascending(cx):
    base = cx.loan(1_000_000)
    unsorted = dataclasses.replace(base, tranches=tuple(reversed(base.tranches)))
    with refused("TranchesNotSorted", index=1):
        cx.plat.originate(unsorted, cx.sign(unsorted))

    l0 = cx.lenders[0].address
    dup = sort_tranches(
        [Tranche(cx.platform.address, 400_000), Tranche(l0, 300_000), Tranche(l0, 300_000)]
    )
    second = [i for i, t in enumerate(dup) if t.lender == l0][1]
    duplicated = dataclasses.replace(base, tranches=dup)
    with refused("TranchesNotSorted", index=second):
        cx.plat.originate(duplicated, cx.sign(duplicated))


def test_zero_amounts_refused(cx):
    zero = cx.loan(0, [(cx.platform, 0)])
    with refused("ZeroAmount"):
        cx.plat.originate(zero, cx.sign(zero))
    zero_tranche = cx.loan(1_000, [(cx.platform, 1_000), (cx.lenders[0], 0)])
    with refused("ZeroAmount"):
        cx.plat.originate(zero_tranche, cx.sign(zero_tranche))


def test_amount_limit(cx):
    over = cx.loan(MAX_AMOUNT + 1, platform_share(cx, MAX_AMOUNT + 1), product=Product.BUSINESS)
    with refused("AmountTooLarge", amount=MAX_AMOUNT + 1, max=MAX_AMOUNT):
        cx.plat.originate(over, cx.sign(over))
    line = cx.line(MAX_AMOUNT + 1, platform_share(cx, MAX_AMOUNT + 1))
    with refused("AmountTooLarge", amount=MAX_AMOUNT + 1, max=MAX_AMOUNT):
        cx.plat.grant_line(line, cx.sign(line))

    # no vote can let a policy reach the largest amount: R2's hard bound is 1,000,000 CNY
    with refused("PolicyOutOfBounds", field="businessCap", value=MAX_AMOUNT, bound=100_000_000):
        cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, business_cap=MAX_AMOUNT))
    # the largest amount the bound allows is representable end to end
    top = 1_000_000 * 100
    at = cx.loan(top, platform_share(cx, top), product=Product.BUSINESS)
    originate(cx, at)
    assert cx.plat.loan_state(at.loan_id)[1] == top
    assert exposure(cx, at.borrower_key)["business"] == top


def test_ids_are_single_use(cx):
    first = cx.loan(1_000_000)
    originate(cx, first)
    reuse = cx.loan(2_000_000, loan_id=first.loan_id)
    with refused("IdAlreadyUsed", id=first.loan_id):
        cx.plat.originate(reuse, cx.sign(reuse))
    assert cx.plat.loan_state(first.loan_id)[1] == 1_000_000

    zero = cx.loan(1_000_000, loan_id=ZERO32)  # in nobody's namespace
    with refused("IdOutsideNamespace", id=ZERO32, platform=cx.platform.address):
        cx.plat.originate(zero, cx.sign(zero))

    line = cx.line(1_000_000)
    grant(cx, line)
    again = cx.line(2_000_000, line_id=line.line_id)
    with refused("IdAlreadyUsed", id=line.line_id):
        cx.plat.grant_line(again, cx.sign(again))


def test_same_loan_twice_is_reported_as_already_recorded(cx):
    loan = cx.loan(1_000_000)
    originate(cx, loan)
    again = cx.plat.originate(loan, cx.sign(loan))
    assert again.already_recorded and again.tx_hash is None
    assert exposure(cx, loan.borrower_key)["consumer"] == 1_000_000
