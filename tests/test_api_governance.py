"""Issue 14 item 2 through the nodes: each member governs on its own node with its own key, and
no single member (nor a node acting for it) can change policy, unpause or skip the delay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api_support import Consortium, problem, running_consortium

P = "/v1/governance/proposals"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    with running_consortium(tmp_path_factory.mktemp("gov")) as c:
        yield c


def own(net: Consortium, member: str):
    return net.session(member, member)


def test_a_policy_change_needs_a_majority_of_nodes_and_the_delay(net: Consortium) -> None:
    r = own(net, "platform").post(P, {"action": "policy", "policy": {"consumer_cap": 10_000_000}})
    assert r.status_code == 201, r.text
    st = r.json()
    assert (st["state"], st["approvals"], st["threshold"]) == ("pending", 1, 3)
    pid = st["id"]
    # the proposer alone: no second approval, no execution
    r = own(net, "platform").post(f"{P}/{pid}/approve")
    assert r.status_code == 409 and problem(r)["code"] == "AlreadyApproved"
    r = own(net, "platform").post(f"{P}/{pid}/execute")
    assert r.status_code == 409 and problem(r)["code"] == "UnexpectedProposalState"
    # a node signs for its own member only: Bank A cannot make the platform's node approve
    r = net.session("bank-a", "platform").post(f"{P}/{pid}/approve")
    assert r.status_code == 403 and problem(r)["code"] == "NotThisNodesMember"
    assert own(net, "bank-a").post(f"{P}/{pid}/approve").status_code == 200
    r = own(net, "bank-b").post(f"{P}/{pid}/approve")
    assert r.status_code == 200 and r.json()["state"] == "scheduled"
    # a majority still waits out the timelock
    r = own(net, "auditor").post(f"{P}/{pid}/execute")
    assert r.status_code == 409 and problem(r)["code"] == "TimelockUnexpectedOperationState"
    assert net.cx.plat.current_policy()[1] == 1
    net.cx.advance(3)
    r = own(net, "auditor").post(f"{P}/{pid}/execute")
    assert r.status_code == 200 and r.json()["state"] == "executed", r.text
    policy, version = net.cx.plat.current_policy()
    assert (policy.consumer_cap, version) == (10_000_000, 2)
    r = own(net, "bank-c").get(f"{P}/{pid}")
    assert r.status_code == 200 and r.json()["approvals"] == 3


def test_a_hard_bound_is_refused_before_any_vote(net: Consortium) -> None:
    r = own(net, "bank-a").post(P, {"action": "policy", "policy": {"min_platform_share_bps": 0}})
    body = problem(r)
    assert (r.status_code, body["code"]) == (400, "PolicyOutOfBounds")
    assert (body["field"], body["value"], body["bound"]) == ("minPlatformShareBps", 0, 3_000)


def test_one_member_pauses_and_cannot_unpause_alone(net: Consortium) -> None:
    assert own(net, "bank-c").post("/v1/governance/pause").status_code == 204
    assert net.cx.plat.paused() is True
    r = own(net, "bank-c").post(P, {"action": "unpause"})
    assert r.status_code == 201 and r.json()["state"] == "pending"
    r = own(net, "bank-c").post(f"{P}/{r.json()['id']}/execute")
    assert r.status_code == 409 and problem(r)["code"] == "UnexpectedProposalState"
    assert net.cx.plat.paused() is True
    net.cx.gov.unpause()
    assert net.cx.plat.paused() is False


def test_an_unknown_proposal_is_a_404(net: Consortium) -> None:
    r = own(net, "auditor").get(f"{P}/0x{'00' * 32}")
    assert r.status_code == 404 and problem(r)["code"] == "UnknownProposal"
