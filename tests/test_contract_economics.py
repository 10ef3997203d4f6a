"""Issue 16 on chain, tried with real member keys against the contracts directly: R9 and the
schedule commitment in the signed terms, partnership terms and the service-fee split, guarantors
(admitted by the council, R10, compensatory payments), each bank's classification against the DPD
floor, and recoveries. Python (ledger.economics, ledger.rules) and Solidity agree on the shared
vectors (tests/vectors/economics.json)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ledger import economics, rules
from ledger import schedule as sched
from ledger.book import MemberState
from ledger.chain.servicing import Partnership
from ledger.domain import DEFAULT_POLICY, LoanStatus, MemberInfo, Role
from ledger.localnet.consortium import new_id
from tests.contract_lifecycle_support import events
from tests.contract_rules_support import originate, refused
from tests.economics_vectors import PATH

VECTORS = json.loads(PATH.read_text())
DAY = 86_400
YEAR = 365 * DAY


def _loan(cx, principal: int = 1_000_000, **kw):  # noqa: ANN001, ANN003, ANN202
    start = cx.now()
    s = sched.build("equal_instalment", principal, 12, 1200, start)
    return cx.loan(principal, schedule=s, start=start, **kw), s


def _terms(fee: int, lo: int = 1_000, hi: int = 4_000, now: int = 0) -> Partnership:
    return Partnership(fee, lo, hi, now, now + YEAR)


def _partner(cx, bank, fee: int) -> Partnership:  # noqa: ANN001
    t = _terms(fee, 0, 10_000, cx.now() - 10)
    cx.client(bank).offer_partnership(cx.platform.address, t)
    cx.plat.accept_partnership(bank.address, t)
    return t


# ------------------------------------------------------------------ R9 and the schedule digest


def test_r9_refuses_a_declared_apr_over_the_cap_and_rules_agree(cx):
    at_cap = cx.loan(1_000_000, apr_bps=2_400)
    originate(cx, at_cap)
    over = cx.loan(1_000_000, apr_bps=2_401)
    with refused("AllInAprTooHigh", loanId=over.loan_id, aprBps=2_401, capBps=2_400):
        cx.plat.originate(over, cx.sign(over))
    book = rules.Book(policy=DEFAULT_POLICY)
    for a in [cx.platform, *cx.lenders[:2]]:
        info = MemberInfo.from_abi(a.address, cx.plat.call(cx.plat.registry, "member", a.address))
        book.members[a.address] = MemberState.from_info(info)
    assert rules.check_loan(book, over, cx.now()) == rules.Violation(
        "AllInAprTooHigh", {"loanId": over.loan_id, "aprBps": 2_401, "capBps": 2_400}
    )


def test_r9_is_governed_within_its_hard_bound(cx):
    with refused("PolicyOutOfBounds", field="maxAllInAprBps", value=3_601, bound=3_600):
        cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, max_all_in_apr_bps=3_601))
    with refused("InvalidPolicy", field="maxAllInAprBps"):
        cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, max_all_in_apr_bps=0))
    lower = dataclasses.replace(DEFAULT_POLICY, max_all_in_apr_bps=1_500)
    cx.gov.set_policy(lower)
    assert cx.plat.current_policy() == (lower, 2)
    loan = cx.loan(1_000_000, apr_bps=1_501)
    with refused("AllInAprTooHigh", loanId=loan.loan_id, aprBps=1_501, capBps=1_500):
        cx.plat.originate(loan, cx.sign(loan))
    # the ledger's one-word read carries R9 above the version and the pause flag, not in them
    word, version_and_pause, _ = cx.plat.registry.functions.partyWords([]).call()
    assert ((word >> 233) & 0x7FFF, version_and_pause) == (1_500, 2)


@pytest.mark.parametrize("case", VECTORS["schedules"], ids=lambda c: c["name"][:30])
def test_a_loan_whose_irr_apr_is_over_the_cap_is_refused_though_its_simple_rate_is_not(cx, case):
    """The vectors' schedules, declared at their IRR APR: refused exactly when that is over R9."""
    s = sched.from_json(case["instalments"])
    loan = cx.loan(case["principal"], schedule=s, start=case["start"])
    assert loan.apr_bps == case["apr_bps"]
    if case["apr_bps"] > DEFAULT_POLICY.max_all_in_apr_bps:
        assert case["simple_bps"] < DEFAULT_POLICY.max_all_in_apr_bps
        with refused("AllInAprTooHigh", loanId=loan.loan_id, aprBps=case["apr_bps"], capBps=2_400):
            cx.plat.originate(loan, cx.sign(loan))
    else:
        originate(cx, loan)


def test_the_schedule_digest_is_signed_and_agrees_with_solidity(cx):
    for case in VECTORS["schedules"]:
        s = sched.from_json(case["instalments"])
        assert "0x" + cx.plat.chain_schedule_digest(s).hex() == case["digest"]
    loan, s = _loan(cx)
    sigs = cx.sign(loan)
    swapped = dataclasses.replace(loan, schedule_digest=sched.digest(s[:-1]))
    with refused("InvalidSignature", signer=loan.tranches[0].lender):
        cx.plat.originate(swapped, sigs)
    originate(cx, loan)


def test_days_past_due_agree_with_python_on_every_vector(cx):
    for c in VECTORS["dpd"]:
        s = sched.from_json(VECTORS["schedules"][c["schedule"]]["instalments"])
        assert cx.plat.chain_days_past_due(s, c["paid"], c["at"]) == c["dpd"], c
        assert economics.days_past_due(s, c["paid"], c["at"]) == c["dpd"]


# ------------------------------------------------------------------ partnerships and fees


def test_partnership_terms_need_both_and_a_fee_within_the_range(cx):
    bank, other = cx.client(cx.lenders[0]), cx.client(cx.lenders[1])
    p = cx.platform.address
    now = cx.now()
    with refused("FeeShareOutOfRange", feeBps=4_500, minFeeBps=1_000, maxFeeBps=4_000):
        bank.offer_partnership(p, _terms(4_500, now=now))
    with refused("FeeShareOutOfRange", feeBps=500, minFeeBps=1_000, maxFeeBps=4_000):
        bank.offer_partnership(p, _terms(500, now=now))
    with refused("InvalidPeriod", validFrom=now + 10, validUntil=now + 10):
        bank.offer_partnership(p, Partnership(3_000, 1_000, 4_000, now + 10, now + 10))
    # a platform cannot offer, a bank cannot accept, and nothing binds on one side's word
    with refused("NotActiveInRole", account=p, role=Role.LENDER):
        cx.plat.offer_partnership(p, _terms(3_000, now=now))
    terms = _terms(3_000, now=now)
    bank.offer_partnership(p, terms)
    assert cx.plat.partnership(cx.lenders[0].address, p) == Partnership(0, 0, 0, 0, 0)
    with refused("NotActiveInRole", account=cx.lenders[1].address, role=Role.PLATFORM):
        other.accept_partnership(cx.lenders[0].address, terms)
    with refused("PartnershipTermsMismatch", bank=cx.lenders[0].address, platform=p):
        cx.plat.accept_partnership(cx.lenders[0].address, dataclasses.replace(terms, fee_bps=1_000))
    with refused("PartnershipTermsMismatch", bank=cx.lenders[1].address, platform=p):
        cx.plat.accept_partnership(cx.lenders[1].address, terms)
    receipt = cx.plat.accept_partnership(cx.lenders[0].address, terms)
    assert cx.plat.partnership(cx.lenders[0].address, p) == terms
    (ev,) = events(cx.plat, "PartnershipSigned", receipt)
    assert ev["bank"] == cx.lenders[0].address
    # the offer is spent: accepting it twice is refused
    with refused("PartnershipTermsMismatch", bank=cx.lenders[0].address, platform=p):
        cx.plat.accept_partnership(cx.lenders[0].address, terms)


@pytest.mark.parametrize("case", VECTORS["interest_splits"], ids=lambda c: c["name"][:30])
def test_service_fees_agree_with_python_on_every_vector(cx, case):
    lenders, spare = [], list(cx.lenders)
    for bps in case["fee_bps"]:
        if bps:
            bank = spare.pop(0)
            _partner(cx, bank, bps)
            lenders.append(bank.address)
        elif cx.platform.address not in lenders:
            lenders.append(cx.platform.address)
        else:
            lenders.append(spare.pop().address)  # a bank without terms in force
    fees = cx.plat.service_fees(cx.platform.address, lenders, case["tranche"])
    assert fees == case["fee"]


def test_a_repayment_emits_every_partys_interest_exactly(cx):
    l0, l1 = cx.lenders[0], cx.lenders[1]
    _partner(cx, l0, 3_000)
    _partner(cx, l1, 2_500)
    loan, _s = _loan(cx)
    originate(cx, loan)
    receipt = cx.plat.repay(loan, new_id("rp", cx.platform.address), 78_849, 10_001)
    (rep,) = events(cx.plat, "Repaid", receipt)
    (fees,) = events(cx.plat, "ServiceFees", receipt)
    amounts = [t.amount for t in loan.tranches]
    fee_bps = [{l0.address: 3_000, l1.address: 2_500}.get(t.lender, 0) for t in loan.tranches]
    want = economics.split_interest(amounts, loan.principal, fee_bps, 10_001)
    assert list(rep["interestAllocation"]) == list(want.tranche)
    assert list(fees["fees"]) == list(want.fee)
    assert sum(want.kept) + sum(want.fee) == 10_001


def test_a_payment_on_a_repaid_loan_is_refused(cx):
    loan, _s = _loan(cx)
    originate(cx, loan)
    cx.plat.repay(loan, new_id("rp", cx.platform.address), loan.principal, 0)
    with refused("LoanNotOpen", loanId=loan.loan_id, status=LoanStatus.REPAID):
        cx.plat.repay(loan, new_id("rp", cx.platform.address), 0, 100)
