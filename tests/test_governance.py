"""Issue 14 item 2: governance by the consortium, not one key. Insider tests with real member
keys, calling the council, the timelock and the registry directly (anvil and Hardhat node)."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.domain import DEFAULT_POLICY, MemberStatus, Role
from ledger.governance import (
    Council,
    PolicyOutOfBounds,
    ProposalState,
    encode_action,
    policy_bound_violations,
)
from ledger.keys import dev_account
from tests.contract_lifecycle_support import events, new_member, reverts

# what an insider would most like: lift R1 to 2^48-1 fen and R4 to 0%
LOOSE = dataclasses.replace(DEFAULT_POLICY, consumer_cap=2**48 - 1, min_platform_share_bps=0)
TIGHT = dataclasses.replace(DEFAULT_POLICY, consumer_cap=100_000 * 100)


def council(cx, account) -> Council:
    return Council(cx.client(account))


def test_deployment_leaves_no_single_key_in_charge(cx):
    reader = cx.deployer
    assert reader.call(reader.registry, "owner") == cx.deployment.timelock
    tl = reader.timelock
    roles = {
        n: reader.call(tl, n) for n in ("PROPOSER_ROLE", "CANCELLER_ROLE", "DEFAULT_ADMIN_ROLE")
    }
    everyone = [cx.governor, cx.platform, cx.auditor, *cx.lenders]
    for name, role in roles.items():
        for a in everyone:
            assert reader.call(tl, "hasRole", role, a.address) is False, (name, a.address)
    assert reader.call(tl, "hasRole", roles["PROPOSER_ROLE"], cx.deployment.council) is True
    assert reader.call(tl, "hasRole", roles["CANCELLER_ROLE"], cx.deployment.council) is True
    assert reader.call(tl, "getMinDelay") > 0
    # the council: platform, three lenders and the auditor; a majority of five is three
    assert reader.call(reader.council, "councilSize") == 5
    assert reader.call(reader.council, "threshold") == 3
    assert reader.member(cx.governor.address)["status"] == MemberStatus.REMOVED


def test_one_member_cannot_change_policy_admit_or_unpause_alone(cx):
    """Insider with the platform's key: its own proposal is one approval of three; it can neither
    schedule nor execute it, approve twice, nor go round the council to the timelock."""
    plat = council(cx, cx.platform)
    for action, args in (
        ("policy", (TIGHT,)),
        ("admit", (dev_account("outsider", 3).address, Role.LENDER, "Shadow bank")),
        ("unpause", ()),
    ):
        pid, receipt = plat.propose(action, *args)
        (created,) = plat.events(receipt, "ProposalCreated")
        assert created["proposer"] == cx.platform.address
        st = plat.status(pid)
        assert (st.state, st.approvals, st.threshold) == (ProposalState.PENDING, 1, 3)
        reverts("AlreadyApproved", plat.approve, pid)
        err = reverts("ThresholdNotMet", plat.schedule, pid)
        assert err.values == {"id": pid, "approvals": 1, "threshold": 3}
        reverts("UnexpectedProposalState", plat.execute, pid)
        data = bytes.fromhex(encode_action(cx.plat.registry, action, *args)[2:])
        zero = b"\0" * 32
        err = reverts(
            "AccessControlUnauthorizedAccount",
            cx.plat.transact,
            cx.plat.timelock,
            "schedule",
            cx.deployment.registry,
            0,
            data,
            zero,
            zero,
            0,
        )
        assert err.values["account"] == cx.platform.address
        reverts(
            "TimelockUnexpectedOperationState",
            cx.plat.transact,
            cx.plat.timelock,
            "execute",
            cx.deployment.registry,
            0,
            data,
            zero,
            bytes.fromhex(st.salt[2:]),
        )
    # an outsider cannot even propose or approve
    outsider = new_member(cx, "outsider", 0)
    err = reverts("NotCouncilMember", council(cx, outsider).approve, pid)
    assert err.values == {"account": outsider.address}
    assert cx.plat.current_policy()[1] == 1
    assert cx.plat.member(dev_account("outsider", 3).address)["status"] == MemberStatus.NONE


def test_a_majority_waits_out_the_delay(cx):
    """Even once a majority has approved, nobody executes before the timelock's delay."""
    plat = council(cx, cx.platform)
    pid, _ = plat.propose("policy", TIGHT)
    council(cx, cx.lenders[0]).approve(pid)
    receipt = council(cx, cx.lenders[1]).approve(pid)
    (scheduled,) = plat.events(receipt, "ProposalScheduled")
    st = plat.status(pid)
    assert st.state == ProposalState.SCHEDULED
    assert scheduled["readyAt"] == st.ready_at >= cx.now() + plat.delay() - 1
    err = reverts("TimelockUnexpectedOperationState", council(cx, cx.auditor).execute, pid)
    assert err.values["operationId"] == pid
    assert cx.plat.current_policy()[1] == 1
    cx.advance(plat.delay())
    receipt = council(cx, cx.auditor).execute(pid)  # anyone executes once ready
    assert plat.events(receipt, "ProposalExecuted") == [{"id": pid, "executor": cx.auditor.address}]
    assert cx.plat.current_policy() == (dataclasses.replace(TIGHT), 2)
    assert plat.status(pid).state == ProposalState.EXECUTED


def test_a_suspended_members_approval_stops_counting(cx):
    plat = council(cx, cx.platform)
    pid, _ = plat.propose("policy", TIGHT)
    council(cx, cx.lenders[0]).approve(pid)
    assert plat.status(pid).approvals == 2
    cx.gov.suspend_member(cx.lenders[0].address)
    st = plat.status(pid)
    assert (st.approvals, st.threshold) == (1, 3)  # four on the council now: three needed
    reverts("NotCouncilMember", council(cx, cx.lenders[0]).approve, pid)
    council(cx, cx.lenders[1]).approve(pid)
    assert plat.status(pid).state == ProposalState.PENDING
    council(cx, cx.lenders[2]).approve(pid)
    assert plat.status(pid).state == ProposalState.SCHEDULED


def test_only_the_proposer_cancels_a_pending_proposal_and_not_once_scheduled(cx):
    plat = council(cx, cx.platform)
    pid, _ = plat.propose("policy", TIGHT)
    err = reverts("NotProposer", council(cx, cx.lenders[0]).cancel, pid)
    assert err.values == {"id": pid, "account": cx.lenders[0].address}
    receipt = plat.cancel(pid)
    assert plat.events(receipt, "ProposalCancelled") == [{"id": pid, "by": cx.platform.address}]
    reverts("UnexpectedProposalState", council(cx, cx.lenders[0]).approve, pid)
    # once a majority has scheduled it, the proposer alone cannot withdraw it
    pid2, _ = plat.propose("policy", TIGHT)
    council(cx, cx.lenders[0]).approve(pid2)
    council(cx, cx.lenders[1]).approve(pid2)
    reverts("UnexpectedProposalState", plat.cancel, pid2)
    # the council can, through the timelock
    cx.council_call(cx.deployment.council, cx.plat.council.encode_abi("cancel", args=[pid2]))
    assert plat.status(pid2).state == ProposalState.CANCELLED
    assert cx.plat.current_policy()[1] == 1


def test_a_vote_cannot_cross_a_hard_bound(cx):
    """A unanimous council still cannot lift R1 to 2^48-1 fen or R4 to 0%: refused at execution
    by the contract, and before any transaction by the Python mirror."""
    assert [v[0] for v in policy_bound_violations(LOOSE)] == ["consumerCap", "minPlatformShareBps"]
    with pytest.raises(PolicyOutOfBounds):
        council(cx, cx.platform).propose("policy", LOOSE)
    err = reverts("PolicyOutOfBounds", cx.gov.set_policy, LOOSE)
    assert err.values == {"field": "consumerCap", "value": 2**48 - 1, "bound": 200_000 * 100}
    assert cx.plat.current_policy()[1] == 1


def test_a_single_member_pulls_the_brake_and_only_the_council_releases_it(cx):
    receipt = cx.client(cx.lenders[1]).pause()
    assert events(cx.plat, "Paused", receipt) == [{"account": cx.lenders[1].address}]
    reverts("OwnableUnauthorizedAccount", cx.client(cx.lenders[1]).unpause)
    cx.gov.unpause()
    assert cx.plat.paused() is False


def test_the_council_can_raise_its_threshold_but_never_below_a_majority(cx):
    reverts("OnlyTimelock", cx.plat.transact, cx.plat.council, "setMinApprovals", 1)
    cx.council_call(cx.deployment.council, cx.plat.council.encode_abi("setMinApprovals", args=[1]))
    assert cx.plat.call(cx.plat.council, "threshold") == 3  # a majority is the floor
    cx.council_call(cx.deployment.council, cx.plat.council.encode_abi("setMinApprovals", args=[4]))
    assert cx.plat.call(cx.plat.council, "threshold") == 4


def test_the_audit_replays_the_council_and_flags_a_change_outside_the_timelock(cx):
    """A policy change that did not go through the council (here: the timelock's address
    impersonated on the dev chain, as a rogue chain operator could) is flagged."""
    from ledger.audit import run_audit

    cx.gov.set_policy(TIGHT)
    report = run_audit(cx.rpc_url, cx.deployment)
    assert report.ok, report.violations
    # the council, its timelock and LoanServicing recompiled too
    assert report.checks["bytecode"].items == 5
    assert report.checks["governance"].items == 1  # one proposal, executed

    w3 = cx.deployer.w3
    dev = "hardhat_" if "hardhat" in w3.client_version.lower() else "anvil_"
    tl = cx.deployment.timelock
    w3.provider.make_request(dev + "setBalance", [tl, hex(10**20)])
    w3.provider.make_request(dev + "impersonateAccount", [tl])
    try:
        data = encode_action(cx.plat.registry, "policy", DEFAULT_POLICY)
        tx = w3.eth.send_transaction({"from": tl, "to": cx.deployment.registry, "data": data})
        assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    finally:
        w3.provider.make_request(dev + "stopImpersonatingAccount", [tl])
    report = run_audit(cx.rpc_url, cx.deployment)
    codes = [v.code for v in report.violations if v.check == "governance"]
    assert codes == ["GovernedChangeOutsideTimelock"]
