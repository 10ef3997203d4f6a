"""Life of loans on the real contracts (anvil and Hardhat node): repayments and their
allocation, status changes, and batches.

How refusals are checked: tests/contract_lifecycle_support.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from ledger import allocation
from ledger.domain import LoanStatus, Tranche
from ledger.localnet.consortium import new_id
from ledger.provenance import pack_signatures, sign
from tests.contract_lifecycle_support import (
    amounts,
    events,
    lenders_of,
    originate,
    reason,
    reverts,
    uneven,
    usage,
)

ZERO = b"\0" * 32


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
        receipt = cx.plat.repay(loan, new_id("rep", cx.platform.address), principal, interest)
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
    rid = new_id("rep", cx.platform.address)
    cx.plat.repay(loan, rid, 100_000)
    err = reverts(
        "RepaymentExceedsOutstanding",
        cx.plat.repay,
        loan,
        new_id("rep", cx.platform.address),
        400_001,
    )
    assert err.values == {"loanId": loan.loan_id, "outstanding": 400_000, "requested": 400_001}
    err = reverts("IdAlreadyUsed", repay_raw, cx, loan, rid, 1)
    assert err.values == {"id": rid}
    # ids belong to their platform: the zero id is in nobody's namespace
    reverts("IdOutsideNamespace", cx.plat.repay, loan, ZERO, 1)
    reverts("ZeroAmount", cx.plat.repay, loan, new_id("rep", cx.platform.address), 0, 0)
    # none of the refusals moved anything
    assert cx.plat.loan_state(loan.loan_id)[1:] == (400_000, LoanStatus.ACTIVE)
    assert cx.plat.borrower_exposure(loan.borrower_key)["consumer"] == 400_000


def test_client_retry_of_the_same_repayment_is_idempotent(cx):
    loan = originate(cx, 500_000)
    rid = new_id("rep", cx.platform.address)
    assert cx.plat.repay(loan, rid, 100_000) is not None
    assert cx.plat.repay(loan, rid, 100_000) is None  # already on chain: not applied twice
    assert cx.plat.loan_state(loan.loan_id)[1] == 400_000


def test_client_refuses_a_reused_repayment_id_with_other_terms(cx):
    loan = originate(cx, 500_000)
    other = originate(cx, 300_000)
    rid = new_id("rep", cx.platform.address)
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
    err = reverts("TermsMismatch", cx.plat.repay, altered, new_id("rep", cx.platform.address), 1)
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
    assert reverts(
        "UnknownLoan", cx.plat.repay, unknown, new_id("rep", cx.platform.address), 1
    ).values == {"loanId": unknown.loan_id}
    assert cx.plat.loan_state(loan.loan_id)[1:] == (500_000, LoanStatus.ACTIVE)


def test_repaying_a_repaid_loan(cx):
    loan = originate(cx, 10_000)
    cx.plat.repay(loan, new_id("rep", cx.platform.address), 10_000)
    err = reverts("LoanNotOpen", cx.plat.repay, loan, new_id("rep", cx.platform.address), 1)
    assert err.values == {"loanId": loan.loan_id, "status": LoanStatus.REPAID}
    reverts(
        "LoanNotOpen", cx.plat.repay, loan, new_id("rep", cx.platform.address), 0, 5
    )  # not even interest


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
    cx.plat.repay(loan, new_id("rep", cx.platform.address), 30_000)
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
    cx.plat.repay(repaid, new_id("rep", cx.platform.address), 1_000)
    err = reverts("LoanNotOpen", cx.plat.set_status, repaid, to)
    assert err.values == {"loanId": repaid.loan_id, "status": LoanStatus.REPAID}


def test_write_off_after_partial_repayment_releases_the_rest(cx):
    loan = cx.loan(777_777, uneven(cx, 777_777))
    amt, p = amounts(loan), loan.principal
    cx.plat.originate(loan, cx.sign(loan))
    other = originate(cx, 50_000, borrower_key=loan.borrower_key)  # stays open
    cx.plat.repay(loan, new_id("rep", cx.platform.address), 123_457)
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
    args = ([ln.as_abi() for ln in loans], [pack_signatures(s) for s in sigs], [[]] * 5, False)
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
        [],
    )
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.NONE
