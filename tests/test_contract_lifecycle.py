"""Life of loans and lines on the real contracts (anvil and Hardhat node): repayments and their
allocation, status changes, line exposure, batches, the global pause, and access control.

Every refusal is checked by the contract error a user would see (ContractRevert.code) and, where
the error carries numbers, by those numbers.
"""

from __future__ import annotations

import dataclasses

import pytest
from web3.logs import DISCARD

from ledger import allocation
from ledger.chain.deployment import fund
from ledger.chain.errors import ContractRevert
from ledger.domain import (
    CoLoan,
    LineStatus,
    LoanStatus,
    MemberStatus,
    Policy,
    Product,
    Role,
    Tranche,
    sort_tranches,
)
from ledger.keys import dev_account
from ledger.localnet.consortium import LocalConsortium, new_id
from ledger.provenance import pack_signatures, sign
from tests.conftest import advance_time

ZERO = b"\0" * 32


# ------------------------------------------------------------------ helpers


def reverts(code: str, fn, *args, **kwargs) -> ContractRevert:
    """Call `fn` and return the ContractRevert it raises, which must be `code`."""
    with pytest.raises(ContractRevert) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value}"
    return info.value


def events(client, name: str, receipt) -> list:
    return [
        e["args"]
        for e in getattr(client.ledger.events, name)().process_receipt(receipt.raw, errors=DISCARD)
    ]


def reason(text: str) -> bytes:
    return text.encode().ljust(32, b"\0")


def amounts(loan: CoLoan) -> list[int]:
    return [t.amount for t in loan.tranches]


def lenders_of(cx: LocalConsortium, loan: CoLoan) -> list[str]:
    return [t.lender for t in loan.tranches if t.lender != loan.platform]


def usage(cx: LocalConsortium, lender: str) -> tuple[int, int]:
    u = cx.plat.lender_usage(lender, cx.platform.address)
    return u["total"], u["with_partner"]


def originate(cx: LocalConsortium, principal: int, shares=None, **kw) -> CoLoan:
    loan = cx.loan(principal, shares, **kw)
    cx.plat.originate(loan, cx.sign(loan))
    return loan


def uneven(cx: LocalConsortium, principal: int = 1_000_003) -> list:
    """Platform ~40%, two lenders with odd amounts, so rounding matters."""
    p = principal * 4 // 10 + 1
    a = (principal - p) // 3 + 2
    return [(cx.platform, p), (cx.lenders[0], a), (cx.lenders[1], principal - p - a)]


def new_member(cx: LocalConsortium, role_name: str, index: int, role: Role | None = None):
    """A funded extra account, admitted in `role` when given."""
    acct = dev_account(role_name, index)
    fund(cx.rpc_url, [acct.address])
    if role is not None:
        cx.gov.admit_member(acct.address, role, f"{role_name} {index}")
    return acct


# ------------------------------------------------------------------ repayment


def test_repayments_allocate_by_the_rule_and_release_everything(cx):
    loan = cx.loan(1_000_003, uneven(cx))
    amt, p = amounts(loan), loan.principal
    banks = lenders_of(cx, loan)
    assert [usage(cx, b) for b in banks] == [(0, 0), (0, 0)]

    cx.plat.originate(loan, cx.sign(loan))
    exp = cx.plat.borrower_exposure(loan.borrower_key)
    assert exp["consumer"] == p and exp["business"] == 0
    indices = {cx.plat.member(t.lender)["index"] for t in loan.tranches}
    assert exp["institutions"] == dict.fromkeys(indices, 1)
    for t in loan.tranches:
        if t.lender != loan.platform:
            assert usage(cx, t.lender) == (t.amount, t.amount)

    # uneven payments, an interest-only one among them, until fully repaid
    plan = [(333_334, 1_234), (1, 0), (0, 10), (7, 5), (250_000, 99_999)]
    plan.append((p - sum(x for x, _ in plan), 17))
    repaid = 0
    for principal, interest in plan:
        receipt = cx.plat.repay(loan, new_id("rep"), principal, interest)
        (ev,) = events(cx.plat, "Repaid", receipt)
        assert ev["principal"] == principal and ev["interest"] == interest
        assert list(ev["principalAllocation"]) == allocation.between(
            amt, p, repaid, repaid + principal
        )
        assert list(ev["interestAllocation"]) == allocation.split(amt, p, interest)
        assert sum(ev["principalAllocation"]) == principal
        repaid += principal
        out = p - repaid
        assert ev["outstanding"] == out
        assert cx.plat.loan_state(loan.loan_id)[1] == out
        per_tranche = cx.plat.tranche_outstanding(loan)
        assert per_tranche == allocation.outstanding(amt, p, out)
        assert cx.plat.borrower_exposure(loan.borrower_key)["consumer"] == out
        for t, o in zip(loan.tranches, per_tranche, strict=True):
            if t.lender != loan.platform:
                assert usage(cx, t.lender) == (o, o)

    (changed,) = events(cx.plat, "LoanStatusChanged", receipt)
    assert (changed["from"], changed["to"]) == (LoanStatus.ACTIVE, LoanStatus.REPAID)
    assert changed["reason"] == reason("REPAID") and changed["releasedPrincipal"] == 0
    assert cx.plat.loan_state(loan.loan_id)[1:] == (0, LoanStatus.REPAID)
    assert cx.plat.tranche_outstanding(loan) == [0, 0, 0]
    exp = cx.plat.borrower_exposure(loan.borrower_key)
    assert (exp["consumer"], exp["business"], exp["institutions"]) == (0, 0, {})
    assert [usage(cx, b) for b in banks] == [(0, 0), (0, 0)]


def repay_raw(cx, loan, repayment_id, principal, interest=0):
    """The contract's repay, sent as is: no client-side idempotency check in between."""
    return cx.plat.transact(
        cx.plat.ledger, "repay", loan.as_abi(), repayment_id, principal, interest
    )


def test_repayment_over_outstanding_reused_id_and_zero_amount(cx):
    loan = originate(cx, 500_000)
    rid = new_id("rep")
    cx.plat.repay(loan, rid, 100_000)
    err = reverts("RepaymentExceedsOutstanding", cx.plat.repay, loan, new_id("rep"), 400_001)
    assert err.values == {"loanId": loan.loan_id, "outstanding": 400_000, "requested": 400_001}
    err = reverts("IdAlreadyUsed", repay_raw, cx, loan, rid, 1)
    assert err.values == {"id": rid}
    reverts("IdAlreadyUsed", cx.plat.repay, loan, ZERO, 1)
    reverts("ZeroAmount", cx.plat.repay, loan, new_id("rep"), 0, 0)
    # none of the refusals moved anything
    assert cx.plat.loan_state(loan.loan_id)[1:] == (400_000, LoanStatus.ACTIVE)
    assert cx.plat.borrower_exposure(loan.borrower_key)["consumer"] == 400_000


def test_client_retry_of_the_same_repayment_is_idempotent(cx):
    loan = originate(cx, 500_000)
    rid = new_id("rep")
    assert cx.plat.repay(loan, rid, 100_000) is not None
    assert cx.plat.repay(loan, rid, 100_000) is None  # already on chain: not applied twice
    assert cx.plat.loan_state(loan.loan_id)[1] == 400_000


def test_client_refuses_a_reused_repayment_id_with_other_terms(cx):
    loan = originate(cx, 500_000)
    other = originate(cx, 300_000)
    rid = new_id("rep")
    cx.plat.repay(loan, rid, 100_000)
    try:
        reverts("IdAlreadyUsed", cx.plat.repay, loan, rid, 1)
        reverts("IdAlreadyUsed", cx.plat.repay, other, rid, 100_000)
    finally:
        # whatever the client says, the chain applied nothing
        assert cx.plat.loan_state(loan.loan_id)[1] == 400_000
        assert cx.plat.loan_state(other.loan_id)[1] == 300_000


def test_terms_that_do_not_match_the_commitment(cx):
    loan = originate(cx, 500_000)
    t0, *rest = loan.tranches
    altered = dataclasses.replace(loan, tranches=(Tranche(t0.lender, t0.amount + 1), *rest))
    err = reverts("TermsMismatch", cx.plat.repay, altered, new_id("rep"), 1)
    assert err.values == {"loanId": loan.loan_id}
    reverts(
        "TermsMismatch",
        cx.plat.set_status,
        dataclasses.replace(loan, apr_bps=1),
        LoanStatus.OVERDUE,
    )
    reverts(
        "TermsMismatch", cx.plat.tranche_outstanding, dataclasses.replace(loan, principal=500_001)
    )
    unknown = dataclasses.replace(loan, loan_id=new_id("loan"))
    assert reverts("UnknownLoan", cx.plat.repay, unknown, new_id("rep"), 1).values == {
        "loanId": unknown.loan_id
    }
    assert cx.plat.loan_state(loan.loan_id)[1:] == (500_000, LoanStatus.ACTIVE)


def test_repaying_a_repaid_loan(cx):
    loan = originate(cx, 10_000)
    cx.plat.repay(loan, new_id("rep"), 10_000)
    err = reverts("LoanNotOpen", cx.plat.repay, loan, new_id("rep"), 1)
    assert err.values == {"loanId": loan.loan_id, "status": LoanStatus.REPAID}
    reverts("LoanNotOpen", cx.plat.repay, loan, new_id("rep"), 0, 5)  # not even interest


# ------------------------------------------------------------------ status


def status_of(cx, loan) -> LoanStatus:
    return cx.plat.loan_state(loan.loan_id)[2]


def test_legal_transitions(cx):
    loan = originate(cx, 100_000)
    for to in [LoanStatus.OVERDUE, LoanStatus.ACTIVE, LoanStatus.OVERDUE, LoanStatus.DEFAULTED]:
        before = status_of(cx, loan)
        receipt = cx.plat.set_status(loan, to, reason("DPD30"))
        (ev,) = events(cx.plat, "LoanStatusChanged", receipt)
        assert (ev["from"], ev["to"], ev["reason"], ev["releasedPrincipal"]) == (
            before,
            to,
            reason("DPD30"),
            0,
        )
        assert status_of(cx, loan) == to
        # only a write-off or a repayment releases exposure
        assert cx.plat.borrower_exposure(loan.borrower_key)["consumer"] == 100_000
    # a defaulted loan can still be repaid
    cx.plat.repay(loan, new_id("rep"), 30_000)
    receipt = cx.plat.set_status(loan, LoanStatus.WRITTEN_OFF, reason("WO"))
    (ev,) = events(cx.plat, "LoanStatusChanged", receipt)
    assert (ev["from"], ev["to"], ev["releasedPrincipal"]) == (
        LoanStatus.DEFAULTED,
        LoanStatus.WRITTEN_OFF,
        70_000,
    )
    assert cx.plat.loan_state(loan.loan_id)[1:] == (0, LoanStatus.WRITTEN_OFF)

    other = originate(cx, 100_000)
    cx.plat.set_status(other, LoanStatus.OVERDUE)
    cx.plat.set_status(other, LoanStatus.WRITTEN_OFF)  # Overdue -> WrittenOff directly
    assert status_of(cx, other) == LoanStatus.WRITTEN_OFF


@pytest.mark.parametrize(
    ("path", "to"),
    [
        ([], LoanStatus.DEFAULTED),
        ([], LoanStatus.WRITTEN_OFF),
        ([], LoanStatus.REPAID),
        ([], LoanStatus.ACTIVE),
        ([], LoanStatus.NONE),
        ([LoanStatus.OVERDUE], LoanStatus.REPAID),
        ([LoanStatus.OVERDUE], LoanStatus.OVERDUE),
        ([LoanStatus.OVERDUE, LoanStatus.DEFAULTED], LoanStatus.REPAID),
        ([LoanStatus.OVERDUE, LoanStatus.DEFAULTED], LoanStatus.ACTIVE),
        ([LoanStatus.OVERDUE, LoanStatus.DEFAULTED], LoanStatus.OVERDUE),
    ],
)
def test_illegal_transitions(cx, path, to):
    loan = originate(cx, 100_000)
    for step in path:
        cx.plat.set_status(loan, step)
    frm = status_of(cx, loan)
    err = reverts("IllegalTransition", cx.plat.set_status, loan, to)
    assert err.values == {"loanId": loan.loan_id, "from": frm, "to": to}
    assert status_of(cx, loan) == frm


@pytest.mark.parametrize(
    "to",
    [
        LoanStatus.ACTIVE,
        LoanStatus.OVERDUE,
        LoanStatus.DEFAULTED,
        LoanStatus.WRITTEN_OFF,
        LoanStatus.REPAID,
    ],
)
def test_closed_loans_take_no_status_change(cx, to):
    # A written-off or repaid loan is no longer open: the contract refuses any change with
    # LoanNotOpen (it checks openness before legality), not IllegalTransition.
    written_off = originate(cx, 100_000)
    cx.plat.set_status(written_off, LoanStatus.OVERDUE)
    cx.plat.set_status(written_off, LoanStatus.WRITTEN_OFF)
    err = reverts("LoanNotOpen", cx.plat.set_status, written_off, to)
    assert err.values == {"loanId": written_off.loan_id, "status": LoanStatus.WRITTEN_OFF}
    repaid = originate(cx, 1_000)
    cx.plat.repay(repaid, new_id("rep"), 1_000)
    err = reverts("LoanNotOpen", cx.plat.set_status, repaid, to)
    assert err.values == {"loanId": repaid.loan_id, "status": LoanStatus.REPAID}


def test_write_off_after_partial_repayment_releases_the_rest(cx):
    loan = cx.loan(777_777, uneven(cx, 777_777))
    amt, p = amounts(loan), loan.principal
    cx.plat.originate(loan, cx.sign(loan))
    other = originate(cx, 50_000, borrower_key=loan.borrower_key)  # stays open
    cx.plat.repay(loan, new_id("rep"), 123_457)
    out = p - 123_457
    tranche_out = cx.plat.tranche_outstanding(loan)
    assert tranche_out == allocation.outstanding(amt, p, out)
    usage_before = {
        t.lender: usage(cx, t.lender) for t in loan.tranches if t.lender != loan.platform
    }
    exposure_before = cx.plat.borrower_exposure(loan.borrower_key)
    assert exposure_before["consumer"] == out + 50_000
    assert set(exposure_before["institutions"].values()) == {2}

    cx.plat.set_status(loan, LoanStatus.OVERDUE)
    receipt = cx.plat.set_status(loan, LoanStatus.WRITTEN_OFF, reason("WRITEOFF"))
    (ev,) = events(cx.plat, "LoanStatusChanged", receipt)
    assert ev["releasedPrincipal"] == out
    assert (ev["from"], ev["to"], ev["reason"]) == (
        LoanStatus.OVERDUE,
        LoanStatus.WRITTEN_OFF,
        reason("WRITEOFF"),
    )

    exp = cx.plat.borrower_exposure(loan.borrower_key)
    assert exp["consumer"] == exposure_before["consumer"] - out == 50_000
    assert set(exp["institutions"].values()) == {1}  # only `other` is open now
    for t, o in zip(loan.tranches, tranche_out, strict=True):
        if t.lender != loan.platform:
            total, with_partner = usage_before[t.lender]
            assert usage(cx, t.lender) == (total - o, with_partner - o)
    assert cx.plat.tranche_outstanding(loan) == [0, 0, 0]
    assert cx.plat.loan_state(loan.loan_id)[1:] == (0, LoanStatus.WRITTEN_OFF)
    assert cx.plat.loan_state(other.loan_id)[1:] == (50_000, LoanStatus.ACTIVE)


# ------------------------------------------------------------------ lines


def grant(cx, limit, **kw):
    line = cx.line(limit, **kw)
    receipt = cx.plat.grant_line(line, cx.sign(line))
    return line, receipt


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
    cx.plat.repay(loan, new_id("rep"), 100_000)
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
    cx.plat.repay(loan, new_id("rep"), 50_000)
    assert cx.plat.borrower_exposure(key)["consumer"] == 150_000
    cx.plat.repay(loan, new_id("rep"), 150_000)
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
    reverts("LineMismatch", cx.client(plat2).originate, theirs, sigs)
    assert cx.plat.line_state(line.line_id)["drawn"] == 0
    for refused in (stranger, business, theirs):
        assert cx.plat.loan_state(refused.loan_id)[2] == LoanStatus.NONE


def test_only_the_lines_platform_closes_it(cx):
    line, _ = grant(cx, 1_000_000)
    for who in (cx.lenders[0], cx.auditor, cx.governor):
        err = reverts("NotLinePlatform", cx.client(who).close_line, line.line_id)
        assert err.values == {"account": who.address}
    plat2 = new_member(cx, "platform", 1, Role.PLATFORM)
    reverts("NotLinePlatform", cx.client(plat2).close_line, line.line_id)
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


# ------------------------------------------------------------------ batches


def test_atomic_batch_records_all(cx):
    loans = [cx.loan(100_000 + i) for i in range(4)]
    receipt = cx.plat.originate_batch(loans, [cx.sign(ln) for ln in loans], atomic=True)
    assert {e["loanId"] for e in events(cx.plat, "LoanOriginated", receipt)} == {
        ln.loan_id for ln in loans
    }
    for ln in loans:
        assert cx.plat.loan_state(ln.loan_id)[1:] == (ln.principal, LoanStatus.ACTIVE)
        assert cx.plat.borrower_exposure(ln.borrower_key)["consumer"] == ln.principal


def bad_signature(cx, loan) -> tuple[list[bytes], str]:
    """Signatures where lender 0's is made with another lender's key."""
    sigs = cx.sign(loan)
    i = [t.lender for t in loan.tranches].index(cx.lenders[0].address)
    sigs[i] = sign(cx.lenders[2].key, cx.plat.domain, loan)
    return sigs, cx.lenders[0].address


def test_atomic_batch_with_one_bad_loan_records_nothing(cx):
    loans = [cx.loan(100_000 + i) for i in range(3)]
    sigs = [cx.sign(ln) for ln in loans]
    sigs[1], signer = bad_signature(cx, loans[1])
    err = reverts("InvalidSignature", cx.plat.originate_batch, loans, sigs, atomic=True)
    assert err.values == {"signer": signer}
    for ln in loans:
        assert cx.plat.loan_state(ln.loan_id)[2] == LoanStatus.NONE
        assert cx.plat.borrower_exposure(ln.borrower_key)["consumer"] == 0


def test_non_atomic_batch_rejects_only_the_bad_loans(cx):
    good = [cx.loan(100_000), cx.loan(200_000), cx.loan(300_000)]
    over_cap = cx.loan(20_000_001)
    forged = cx.loan(400_000)
    loans = [good[0], over_cap, good[1], forged, good[2]]
    sigs = [cx.sign(ln) for ln in loans]
    sigs[3], signer = bad_signature(cx, forged)
    args = ([ln.as_abi() for ln in loans], [pack_signatures(s) for s in sigs], False)
    accepted = cx.plat.ledger.functions.originateBatch(*args).call({"from": cx.platform.address})
    assert accepted == 3
    receipt = cx.plat.originate_batch(loans, sigs, atomic=False)
    assert {e["loanId"] for e in events(cx.plat, "LoanOriginated", receipt)} == {
        ln.loan_id for ln in good
    }
    rejected = {
        e["loanId"]: cx.plat.errors.decode(e["reason"])
        for e in events(cx.plat, "LoanRejected", receipt)
    }
    assert set(rejected) == {over_cap.loan_id, forged.loan_id}
    cap = rejected[over_cap.loan_id]
    assert cap.code == "BorrowerCapExceeded"
    assert (cap.values["exposure"], cap.values["requested"], cap.values["cap"]) == (
        0,
        20_000_001,
        20_000_000,
    )
    bad = rejected[forged.loan_id]
    assert bad.code == "InvalidSignature" and bad.values == {"signer": signer}
    for ln in good:
        assert cx.plat.loan_state(ln.loan_id)[1:] == (ln.principal, LoanStatus.ACTIVE)
    for ln in (over_cap, forged):
        assert cx.plat.loan_state(ln.loan_id)[2] == LoanStatus.NONE
        assert cx.plat.borrower_exposure(ln.borrower_key)["consumer"] == 0


def test_originate_from_batch_is_internal(cx):
    loan = cx.loan(100_000)
    reverts(
        "OnlySelf",
        cx.plat.transact,
        cx.plat.ledger,
        "originateFromBatch",
        cx.platform.address,
        loan.as_abi(),
        pack_signatures(cx.sign(loan)),
    )
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.NONE


# ------------------------------------------------------------------ pause


def test_pause_stops_every_ledger_write(cx):
    loan = originate(cx, 100_000)
    line, _ = grant(cx, 500_000, expires_in=600)
    advance_time(cx, 601)
    line2, _ = grant(cx, 500_000)
    cx.gov.pause()
    fresh = cx.loan(100_000)
    fresh_line = cx.line(100_000)
    reverts("LedgerPaused", cx.plat.originate, fresh, cx.sign(fresh))
    reverts("LedgerPaused", cx.plat.originate_batch, [fresh], [cx.sign(fresh)], atomic=True)
    receipt = cx.plat.originate_batch([fresh], [cx.sign(fresh)], atomic=False)
    (rej,) = events(cx.plat, "LoanRejected", receipt)
    assert cx.plat.errors.decode(rej["reason"]).code == "LedgerPaused"
    reverts("LedgerPaused", cx.plat.grant_line, fresh_line, cx.sign(fresh_line))
    reverts("LedgerPaused", cx.plat.repay, loan, new_id("rep"), 1)
    reverts("LedgerPaused", cx.plat.set_status, loan, LoanStatus.OVERDUE)
    reverts("LedgerPaused", cx.plat.close_line, line2.line_id)
    reverts("LedgerPaused", cx.client(cx.auditor).expire_line, line.line_id)
    reverts("EnforcedPause", cx.gov.pause)
    assert cx.plat.loan_state(loan.loan_id)[1:] == (100_000, LoanStatus.ACTIVE)
    assert cx.plat.loan_state(fresh.loan_id)[2] == LoanStatus.NONE

    cx.gov.unpause()
    reverts("ExpectedPause", cx.gov.unpause)
    cx.plat.originate(fresh, cx.sign(fresh))
    cx.plat.grant_line(fresh_line, cx.sign(fresh_line))
    cx.plat.repay(loan, new_id("rep"), 1)
    cx.plat.set_status(loan, LoanStatus.OVERDUE)
    cx.plat.close_line(line2.line_id)
    cx.client(cx.auditor).expire_line(line.line_id)
    assert cx.plat.loan_state(loan.loan_id)[1:] == (99_999, LoanStatus.OVERDUE)
    assert cx.plat.loan_state(fresh.loan_id)[2] == LoanStatus.ACTIVE


def test_only_the_governor_pauses(cx):
    for who in (cx.platform, cx.lenders[0], cx.auditor):
        err = reverts("OwnableUnauthorizedAccount", cx.client(who).pause)
        assert err.values == {"account": who.address}
    cx.gov.pause()
    for who in (cx.platform, cx.lenders[0], cx.auditor):
        reverts("OwnableUnauthorizedAccount", cx.client(who).unpause)
    assert cx.plat.call(cx.plat.registry, "paused") is True


# ------------------------------------------------------------------ access control


REGISTRY_GOVERNOR_CALLS = {
    "admitMember": lambda c, cx: c.admit_member(
        dev_account("outsider", 7).address, Role.LENDER, "x"
    ),
    "suspendMember": lambda c, cx: c.suspend_member(cx.lenders[1].address),
    "reinstateMember": lambda c, cx: c.reinstate_member(cx.lenders[2].address),
    "removeMember": lambda c, cx: c.remove_member(cx.lenders[1].address),
    "setFrozen": lambda c, cx: c.set_frozen(cx.lenders[1].address, True),
    "pause": lambda c, cx: c.pause(),
    "unpause": lambda c, cx: c.unpause(),
    "setPolicy": lambda c, cx: c.set_policy(Policy(consumer_cap=1)),
    "transferOwnership": lambda c, cx: c.transfer_governor(dev_account("outsider", 8).address),
}


@pytest.mark.parametrize("fn", sorted(REGISTRY_GOVERNOR_CALLS))
def test_registry_writes_are_governor_only(cx, fn):
    call = REGISTRY_GOVERNOR_CALLS[fn]
    cx.gov.suspend_member(cx.lenders[2].address)  # so reinstateMember would be legal
    if fn == "unpause":
        cx.gov.pause()  # so unpause would be legal
    outsider = new_member(cx, "outsider", 0)
    for who in (cx.platform, cx.lenders[0], cx.auditor, outsider):
        err = reverts("OwnableUnauthorizedAccount", call, cx.client(who), cx)
        assert err.values == {"account": who.address}
    # nothing changed
    assert cx.gov.member(cx.lenders[1].address)["status"] == MemberStatus.ACTIVE
    assert cx.gov.member(cx.lenders[1].address)["frozen"] is False
    assert cx.gov.current_policy()[1] == 1
    # and the governor itself may
    call(cx.gov, cx)


def test_governor_hand_over_takes_two_steps(cx):
    old = cx.gov
    new_gov = new_member(cx, "governor", 1)
    new = cx.client(new_gov)
    receipt = old.transfer_governor(new_gov.address)
    assert receipt.status == 1
    assert old.call(old.registry, "pendingOwner") == new_gov.address
    # before acceptance the old governor still rules and the new one does not
    assert old.call(old.registry, "owner") == cx.governor.address
    reverts("OwnableUnauthorizedAccount", new.set_frozen, cx.lenders[0].address, True)
    old.set_frozen(cx.lenders[0].address, True)
    old.set_frozen(cx.lenders[0].address, False)
    # only the nominee can accept
    err = reverts("OwnableUnauthorizedAccount", cx.plat.accept_governor)
    assert err.values == {"account": cx.platform.address}

    receipt = new.accept_governor()
    changed = [
        e["args"]
        for e in old.registry.events.GovernorChanged().process_receipt(receipt.raw, errors=DISCARD)
    ]
    assert [(e["previousGovernor"], e["newGovernor"]) for e in changed] == [
        (cx.governor.address, new_gov.address)
    ]
    assert old.call(old.registry, "owner") == new_gov.address
    err = reverts("OwnableUnauthorizedAccount", old.set_frozen, cx.lenders[0].address, True)
    assert err.values == {"account": cx.governor.address}
    reverts("OwnableUnauthorizedAccount", old.pause)
    new.set_frozen(cx.lenders[0].address, True)
    assert cx.gov.member(cx.lenders[0].address)["frozen"] is True
    rec_new, rec_old = old.member(new_gov.address), old.member(cx.governor.address)
    assert (rec_new["role"], rec_new["status"]) == (Role.GOVERNOR, MemberStatus.ACTIVE)
    assert (rec_old["role"], rec_old["status"]) == (Role.GOVERNOR, MemberStatus.REMOVED)
    # the governor record cannot be touched through membership calls
    reverts("GovernorRecordImmutable", new.suspend_member, new_gov.address)


def test_hand_over_to_an_existing_member_is_refused_at_acceptance(cx):
    cx.gov.transfer_governor(cx.platform.address)
    err = reverts("AlreadyMember", cx.plat.accept_governor)
    assert err.values == {"account": cx.platform.address}
    assert cx.gov.call(cx.gov.registry, "owner") == cx.governor.address


def test_renounce_ownership_is_disabled(cx):
    reverts("GovernorRequired", cx.gov.transact, cx.gov.registry, "renounceOwnership")
    reverts("GovernorRequired", cx.plat.transact, cx.plat.registry, "renounceOwnership")
    assert cx.gov.call(cx.gov.registry, "owner") == cx.governor.address


def test_attest_capital_is_for_active_lenders(cx):
    until = cx.now() + 86_400
    for who in (cx.platform, cx.auditor, cx.governor):
        err = reverts("NotActiveLender", cx.client(who).attest_capital, 1, 1, until)
        assert err.values == {"account": who.address}
    cx.gov.suspend_member(cx.lenders[0].address)
    reverts("NotActiveLender", cx.client(cx.lenders[0]).attest_capital, 1, 1, until)
    cx.client(cx.lenders[1]).attest_capital(5, 6, until)
    rec = cx.gov.member(cx.lenders[1].address)
    assert (rec["tier1_capital"], rec["total_loan_balance"], rec["attested_until"]) == (5, 6, until)


def test_ledger_writes_need_the_loans_platform(cx):
    loan = originate(cx, 100_000)
    plat2 = new_member(cx, "platform", 1, Role.PLATFORM)
    for who in (cx.lenders[0], cx.auditor, cx.governor, plat2):
        c = cx.client(who)
        err = reverts("SubmitterNotPlatform", c.repay, loan, new_id("rep"), 1)
        assert err.values == {"submitter": who.address, "platform": cx.platform.address}
        reverts("SubmitterNotPlatform", c.set_status, loan, LoanStatus.OVERDUE)
    # a lender cannot submit a loan or a line in the platform's name
    other = cx.loan(1_000)
    reverts("SubmitterNotPlatform", cx.client(cx.lenders[0]).originate, other, cx.sign(other))
    ln = cx.line(1_000)
    reverts("SubmitterNotPlatform", cx.client(cx.lenders[0]).grant_line, ln, cx.sign(ln))
    # nor name itself the platform
    own = cx.loan(1_000, [(cx.lenders[0], 600), (cx.lenders[1], 400)], platform=cx.lenders[0])
    err = reverts("WrongRole", cx.client(cx.lenders[0]).originate, own, cx.sign(own))
    assert err.values == {"account": cx.lenders[0].address, "role": Role.LENDER}

    cx.gov.suspend_member(cx.platform.address)
    err = reverts("NotActiveMember", cx.plat.repay, loan, new_id("rep"), 1)
    assert err.values == {"account": cx.platform.address}
    reverts("NotActiveMember", cx.plat.set_status, loan, LoanStatus.OVERDUE)
    fresh = cx.loan(1_000)
    reverts("NotActiveMember", cx.plat.originate, fresh, cx.sign(fresh))
    cx.gov.reinstate_member(cx.platform.address)
    cx.gov.set_frozen(cx.platform.address, True)
    reverts("MemberIsFrozen", cx.plat.repay, loan, new_id("rep"), 1)
    cx.gov.set_frozen(cx.platform.address, False)
    cx.plat.repay(loan, new_id("rep"), 1)
    assert cx.plat.loan_state(loan.loan_id)[1:] == (99_999, LoanStatus.ACTIVE)


def test_sort_tranches_is_what_the_contract_expects(cx):
    # guard for the helpers above: tranches out of address order are refused
    loan = cx.loan(1_000)
    flipped = dataclasses.replace(
        loan, tranches=tuple(reversed(sort_tranches(list(loan.tranches))))
    )
    reverts("TranchesNotSorted", cx.plat.originate, flipped, cx.sign(flipped))
