"""The global pause and access control on the real contracts (anvil and Hardhat node).

How refusals are checked: tests/contract_lifecycle_support.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from ledger.domain import LoanStatus, MemberStatus, Policy, Role, sort_tranches
from ledger.keys import dev_account
from ledger.localnet.consortium import new_id
from tests.conftest import advance_time
from tests.contract_lifecycle_support import events, grant, new_member, originate, reverts

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
    reverts("LedgerPaused", cx.plat.repay, loan, new_id("rep", cx.platform.address), 1)
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
    cx.plat.repay(loan, new_id("rep", cx.platform.address), 1)
    cx.plat.set_status(loan, LoanStatus.OVERDUE)
    cx.plat.close_line(line2.line_id)
    cx.client(cx.auditor).expire_line(line.line_id)
    assert cx.plat.loan_state(loan.loan_id)[1:] == (99_999, LoanStatus.OVERDUE)
    assert cx.plat.loan_state(fresh.loan_id)[2] == LoanStatus.ACTIVE


def test_any_single_member_pauses_only_the_council_unpauses(cx):
    """The emergency brake: one member pulls it at once (Paused names who); none lifts it alone."""
    outsider = new_member(cx, "outsider", 0)
    for who in (outsider, cx.governor):  # not a member; the deployer, removed since hand-over
        err = reverts("NotActiveMember", cx.client(who).pause)
        assert err.values == {"account": who.address}
    for who in (cx.platform, cx.lenders[0], cx.auditor):
        receipt = cx.client(who).pause()
        assert events(cx.plat, "Paused", receipt) == [{"account": who.address}]
        for single in (cx.platform, cx.lenders[0], cx.lenders[1], cx.auditor, cx.governor):
            err = reverts("OwnableUnauthorizedAccount", cx.client(single).unpause)
            assert err.values == {"account": single.address}
        assert cx.plat.call(cx.plat.registry, "paused") is True
        cx.gov.unpause()  # the council, through its timelock
        assert cx.plat.call(cx.plat.registry, "paused") is False
    # a suspended member can no longer pull the brake
    cx.gov.suspend_member(cx.lenders[2].address)
    reverts("NotActiveMember", cx.client(cx.lenders[2]).pause)


# ------------------------------------------------------------------ access control


REGISTRY_GOVERNOR_CALLS = {
    "admitMember": lambda c, cx: c.admit_member(
        dev_account("outsider", 7).address, Role.LENDER, "x"
    ),
    "suspendMember": lambda c, cx: c.suspend_member(cx.lenders[1].address),
    "reinstateMember": lambda c, cx: c.reinstate_member(cx.lenders[2].address),
    "removeMember": lambda c, cx: c.remove_member(cx.lenders[1].address),
    "setFrozen": lambda c, cx: c.set_frozen(cx.lenders[1].address, True),
    "unpause": lambda c, cx: c.unpause(),
    "setPolicy": lambda c, cx: c.set_policy(Policy(consumer_cap=1)),
    "transferOwnership": lambda c, cx: c.transfer_governor(dev_account("outsider", 8).address),
}


@pytest.mark.parametrize("fn", sorted(REGISTRY_GOVERNOR_CALLS))
def test_registry_writes_are_council_only(cx, fn):
    """No single key (a member, an outsider, the deployer) calls a governed function directly."""
    call = REGISTRY_GOVERNOR_CALLS[fn]
    cx.gov.suspend_member(cx.lenders[2].address)  # so reinstateMember would be legal
    if fn == "unpause":
        cx.gov.pause()  # so unpause would be legal
    outsider = new_member(cx, "outsider", 0)
    for who in (cx.platform, cx.lenders[0], cx.auditor, outsider, cx.governor):
        err = reverts("OwnableUnauthorizedAccount", call, cx.client(who), cx)
        assert err.values == {"account": who.address}
    # nothing changed
    assert cx.gov.member(cx.lenders[1].address)["status"] == MemberStatus.ACTIVE
    assert cx.gov.member(cx.lenders[1].address)["frozen"] is False
    assert cx.gov.current_policy()[1] == 1
    # and the council may
    call(cx.gov, cx)


def test_governor_hand_over_takes_two_steps(cx):
    council = cx.gov
    timelock = cx.deployment.timelock
    new_gov = new_member(cx, "governor", 1)
    new = cx.client(new_gov)
    receipt = council.transfer_governor(new_gov.address)
    assert receipt.status == 1
    assert council.call(council.registry, "pendingOwner") == new_gov.address
    # before acceptance the council still rules and the nominee does not
    assert council.call(council.registry, "owner") == timelock
    reverts("OwnableUnauthorizedAccount", new.set_frozen, cx.lenders[0].address, True)
    council.set_frozen(cx.lenders[0].address, True)
    council.set_frozen(cx.lenders[0].address, False)
    # only the nominee can accept
    err = reverts("OwnableUnauthorizedAccount", cx.plat.accept_governor)
    assert err.values == {"account": cx.platform.address}

    receipt = new.accept_governor()
    changed = [e.args for e in council.receipt_events(receipt, "GovernorChanged")]
    assert [(e["previousGovernor"], e["newGovernor"]) for e in changed] == [
        (timelock, new_gov.address)
    ]
    assert council.call(council.registry, "owner") == new_gov.address
    err = reverts("OwnableUnauthorizedAccount", council.set_frozen, cx.lenders[0].address, True)
    assert err.values == {"account": timelock}
    new.set_frozen(cx.lenders[0].address, True)
    assert cx.gov.member(cx.lenders[0].address)["frozen"] is True
    rec_new, rec_old = council.member(new_gov.address), council.member(timelock)
    assert (rec_new["role"], rec_new["status"]) == (Role.GOVERNOR, MemberStatus.ACTIVE)
    assert (rec_old["role"], rec_old["status"]) == (Role.GOVERNOR, MemberStatus.REMOVED)
    # the governor record cannot be touched through membership calls
    reverts("GovernorRecordImmutable", new.suspend_member, new_gov.address)


def test_hand_over_to_an_existing_member_is_refused_at_acceptance(cx):
    cx.gov.transfer_governor(cx.platform.address)
    err = reverts("AlreadyMember", cx.plat.accept_governor)
    assert err.values == {"account": cx.platform.address}
    assert cx.gov.call(cx.gov.registry, "owner") == cx.deployment.timelock


def test_renounce_ownership_is_disabled(cx):
    reverts("GovernorRequired", cx.gov.transact, cx.gov.registry, "renounceOwnership")
    reverts("GovernorRequired", cx.plat.transact, cx.plat.registry, "renounceOwnership")
    assert cx.gov.call(cx.gov.registry, "owner") == cx.deployment.timelock


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
    for who in (cx.lenders[0], cx.auditor):
        c = cx.client(who)
        err = reverts("WrongRole", c.repay, loan, new_id("rep", who.address), 1)
        assert err.values["account"] == who.address
        reverts("WrongRole", c.set_status, loan, LoanStatus.OVERDUE)
    # another platform is not the loan's servicer (servicing: test_contract_servicing.py)
    c = cx.client(plat2)
    err = reverts("NotServicer", c.repay, loan, new_id("rep", plat2.address), 1)
    assert err.values == {"account": plat2.address, "servicer": cx.platform.address}
    reverts("NotServicer", c.set_status, loan, LoanStatus.OVERDUE)
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
    err = reverts("NotActiveMember", cx.plat.repay, loan, new_id("rep", cx.platform.address), 1)
    assert err.values == {"account": cx.platform.address}
    reverts("NotActiveMember", cx.plat.set_status, loan, LoanStatus.OVERDUE)
    fresh = cx.loan(1_000)
    reverts("NotActiveMember", cx.plat.originate, fresh, cx.sign(fresh))
    cx.gov.reinstate_member(cx.platform.address)
    cx.gov.set_frozen(cx.platform.address, True)
    reverts("MemberIsFrozen", cx.plat.repay, loan, new_id("rep", cx.platform.address), 1)
    cx.gov.set_frozen(cx.platform.address, False)
    cx.plat.repay(loan, new_id("rep", cx.platform.address), 1)
    assert cx.plat.loan_state(loan.loan_id)[1:] == (99_999, LoanStatus.ACTIVE)


def test_sort_tranches_is_what_the_contract_expects(cx):
    # guard for the helpers above: tranches out of address order are refused
    loan = cx.loan(1_000)
    flipped = dataclasses.replace(
        loan, tranches=tuple(reversed(sort_tranches(list(loan.tranches))))
    )
    reverts("TranchesNotSorted", cx.plat.originate, flipped, cx.sign(flipped))
