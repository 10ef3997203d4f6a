"""LoanServicing on chain with real member keys: a guarantor admitted by the council, R10 on its
attested net assets, compensatory payments (代偿) on default, each bank's classification of its
own tranche against the DPD floor, and recoveries on a written-off loan."""

from __future__ import annotations

import dataclasses

import pytest

from ledger import economics
from ledger import schedule as sched
from ledger.chain.deployment import fund
from ledger.chain.errors import ContractRevert
from ledger.domain import DEFAULT_POLICY, LoanStatus, Role
from ledger.keys import dev_account
from ledger.localnet.consortium import new_id
from ledger.provenance import sign
from tests.contract_lifecycle_support import events
from tests.contract_rules_support import originate, refused

DAY = 86_400
NET_ASSETS = 100_000  # fen: x10 (R10) covers 1,000,000 fen of guarantees


@pytest.fixture
def gx(cx):  # noqa: ANN001, ANN201
    """The consortium with a guarantor the council admitted, its net assets attested."""
    g = dev_account("guarantor", 0)
    fund(cx.rpc_url, [g.address])
    cx.gov.admit_member(g.address, Role.GUARANTOR, "Guarantor (dev)")
    cx.extra["guarantor"] = g
    cx.client(g).attest_capital(NET_ASSETS, 0, cx.now() + 30 * DAY)
    yield cx, g
    cx.extra.pop("guarantor", None)


def _loan(cx, principal: int = 1_000_000):  # noqa: ANN001, ANN202
    start = cx.now() + 60
    s = sched.build("equal_instalment", principal, 12, 1200, start)
    loan = cx.loan(principal, schedule=s, start=start)
    originate(cx, loan)
    return loan, s


def _guarantee(cx, g, loan, cover: int = 8_000):  # noqa: ANN001, ANN202
    cx.client(g).offer_guarantee(loan.loan_id, cover)
    return cx.plat.accept_guarantee(loan, g.address, cover)


def _bank_outstanding(cx, loan):  # noqa: ANN001, ANN202
    return [o for o, t in zip(cx.plat.tranche_outstanding(loan), loan.tranches, strict=True)
            if t.lender != loan.platform]  # fmt: skip


def test_a_guarantor_is_a_role_the_council_admits(gx):
    cx, g = gx
    assert cx.plat.member(g.address)["role"] == Role.GUARANTOR
    # it cannot fund or sign a tranche, nor offer partnership terms as a bank
    loan = cx.loan(1_000_000, [(cx.platform, 400_000), (cx.lenders[0], 300_000), (g, 300_000)])
    accounts = {**cx.accounts(), g.address: g}
    sigs = [sign(accounts[s].key, cx.plat.domain, loan) for s in loan.signers]
    with refused("WrongRole", account=g.address, role=Role.GUARANTOR):
        cx.plat.originate(loan, sigs)


def test_guarantee_r10_and_compensation_on_default(gx):
    cx, g = gx
    loan, _s = _loan(cx)
    gc = cx.client(g)
    # the platform cannot record a guarantee nobody offered, nor a different cover
    with refused("GuaranteeOfferMismatch", loanId=loan.loan_id, guarantor=g.address):
        cx.plat.accept_guarantee(loan, g.address, 8_000)
    gc.offer_guarantee(loan.loan_id, 8_000)
    with refused("GuaranteeOfferMismatch", loanId=loan.loan_id, guarantor=g.address):
        cx.plat.accept_guarantee(loan, g.address, 9_000)
    # only the loan's platform accepts
    with refused("NotLoanPlatform", account=cx.lenders[0].address, platform=cx.platform.address):
        cx.client(cx.lenders[0]).accept_guarantee(loan, g.address, 8_000)
    receipt = cx.plat.accept_guarantee(loan, g.address, 8_000)
    covered = sum(o * 8_000 // 10_000 for o in _bank_outstanding(cx, loan))
    (ev,) = events(cx.plat, "GuaranteeRecorded", receipt)
    assert (ev["amount"], cx.plat.guaranteed_outstanding(g.address)) == (covered, covered)

    # R10: a second loan would take the guarantor past 10x its net assets
    second, _ = _loan(cx, 3_000_000)
    gc.offer_guarantee(second.loan_id, 8_000)
    want = sum(o * 8_000 // 10_000 for o in _bank_outstanding(cx, second))
    with refused("GuaranteeCapExceeded", guarantor=g.address, outstanding=covered,
                 requested=want, cap=NET_ASSETS * 10):  # fmt: skip
        cx.plat.accept_guarantee(second, g.address, 8_000)

    # compensation only once the loan is defaulted, only by its guarantor
    with refused("WrongLoanStatus", loanId=loan.loan_id, status=LoanStatus.ACTIVE):
        gc.compensate(loan)
    cx.plat.set_status(loan, LoanStatus.OVERDUE)
    cx.plat.set_status(loan, LoanStatus.DEFAULTED)
    with refused("NoGuarantee", loanId=loan.loan_id, account=cx.lenders[0].address):
        cx.client(cx.lenders[0]).compensate(loan)
    exposure_before = cx.plat.borrower_exposure(loan.borrower_key)
    outstanding = cx.plat.tranche_outstanding(loan)
    receipt = gc.compensate(loan)
    covered_flags = [t.lender != loan.platform for t in loan.tranches]
    want_pay = economics.compensation(outstanding, covered_flags, 8_000)
    (ev,) = events(cx.plat, "Compensated", receipt)
    assert list(ev["payouts"]) == want_pay and ev["total"] == sum(want_pay)
    assert cx.plat.compensation_of(loan.loan_id) == want_pay
    # the borrower's consortium exposure does not fall: the debt is now owed to the guarantor
    assert cx.plat.borrower_exposure(loan.borrower_key) == exposure_before
    assert cx.plat.guaranteed_outstanding(g.address) == 0
    with refused("NoGuarantee", loanId=loan.loan_id, account=g.address):
        gc.compensate(loan)


def test_r10_needs_fresh_net_assets_and_a_repaid_loan_releases_the_guarantee(gx):
    cx, g = gx
    loan, _s = _loan(cx)
    _guarantee(cx, g, loan, 5_000)
    held = cx.plat.guaranteed_outstanding(g.address)
    assert held > 0
    with refused("WrongLoanStatus", loanId=loan.loan_id, status=LoanStatus.ACTIVE):
        cx.plat.release_guarantee(loan)
    cx.plat.repay(loan, new_id("rp", cx.platform.address), loan.principal, 0)
    receipt = cx.client(cx.lenders[1]).release_guarantee(loan)  # anyone may
    assert events(cx.plat, "GuaranteeReleased", receipt)[0]["amount"] == held
    assert cx.plat.guaranteed_outstanding(g.address) == 0
    # net assets attested for 30 days stop counting after them
    other, _ = _loan(cx)
    cx.client(g).offer_guarantee(other.loan_id, 5_000)
    until = cx.plat.member(g.address)["attested_until"]
    cx.advance(until - cx.now() + 10)
    with pytest.raises(ContractRevert) as stale:
        cx.plat.accept_guarantee(other, g.address, 5_000)
    assert stale.value.code == "StaleNetAssets"
    assert stale.value.values["attestedUntil"] == until < stale.value.values["nowTs"]


def test_classification_never_milder_than_the_floor_and_only_by_its_banks(gx):
    cx, g = gx
    loan, s = _loan(cx)
    bank = cx.client(cx.lenders[0])
    words_ok = bank.classify(loan, s, economics.Category.NORMAL)
    (ev,) = events(cx.plat, "Classified", words_ok)
    assert (ev["category"], ev["dpd"]) == (0, 0)
    # one second past the first due date: special mention at least
    cx.advance(s[0].due - cx.now() + 1)
    dpd = economics.days_past_due(s, 0, cx.now() + 1)
    with refused("ClassificationBelowFloor", loanId=loan.loan_id, lender=cx.lenders[0].address,
                 category=0, floor=1, dpd=dpd):  # fmt: skip
        bank.classify(loan, s, economics.Category.NORMAL)
    bank.classify(loan, s, economics.Category.SUBSTANDARD)  # stricter than the floor is fine
    assert bank.classification_of(loan.loan_id, cx.lenders[0].address) == 2
    # not its tranche, not a bank, not the committed schedule, not a category
    with refused("NotTrancheLender", loanId=loan.loan_id, account=cx.lenders[2].address):
        cx.client(cx.lenders[2]).classify(loan, s, 4)
    with refused("NotActiveInRole", account=cx.platform.address, role=Role.LENDER):
        cx.plat.classify(loan, s, 4)
    with refused("ScheduleMismatch", loanId=loan.loan_id):
        bank.classify(loan, s[:-1], 4)
    with refused("InvalidCategory", category=5):
        bank.classify(loan, s, 5)
    # repaying the overdue instalment's principal brings the floor back to normal
    cx.plat.repay(loan, new_id("rp", cx.platform.address), s[0].principal, s[0].interest)
    bank.classify(loan, s, economics.Category.NORMAL)


def test_the_floor_is_governed_within_its_bounds(cx):
    with refused("PolicyOutOfBounds", field="specialMentionMaxDpd", value=91, bound=90):
        cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, special_mention_max_dpd=91))
    with refused("PolicyOutOfBounds", field="maxGuaranteeMultiple", value=11, bound=10):
        cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, max_guarantee_multiple=11))
    with refused("InvalidPolicy", field="doubtfulMaxDpd"):
        cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, doubtful_max_dpd=270))


def test_recoveries_on_a_written_off_loan_split_pro_rata(cx):
    loan, _s = _loan(cx)
    with refused("WrongLoanStatus", loanId=loan.loan_id, status=LoanStatus.ACTIVE):
        cx.plat.recover(loan, new_id("rc", cx.platform.address), 100)
    cx.plat.set_status(loan, LoanStatus.OVERDUE)
    cx.plat.set_status(loan, LoanStatus.WRITTEN_OFF)
    exposure = cx.plat.borrower_exposure(loan.borrower_key)
    amounts = [t.amount for t in loan.tranches]
    r1 = cx.plat.recover(loan, new_id("rc", cx.platform.address), 12_345)
    r2 = cx.plat.recover(loan, new_id("rc", cx.platform.address), 7_655)
    got = [list(events(cx.plat, "Recovered", r)[0]["split"]) for r in (r1, r2)]
    assert got == [economics.split_recovery(amounts, loan.principal, 0, 12_345),
                   economics.split_recovery(amounts, loan.principal, 12_345, 20_000)]  # fmt: skip
    assert cx.plat.recovered(loan.loan_id) == 20_000
    assert cx.plat.borrower_exposure(loan.borrower_key) == exposure  # not added back
    with refused("RecoveryExceedsPrincipal", loanId=loan.loan_id, recovered=20_000,
                 requested=loan.principal, principal=loan.principal):  # fmt: skip
        cx.plat.recover(loan, new_id("rc", cx.platform.address), loan.principal)
    with refused("NotLoanPlatform", account=cx.lenders[0].address, platform=cx.platform.address):
        cx.client(cx.lenders[0]).recover(loan, new_id("rc", cx.platform.address), 1)
