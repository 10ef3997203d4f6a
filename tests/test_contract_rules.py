"""R1-R8 and the record structure, judged by the contracts on a real chain (anvil and Hardhat node).

Every rule is probed at its boundary: the record exactly at the limit is accepted, one fen (or one
day, one second) over is refused with the rule's error and the exact numbers it carries, and the
exposure views show the outcome afterwards. A refusal surfaces from gas estimation, before any
transaction is sent, so each refusal costs one RPC call.

Time: a refused call is judged at the latest block's timestamp (what `eth_estimateGas` uses on both
nodes), so `nowTs` in an error is `cx.now()`; an accepted record that must land at an exact second
is sent after `evm_setNextBlockTimestamp`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from ledger.chain.deployment import fund
from ledger.chain.errors import ContractRevert
from ledger.domain import (
    DEFAULT_POLICY,
    MAX_AMOUNT,
    CoLoan,
    CreditLine,
    LineStatus,
    LoanStatus,
    Policy,
    Product,
    RepaymentType,
    Role,
    Tranche,
    sort_tranches,
)
from ledger.keys import dev_account
from ledger.localnet.consortium import LocalConsortium, new_id
from ledger.provenance import sign

CONSUMER_CAP = DEFAULT_POLICY.consumer_cap  # 20,000,000 fen
BUSINESS_CAP = DEFAULT_POLICY.business_cap  # 100,000,000 fen
MAX_AGE = DEFAULT_POLICY.max_attestation_age
ZERO32 = b"\0" * 32


# ---------------------------------------------------------------------------------- helpers


def _norm(v: Any) -> Any:
    if isinstance(v, str) and is_address(v):
        return to_checksum_address(v)
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    if isinstance(v, tuple | list):
        return type(v)(_norm(x) for x in v)
    return v


@contextlib.contextmanager
def refused(code: str, **expected: Any) -> Iterator[None]:
    """Expect the contracts to refuse with error `code` carrying exactly `expected`."""
    with pytest.raises(ContractRevert) as info:
        yield
    exc = info.value
    assert exc.code == code, f"expected {code}, got {exc}"
    got = {k: _norm(v) for k, v in exc.values.items()}
    want = {k: _norm(v) for k, v in expected.items()}
    assert got == want, f"{code}: got {got}, expected {want}"


def rpc(cx: LocalConsortium, method: str, *params: Any) -> Any:
    return cx.gov.w3.provider.make_request(method, list(params))


def set_next_timestamp(cx: LocalConsortium, ts: int) -> None:
    rpc(cx, "evm_setNextBlockTimestamp", ts)


def mine_at(cx: LocalConsortium, ts: int) -> None:
    set_next_timestamp(cx, ts)
    rpc(cx, "evm_mine")
    assert cx.now() == ts


def originate(cx: LocalConsortium, loan: CoLoan) -> int:
    """Record `loan` through the platform's client; returns its block number."""
    res = cx.plat.originate(loan, cx.sign(loan))
    assert not res.already_recorded
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.ACTIVE
    return res.block_number


def grant(cx: LocalConsortium, line: CreditLine) -> int:
    return cx.plat.grant_line(line, cx.sign(line)).block_number


def exposure(cx: LocalConsortium, key: bytes) -> dict:
    return cx.plat.borrower_exposure(key)


def index_of(cx: LocalConsortium, account: LocalAccount | str) -> int:
    addr = account if isinstance(account, str) else account.address
    return cx.plat.member(addr)["index"]


def attest(
    cx: LocalConsortium, lender: LocalAccount, tier1: int, balance: int, valid_for: int = 86_400
) -> None:
    cx.client(lender).attest_capital(tier1, balance, cx.now() + valid_for)


def platform_share(cx: LocalConsortium, amount: int) -> list[tuple[LocalAccount, int]]:
    """One tranche, the platform's own: no bank, so R5/R6/R8 do not apply."""
    return [(cx.platform, amount)]


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

    one_c = cx.loan(1, platform_share(cx, 1), borrower_key=key, product=Product.CONSUMER)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=CONSUMER_CAP, requested=1, cap=CONSUMER_CAP
    ):
        cx.plat.originate(one_c, cx.sign(one_c))
    one_b = cx.loan(1, platform_share(cx, 1), borrower_key=key, product=Product.BUSINESS)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=BUSINESS_CAP, requested=1, cap=BUSINESS_CAP
    ):
        cx.plat.originate(one_b, cx.sign(one_b))


def test_repayment_releases_exposure(cx):
    key = new_id("borrower")
    first = cx.loan(CONSUMER_CAP, borrower_key=key)
    originate(cx, first)
    cx.plat.repay(first, new_id("repayment"), 1_000_000)
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
    cx.plat.repay(a, new_id("repayment"), a.principal - 1)
    with refused("TooManyInstitutions", borrowerKey=key, institutions=4, max=3):
        cx.plat.originate(fourth, cx.sign(fourth))

    cx.plat.repay(a, new_id("repayment"), 1)
    assert cx.plat.loan_state(a.loan_id)[1:] == (0, LoanStatus.REPAID)
    originate(cx, fourth)
    assert exposure(cx, key)["institutions"] == {
        index_of(cx, p): 2,
        index_of(cx, l0): 2,
        index_of(cx, l2): 1,
    }


# ---------------------------------------------------------------------------------- R4


@pytest.mark.parametrize(
    ("principal", "minimum"),
    [(1_000_000, 300_000), (1_000_001, 300_001)],  # 30% of 1,000,001 is 300,000.3: round up
)
def test_platform_share_boundary_on_loans(cx, principal, minimum):
    low = cx.loan(principal, [(cx.platform, minimum - 1), (cx.lenders[0], principal - minimum + 1)])
    with refused(
        "PlatformShareTooLow",
        id=low.loan_id,
        platformAmount=minimum - 1,
        total=principal,
        minBps=3_000,
    ):
        cx.plat.originate(low, cx.sign(low))

    at = cx.loan(principal, [(cx.platform, minimum), (cx.lenders[0], principal - minimum)])
    originate(cx, at)


def test_platform_share_boundary_on_lines(cx):
    low = cx.line(1_000_000, [(cx.platform, 299_999), (cx.lenders[0], 700_001)])
    with refused(
        "PlatformShareTooLow", id=low.line_id, platformAmount=299_999, total=1_000_000, minBps=3_000
    ):
        cx.plat.grant_line(low, cx.sign(low))

    at = cx.line(1_000_000, [(cx.platform, 300_000), (cx.lenders[0], 700_000)])
    grant(cx, at)
    assert cx.plat.line_state(at.line_id)["status"] == LineStatus.ACTIVE


def test_platform_tranche_missing(cx):
    loan = cx.loan(1_000_000, [(cx.lenders[0], 500_000), (cx.lenders[1], 500_000)])
    with refused("PlatformTrancheMissing", platform=cx.platform.address):
        cx.plat.originate(loan, cx.sign(loan))
    line = cx.line(1_000_000, [(cx.lenders[0], 500_000), (cx.lenders[1], 500_000)])
    with refused("PlatformTrancheMissing", platform=cx.platform.address):
        cx.plat.grant_line(line, cx.sign(line))


# ---------------------------------------------------------------------------------- R5, R6


def test_partner_concentration_limit(cx):
    lender, p = cx.lenders[0], cx.platform
    # 25% of 4,000,003 is 1,000,000.75: the limit rounds down to 1,000,000
    attest(cx, lender, 4_000_003, 10**13)
    usage = cx.plat.lender_usage(lender.address, p.address)
    assert (usage["with_partner"], usage["partner_limit"]) == (0, 1_000_000)

    over = cx.loan(2_000_001, [(p, 1_000_000), (lender, 1_000_001)])
    with refused(
        "PartnerConcentrationExceeded",
        lender=lender.address,
        partner=p.address,
        outstanding=0,
        requested=1_000_001,
        limit=1_000_000,
    ):
        cx.plat.originate(over, cx.sign(over))

    at = cx.loan(2_000_000, [(p, 1_000_000), (lender, 1_000_000)])
    originate(cx, at)
    usage = cx.plat.lender_usage(lender.address, p.address)
    assert (usage["with_partner"], usage["total"]) == (1_000_000, 1_000_000)

    one_more = cx.loan(10, [(p, 9), (lender, 1)])
    with refused(
        "PartnerConcentrationExceeded",
        lender=lender.address,
        partner=p.address,
        outstanding=1_000_000,
        requested=1,
        limit=1_000_000,
    ):
        cx.plat.originate(one_more, cx.sign(one_more))

    # repaying 2 fen of the 50/50 loan repays 1 fen of the bank's tranche: room for exactly 1
    cx.plat.repay(at, new_id("repayment"), 2)
    assert cx.plat.lender_usage(lender.address, p.address)["with_partner"] == 999_999
    originate(cx, one_more)
    assert cx.plat.lender_usage(lender.address, p.address)["with_partner"] == 1_000_000


def test_joint_loan_share_limit(cx):
    lender, p = cx.lenders[0], cx.platform
    # 50% of 2,000,001 is 1,000,000.5: the limit rounds down to 1,000,000
    attest(cx, lender, 10**12, 2_000_001)
    assert cx.plat.lender_usage(lender.address, p.address)["total_limit"] == 1_000_000

    over = cx.loan(2_000_001, [(p, 1_000_000), (lender, 1_000_001)])
    with refused(
        "JointLoanShareExceeded",
        lender=lender.address,
        outstanding=0,
        requested=1_000_001,
        limit=1_000_000,
    ):
        cx.plat.originate(over, cx.sign(over))

    originate(cx, cx.loan(2_000_000, [(p, 1_000_000), (lender, 1_000_000)]))
    one_more = cx.loan(10, [(p, 9), (lender, 1)])
    with refused(
        "JointLoanShareExceeded",
        lender=lender.address,
        outstanding=1_000_000,
        requested=1,
        limit=1_000_000,
    ):
        cx.plat.originate(one_more, cx.sign(one_more))
    # another bank is not affected by this bank's limit
    originate(cx, cx.loan(10, [(p, 9), (cx.lenders[1], 1)]))


def _second_platform(cx: LocalConsortium) -> LocalAccount:
    p2 = dev_account("platform", 1)
    fund(cx.rpc_url, [p2.address])
    cx.gov.admit_member(p2.address, Role.PLATFORM, "Platform 2 (test)")
    return p2


def _sign_with(
    record: CoLoan | CreditLine, cx: LocalConsortium, *extra: LocalAccount
) -> list[bytes]:
    accounts = cx.accounts() | {a.address: a for a in extra}
    return [sign(accounts[s].key, cx.plat.domain, record) for s in record.signers]


def test_partner_limit_is_per_partner_joint_limit_is_across_partners(cx):
    lender, p1 = cx.lenders[0], cx.platform
    p2 = _second_platform(cx)
    # R5 limit 1,000,000 per partner; R6 limit 1,500,000 over all partners
    attest(cx, lender, 4_000_000, 3_000_000)
    originate(cx, cx.loan(2_000_000, [(p1, 1_000_000), (lender, 1_000_000)]))

    over = cx.loan(1_000_001, [(p2, 500_000), (lender, 500_001)], platform=p2)
    with refused(
        "JointLoanShareExceeded",
        lender=lender.address,
        outstanding=1_000_000,
        requested=500_001,
        limit=1_500_000,
    ):
        cx.client(p2).originate(over, _sign_with(over, cx, p2))

    at = cx.loan(1_000_000, [(p2, 500_000), (lender, 500_000)], platform=p2)
    cx.client(p2).originate(at, _sign_with(at, cx, p2))
    u1 = cx.plat.lender_usage(lender.address, p1.address)
    u2 = cx.plat.lender_usage(lender.address, p2.address)
    assert (u1["with_partner"], u2["with_partner"], u2["total"]) == (1_000_000, 500_000, 1_500_000)


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


# ---------------------------------------------------------------------------------- R8


def test_stale_attestation_blocks_only_that_bank_until_it_attests_again(cx):
    p, l0, l1 = cx.platform, cx.lenders[0], cx.lenders[1]
    until = cx.plat.member(l0.address)["attested_until"]
    assert until > cx.now()
    # lender 1 attests again, so only lender 0 goes stale at `until`
    cx.client(l1).attest_capital(10**12, 10**13, cx.now() + MAX_AGE - 1)
    assert cx.plat.member(l1.address)["attested_until"] > until
    deadline = until + 86_400

    set_next_timestamp(cx, until)  # exactly at validUntil: still fresh
    on_time = cx.loan(1_000_000, deadline=deadline)
    block = originate(cx, on_time)
    assert cx.gov.w3.eth.get_block(block)["timestamp"] == until

    mine_at(cx, until + 1)
    late = cx.loan(1_000_000, deadline=deadline)
    with refused("StaleAttestation", lender=l0.address, attestedUntil=until, nowTs=until + 1):
        cx.plat.originate(late, cx.sign(late))
    line = cx.line(1_000_000, deadline=deadline)
    with refused("StaleAttestation", lender=l0.address, attestedUntil=until, nowTs=until + 1):
        cx.plat.grant_line(line, cx.sign(line))
    # a loan without the stale bank goes through
    originate(cx, cx.loan(1_000_000, [(p, 500_000), (l1, 500_000)], deadline=deadline))

    cx.client(l0).attest_capital(10**12, 10**13, cx.now() + 86_400)
    originate(cx, late)


def test_never_attested_lender_is_stale(cx):
    newcomer = dev_account("lender", 7)
    fund(cx.rpc_url, [newcomer.address])
    cx.gov.admit_member(newcomer.address, Role.LENDER, "Bank N (test)")
    loan = cx.loan(1_000_000, [(cx.platform, 500_000), (newcomer.address, 500_000)])
    with refused("StaleAttestation", lender=newcomer.address, attestedUntil=0, nowTs=cx.now()):
        cx.plat.originate(loan, _sign_with(loan, cx, newcomer))


def test_attestation_validity_bounded_by_policy_max_age(cx):
    lender = cx.client(cx.lenders[0])
    now = cx.now()
    with refused("InvalidAttestation", validUntil=now + MAX_AGE + 1, nowTs=now, maxAge=MAX_AGE):
        lender.attest_capital(1, 1, now + MAX_AGE + 1)
    with refused("InvalidAttestation", validUntil=now, nowTs=now, maxAge=MAX_AGE):
        lender.attest_capital(1, 1, now)

    ts = now + 5
    set_next_timestamp(cx, ts)  # exactly maxAge ahead of the block it lands in: accepted
    lender.transact(lender.registry, "attestCapital", 7, 8, ts + MAX_AGE, gas=200_000)
    m = cx.plat.member(cx.lenders[0].address)
    assert (m["tier1_capital"], m["total_loan_balance"], m["attested_at"], m["attested_until"]) == (
        7,
        8,
        ts,
        ts + MAX_AGE,
    )


@pytest.mark.parametrize("who", ["platform", "auditor", "governor", "suspended lender"])
def test_only_an_active_lender_attests(cx, who):
    if who == "suspended lender":
        account = cx.lenders[2]
        cx.gov.suspend_member(account.address)
    else:
        account = getattr(cx, who)
    with refused("NotActiveLender", account=account.address):
        cx.client(account).attest_capital(10**12, 10**13, cx.now() + 86_400)


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
    more = cx.loan(1, platform_share(cx, 1), borrower_key=key)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=15_000_000, requested=1, cap=10_000_000
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
    originate(
        cx, cx.loan(1_000, platform_share(cx, 1_000), repayment=RepaymentType.BULLET, term_days=30)
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


def test_only_the_governor_sets_policy(cx):
    for account in (cx.platform, cx.lenders[0]):
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
        ({"max_partner_capital_bps": 10_001}, "maxPartnerCapitalBps"),
        ({"max_joint_loan_bps": 10_001}, "maxJointLoanBps"),
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
        max_institutions=5,
        min_platform_share_bps=10_000,
        max_partner_capital_bps=10_000,
        max_joint_loan_bps=10_000,
    )
    cx.gov.set_policy(bound)
    assert cx.plat.current_policy() == (bound, 2)


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

    # the largest amount is representable end to end once the policy allows it
    cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, business_cap=MAX_AMOUNT))
    at = cx.loan(MAX_AMOUNT, platform_share(cx, MAX_AMOUNT), product=Product.BUSINESS)
    originate(cx, at)
    assert cx.plat.loan_state(at.loan_id)[1] == MAX_AMOUNT
    assert exposure(cx, at.borrower_key)["business"] == MAX_AMOUNT


def test_ids_are_single_use(cx):
    first = cx.loan(1_000_000)
    originate(cx, first)
    reuse = cx.loan(2_000_000, loan_id=first.loan_id)
    with refused("IdAlreadyUsed", id=first.loan_id):
        cx.plat.originate(reuse, cx.sign(reuse))
    assert cx.plat.loan_state(first.loan_id)[1] == 1_000_000

    zero = cx.loan(1_000_000, loan_id=ZERO32)
    with refused("IdAlreadyUsed", id=ZERO32):
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

    second_line = cx.line(1, platform_share(cx, 1), borrower_key=key)
    with refused(
        "BorrowerCapExceeded", borrowerKey=key, exposure=CONSUMER_CAP, requested=1, cap=CONSUMER_CAP
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
    cx.plat.repay(drawn, new_id("repayment"), 2_000_000)
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
