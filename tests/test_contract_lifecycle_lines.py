"""Life of credit lines on the real contracts (anvil and Hardhat node): closes, expiry, draws
and the exposure a line counts for.

How refusals are checked: tests/contract_lifecycle_support.py.
"""

from __future__ import annotations

from ledger.domain import LineStatus, LoanStatus, Product, Role
from ledger.localnet.consortium import new_id
from ledger.provenance import sign
from tests.conftest import advance_time
from tests.contract_lifecycle_support import events, grant, new_member, reverts

# ------------------------------------------------------------------ lines


def test_close_line_releases_its_limit(cx):
    line, receipt = grant(cx, 2_000_000)
    (ev,) = events(cx.plat, "LineGranted", receipt)
    assert ev["lineId"] == line.line_id
    exp = cx.plat.borrower_exposure(line.borrower_key)
    assert exp["consumer"] == 2_000_000 and len(exp["institutions"]) == 3
    receipt = cx.plat.close_line(line.line_id)
    (ended,) = events(cx.plat, "LineEnded", receipt)
    assert (ended["status"], ended["limit"], ended["drawn"]) == (LineStatus.CLOSED, 2_000_000, 0)
    exp = cx.plat.borrower_exposure(line.borrower_key)
    assert (exp["consumer"], exp["institutions"]) == (0, {})
    assert cx.plat.line_state(line.line_id)["status"] == LineStatus.CLOSED
    err = reverts("LineNotActive", cx.plat.close_line, line.line_id)
    assert err.values == {"lineId": line.line_id, "status": LineStatus.CLOSED}
    unknown = new_id("line")
    assert reverts("UnknownLine", cx.plat.close_line, unknown).values == {"lineId": unknown}


def test_expire_line_only_after_expiry(cx):
    line, _ = grant(cx, 1_500_000, product=Product.BUSINESS, expires_in=1_000)
    assert cx.plat.borrower_exposure(line.borrower_key)["business"] == 1_500_000
    anyone = cx.client(cx.auditor)
    err = reverts("LineNotExpired", anyone.expire_line, line.line_id)
    assert err.values["lineId"] == line.line_id and err.values["expiresAt"] == line.expires_at
    assert err.values["nowTs"] <= line.expires_at
    advance_time(cx, 1_001)
    # past expiry it cannot be drawn on, even before anyone marks it expired
    late = cx.loan(
        100_000, borrower_key=line.borrower_key, product=Product.BUSINESS, line_id=line.line_id
    )
    err = reverts("LineNotActive", cx.plat.originate, late, cx.sign(late))
    assert err.values == {"lineId": line.line_id, "status": LineStatus.ACTIVE}
    receipt = anyone.expire_line(line.line_id)
    (ended,) = events(anyone, "LineEnded", receipt)
    assert ended["status"] == LineStatus.EXPIRED
    exp = cx.plat.borrower_exposure(line.borrower_key)
    assert (exp["business"], exp["institutions"]) == (0, {})
    err = reverts("LineNotActive", cx.plat.originate, late, cx.sign(late))
    assert err.values == {"lineId": line.line_id, "status": LineStatus.EXPIRED}
    reverts("LineNotActive", anyone.expire_line, line.line_id)


def test_loan_under_a_line_counts_on_its_own_once_the_line_closes(cx):
    line, _ = grant(cx, 1_000_000)
    key = line.borrower_key
    loan = cx.loan(300_000, borrower_key=key, line_id=line.line_id)
    cx.plat.originate(loan, cx.sign(loan))
    # a drawn loan adds no exposure: the limit already counts
    assert cx.plat.borrower_exposure(key)["consumer"] == 1_000_000
    assert cx.plat.line_state(line.line_id)["drawn"] == 300_000
    cx.plat.repay(loan, new_id("rep", cx.platform.address), 100_000)
    assert cx.plat.borrower_exposure(key)["consumer"] == 1_000_000
    assert cx.plat.line_state(line.line_id)["drawn"] == 200_000
    big = cx.loan(800_001, borrower_key=key, line_id=line.line_id)
    err = reverts("LineLimitExceeded", cx.plat.originate, big, cx.sign(big))
    assert err.values == {
        "lineId": line.line_id,
        "drawn": 200_000,
        "requested": 800_001,
        "limit": 1_000_000,
    }

    receipt = cx.plat.close_line(line.line_id)
    (ended,) = events(cx.plat, "LineEnded", receipt)
    assert (ended["limit"], ended["drawn"]) == (1_000_000, 200_000)
    exp = cx.plat.borrower_exposure(key)
    assert exp["consumer"] == 200_000 == cx.plat.loan_state(loan.loan_id)[1]
    assert set(exp["institutions"].values()) == {1}  # the loan's own records
    cx.plat.repay(loan, new_id("rep", cx.platform.address), 50_000)
    assert cx.plat.borrower_exposure(key)["consumer"] == 150_000
    cx.plat.repay(loan, new_id("rep", cx.platform.address), 150_000)
    exp = cx.plat.borrower_exposure(key)
    assert (exp["consumer"], exp["institutions"]) == (0, {})
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.REPAID
    # and the closed line takes no new draws
    again = cx.loan(1_000, borrower_key=key, line_id=line.line_id)
    err = reverts("LineNotActive", cx.plat.originate, again, cx.sign(again))
    assert err.values == {"lineId": line.line_id, "status": LineStatus.CLOSED}


def test_draw_must_match_the_line(cx):
    line, _ = grant(cx, 1_000_000)
    stranger = cx.loan(1_000, borrower_key=new_id("borrower"), line_id=line.line_id)
    assert reverts("LineMismatch", cx.plat.originate, stranger, cx.sign(stranger)).values == {
        "lineId": line.line_id
    }
    business = cx.loan(
        1_000, borrower_key=line.borrower_key, product=Product.BUSINESS, line_id=line.line_id
    )
    reverts("LineMismatch", cx.plat.originate, business, cx.sign(business))
    # another platform cannot draw on this platform's line
    plat2 = new_member(cx, "platform", 1, Role.PLATFORM)
    theirs = cx.loan(
        1_000,
        [(plat2, 600), (cx.lenders[0], 400)],
        borrower_key=line.borrower_key,
        line_id=line.line_id,
        platform=plat2,
    )
    sigs = [
        sign(plat2.key, cx.plat.domain, theirs)
        if t.lender == plat2.address
        else sign(cx.lenders[0].key, cx.plat.domain, theirs)
        for t in theirs.tranches
    ]
    # (only the line's servicer draws: a successor after a servicing transfer)
    err = reverts("NotServicer", cx.client(plat2).originate, theirs, sigs)
    assert err.values == {"account": plat2.address, "servicer": cx.platform.address}
    assert cx.plat.line_state(line.line_id)["drawn"] == 0
    for refused in (stranger, business, theirs):
        assert cx.plat.loan_state(refused.loan_id)[2] == LoanStatus.NONE


def test_only_the_lines_platform_closes_it(cx):
    line, _ = grant(cx, 1_000_000)
    for who in (cx.lenders[0], cx.auditor):
        err = reverts("NotLinePlatform", cx.client(who).close_line, line.line_id)
        assert err.values == {"account": who.address}
    plat2 = new_member(cx, "platform", 1, Role.PLATFORM)
    reverts("NotServicer", cx.client(plat2).close_line, line.line_id)
    outsider = new_member(cx, "outsider", 0)
    assert reverts("NotActiveMember", cx.client(outsider).close_line, line.line_id).values == {
        "account": outsider.address
    }
    cx.gov.suspend_member(cx.platform.address)
    reverts("NotActiveMember", cx.plat.close_line, line.line_id)
    cx.gov.reinstate_member(cx.platform.address)
    assert cx.plat.line_state(line.line_id)["status"] == LineStatus.ACTIVE
    cx.plat.close_line(line.line_id)
    assert cx.plat.line_state(line.line_id)["status"] == LineStatus.CLOSED
