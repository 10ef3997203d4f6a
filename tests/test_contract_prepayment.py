"""Prepayment on chain (LoanServicing.prepay), tried with real member keys against the contract
directly: the new schedule is derived from the schedule in force and the principal repaid by the
one rule Python mirrors (shared vectors), never chosen by the platform; classification then
judges days past due on it."""

from __future__ import annotations

import json

import pytest

from ledger import economics, prepayment
from ledger import schedule as sched
from ledger.chain.errors import ContractRevert
from ledger.domain import LoanStatus
from ledger.localnet.consortium import new_id
from tests.contract_lifecycle_support import events
from tests.contract_rules_support import originate, refused
from tests.economics_vectors import PATH

VECTORS = json.loads(PATH.read_text())
DAY = 86_400


def _loan(cx, principal: int = 1_000_000):  # noqa: ANN001, ANN202
    start = cx.now() + 60
    s = sched.build("equal_instalment", principal, 12, 1200, start)
    loan = cx.loan(principal, schedule=s, start=start)
    originate(cx, loan)
    return loan, s


def _rows(words: list[str]) -> tuple[sched.Instalment, ...]:
    m = (1 << 72) - 1
    return tuple(
        sched.Instalment(w >> 216, (w >> 144) & m, (w >> 72) & m, w & m)
        for w in (int(x, 16) for x in words)
    )


@pytest.mark.parametrize("case", VECTORS["prepayments"], ids=lambda c: f"{c['repaid']}@{c['at']}")
def test_the_prepayment_rule_agrees_with_python_on_every_vector(cx, case) -> None:  # noqa: ANN001
    rows = _rows(case["words_in"])
    if "error" in case:
        with pytest.raises(ContractRevert) as refusal:
            cx.plat.chain_rescale(rows, case["repaid"], case["at"])
        assert refusal.value.code == case["error"]
        return
    k, extra, words = cx.plat.chain_rescale(rows, case["repaid"], case["at"])
    assert (k, extra) == (case["covered"], case["principal"])
    assert [hex(w) for w in words] == case["words"]
    assert "0x" + cx.plat.chain_schedule_digest(_rows(case["words"])).hex() == case["digest"]


def test_a_prepayment_rescales_the_schedule_by_the_rule_only(cx) -> None:  # noqa: ANN001
    loan, s = _loan(cx)
    first = s[0].principal + 50_000  # the first instalment and 500 CNY early
    cx.plat.repay(loan, new_id("rp", cx.platform.address), first, s[0].interest)
    # only the loan's platform records it, not a bank of the loan
    with refused("NotLoanPlatform", account=cx.lenders[0].address, platform=cx.platform.address):
        cx.client(cx.lenders[0]).prepay(loan, s)
    # the platform cannot hand in a schedule of its own choosing: only the one in force
    lighter = sched.build("equal_instalment", loan.principal, 12, 1200, s[0].due + 400 * DAY)
    with refused("ScheduleMismatch", loanId=loan.loan_id):
        cx.plat.prepay(loan, lighter)
    receipt = cx.plat.prepay(loan, s)
    (ev,) = events(cx.plat, "Prepaid", receipt)
    want = prepayment.InForce(s).prepay(first)
    assert (ev["principal"], ev["covered"], ev["principalBase"]) == (50_000, 1, first)
    assert [int(w) for w in ev["schedule"]] == [i.word() for i in want.rows]
    assert bytes(ev["scheduleDigest"]) == want.digest
    assert cx.plat.current_schedule(loan.loan_id) == (want.digest[:24], first)
    assert len(want.rows) == 11 and sum(i.principal for i in want.rows) == loan.principal - first
    # the committed schedule is no longer in force; rescheduling again with nothing new repaid
    # is refused
    with refused("ScheduleMismatch", loanId=loan.loan_id):
        cx.plat.prepay(loan, s)
    with refused("NothingPrepaid", loanId=loan.loan_id, principalRepaid=0, covered=0):
        cx.plat.prepay(loan, want.rows)
    # classification judges days past due on the schedule in force
    bank = cx.client(cx.lenders[0])
    with refused("ScheduleMismatch", loanId=loan.loan_id):
        bank.classify(loan, s, economics.Category.NORMAL)
    bank.classify(loan, want.rows, economics.Category.NORMAL)
    cx.advance(want.rows[0].due - cx.now() + 1)
    dpd = want.days_past_due(first, cx.now() + 1)
    assert dpd == 1
    with refused("ClassificationBelowFloor", loanId=loan.loan_id, lender=cx.lenders[0].address,
                 category=0, floor=1, dpd=dpd):  # fmt: skip
        bank.classify(loan, want.rows, economics.Category.NORMAL)
    # arrears come before a prepayment
    cx.plat.repay(loan, new_id("rp", cx.platform.address), 1, 0)
    with refused("PrepaymentWhileOverdue", loanId=loan.loan_id, dpd=dpd):
        cx.plat.prepay(loan, want.rows)
    # a second prepayment rescales the rescaled schedule
    more = want.rows[0].principal - 1 + 50_000
    cx.plat.repay(loan, new_id("rp", cx.platform.address), more, 0)
    (ev2,) = events(cx.plat, "Prepaid", cx.plat.prepay(loan, want.rows))
    again = want.prepay(first + 1 + more)
    assert (ev2["principal"], ev2["covered"]) == (50_000, 1)
    assert [int(w) for w in ev2["schedule"]] == [i.word() for i in again.rows]
    bank.classify(loan, again.rows, economics.Category.NORMAL)


def test_a_whole_instalment_is_not_a_prepayment_and_a_closed_loan_has_none(cx) -> None:  # noqa: ANN001
    loan, s = _loan(cx)
    with refused("NothingPrepaid", loanId=loan.loan_id, principalRepaid=0, covered=0):
        cx.plat.prepay(loan, s)
    cx.plat.repay(loan, new_id("rp", cx.platform.address), s[0].principal + s[1].principal, 0)
    with refused("NothingPrepaid", loanId=loan.loan_id,
                 principalRepaid=s[0].principal + s[1].principal, covered=2):  # fmt: skip
        cx.plat.prepay(loan, s)
    cx.plat.repay(loan, new_id("rp", cx.platform.address), 10, 0)
    cx.plat.set_status(loan, LoanStatus.OVERDUE)
    cx.plat.set_status(loan, LoanStatus.DEFAULTED)
    with refused("WrongLoanStatus", loanId=loan.loan_id, status=LoanStatus.DEFAULTED):
        cx.plat.prepay(loan, s)
    # the terms must be the committed ones
    other = cx.loan(loan.principal, schedule_digest=loan.schedule_digest)
    with refused("TermsMismatch", loanId=other.loan_id):
        cx.plat.prepay(other, s)
