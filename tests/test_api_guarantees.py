"""Guarantees through the nodes, over real HTTP on real anvil: a guarantor the council admitted
runs its own node (its own DEV-ONLY key), offers cover there and records its compensatory
payment; the platform's node accepts the offer and records recoveries; every party reads the
guarantee and the guarantor its statement. Each refusal is a 4xx problem naming the rule with
nothing sent, and the same is refused on chain when an insider sends it directly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.chain.deployment import fund
from ledger.chain.errors import ContractRevert
from ledger.domain import CoLoan, Role
from tests.api_support import (
    Consortium,
    account,
    address,
    loan_body,
    problem,
    running_consortium,
    start_node,
)

P, A, B, C, G = "platform", "bank-a", "bank-b", "bank-c", "guarantor"
NET_ASSETS = 100_000  # fen: x10 (R10) covers 1,000,000 fen
DAY = 86_400


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    off = {"dpd_keeper_s": 0}  # statuses move by hand here
    with running_consortium(tmp_path_factory.mktemp("guarantees"), {"platform": off}) as c:
        g = account(G)
        fund(c.chain.url, [g.address])
        c.cx.gov.admit_member(g.address, Role.GUARANTOR, "Guarantor (dev)")
        c.cx.client(g).attest_capital(NET_ASSETS, 0, c.cx.now() + 30 * DAY)
        start_node(c, G, "guarantor")
        yield c


def _post(net: Consortium, who: str, node: str, path: str, body: dict | None = None):  # noqa: ANN202
    r = net.session(who, node).post(path, body or {})
    return r.status_code, (problem(r) if r.status_code >= 400 else r.json()), r


def _terms(net: Consortium, lid: str) -> CoLoan:
    """The loan's terms as the chain recorded them (for an insider's direct call)."""
    (e,) = net.cx.plat.events("LoanOriginated", from_block=0, loanId=bytes.fromhex(lid[2:]))
    return CoLoan.from_abi(e.args["loan"])


def _loan(net: Consortium, loan_id: str, shares: dict[str, int]) -> str:
    status, out, _r = _post(net, P, P, "/v1/loans", loan_body(loan_id, shares))
    assert status == 201, out
    return out["loan_id"]


def test_a_guarantee_offered_accepted_paid_out_and_recovered_through_the_nodes(net) -> None:  # noqa: ANN001
    cx, g = net.cx, address(G)
    lid = _loan(net, "gt-1", {P: 400_000, A: 300_000, B: 300_000})
    raw = bytes.fromhex(lid[2:])
    # too much for R10 on another, bigger loan: refused at the guarantor's node, nothing sent
    big = _loan(net, "gt-big", {P: 800_000, A: 600_000, B: 600_000})
    status, p, _r = _post(net, G, G, f"/v1/loans/{big}/guarantee-offer", {"cover_bps": 9_000})
    assert status == 409 and p["code"] == "GuaranteeCapExceeded" and p["rule"] == "R10", p
    assert (p["requested"], p["cap"]) == (1_080_000, 1_000_000)
    assert p["errors"][0]["field"] == "cover_bps"
    assert cx.plat.offer_of(bytes.fromhex(big[2:]), g) == 0
    # the guarantor offers 80% of the bank tranches; only a guarantor's own node takes it
    r = net.session(A, A).post(f"/v1/loans/{lid}/guarantee-offer", {"cover_bps": 8_000})
    assert r.status_code == 404  # a bank node has no such route
    status, out, _r = _post(net, G, G, f"/v1/loans/{lid}/guarantee-offer", {"cover_bps": 8_000})
    assert status == 201 and out["amount"] == 480_000, out
    # the platform accepts exactly the offer
    path = f"/v1/loans/{lid}/guarantee"
    status, p, _r = _post(net, P, P, path, {"guarantor": g, "cover_bps": 9_000})
    assert status == 409 and p["code"] == "GuaranteeOfferMismatch" and p["offered"] == 8_000, p
    status, out, _r = _post(net, P, P, path, {"guarantor": g, "cover_bps": 8_000})
    assert status == 201 and out["amount"] == 480_000, out
    status, p, _r = _post(net, P, P, path, {"guarantor": g, "cover_bps": 8_000})
    assert status == 409 and p["code"] == "GuaranteeExists", p
    # every party reads it; a bank without a tranche gets the unknown loan's 404
    for who, node in ((A, A), (G, G), (P, P), ("auditor", "auditor")):
        r = net.session(who, node).get(f"/v1/loans/{lid}/guarantee")
        assert r.status_code == 200, r.text
        view = r.json()
        assert (view["guarantor"], view["amount"], view["settled"]) == (g, 480_000, False), node
    assert net.session(C, C).get(f"/v1/loans/{lid}/guarantee").status_code == 404
    # compensation needs a defaulted loan: refused before the chain, and on it
    comp = f"/v1/loans/{lid}/compensation"
    status, p, _r = _post(net, G, G, comp)
    assert status == 409 and p["code"] == "WrongLoanStatus", p
    with pytest.raises(ContractRevert) as direct:
        cx.client(account(G)).compensate(_terms(net, lid))
    assert direct.value.code == "WrongLoanStatus"
    for to in ("overdue", "defaulted"):
        status, _o, r = _post(net, P, P, f"/v1/loans/{lid}/status", {"status": to})
        assert status == 200, r.text
    status, out, _r = _post(net, G, G, comp)
    assert status == 201 and out["total"] == 480_000, out
    paid = {x["lender"]: x["amount"] for x in out["payouts"]}
    assert paid == {address(P): 0, address(A): 240_000, address(B): 240_000}
    status, p, _r = _post(net, G, G, comp)
    assert status == 409 and p["code"] == "NoGuarantee", p
    # the guarantor's statement: itself and the auditor only
    st = net.session(G, G).get(f"/v1/guarantors/{g}/statement").json()
    assert st["paid_out"] == 480_000 and st["outstanding"] == 0
    assert [x["state"] for x in st["guarantees"]] == ["compensated"]
    assert net.session(A, A).get(f"/v1/guarantors/{g}/statement").status_code == 403
    # recoveries on the written-off loan, through the platform's node
    status, _o, r = _post(net, P, P, f"/v1/loans/{lid}/status", {"status": "written_off"})
    assert status == 200, r.text
    rec = f"/v1/loans/{lid}/recoveries"
    body = {"recovery_id": "gt-1-rc1", "amount": 12_345}
    status, out, _r = _post(net, P, P, rec, body)
    assert status == 201 and sum(x["amount"] for x in out["split"]) == 12_345, out
    again = net.session(P, P).post(rec, body)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    status, p, _r = _post(net, P, P, rec, {"recovery_id": "gt-1-rc2", "amount": 1_000_000})
    assert status == 409 and p["code"] == "RecoveryExceedsPrincipal", p
    assert p["errors"][0]["field"] == "amount" and p["recovered"] == 12_345
    assert cx.plat.recovered(raw) == 12_345


def test_a_recovery_on_an_open_loan_and_an_offer_on_stale_net_assets_are_refused(net) -> None:  # noqa: ANN001
    lid = _loan(net, "gt-2", {P: 400_000, A: 300_000, B: 300_000})
    status, p, _r = _post(net, P, P, f"/v1/loans/{lid}/recoveries",
                          {"recovery_id": "gt-2-rc1", "amount": 1})  # fmt: skip
    assert status == 409 and p["code"] == "WrongLoanStatus", p
    # a bank cannot accept a guarantee on the platform's behalf, on chain either
    with pytest.raises(ContractRevert) as direct:
        net.cx.client(account(A)).accept_guarantee(_terms(net, lid), address(G), 5_000)
    assert direct.value.code == "NotLoanPlatform"
    net.cx.advance(31 * DAY)  # the net assets attested for 30 days stop counting
    status, p, _r = _post(net, G, G, f"/v1/loans/{lid}/guarantee-offer", {"cover_bps": 5_000})
    assert status == 409 and p["code"] == "StaleNetAssets" and p["rule"] == "R10", p
    assert p["attestedUntil"] < p["nowTs"]


def test_net_assets_are_attested_through_the_guarantors_own_node_only(net) -> None:  # noqa: ANN001
    """The guarantor's node attests its net assets (R10's base) with its own key: a period past
    the policy's maximum is refused before the chain and on it; a bank can neither reach the
    route on its node nor use the guarantor's; a payout on a loan it does not guarantee is
    refused at its node and on chain."""
    cx, g = net.cx, address(G)
    path = "/v1/attestations/net-assets"
    now, max_age = cx.now(), cx.deployer.current_policy()[0].max_attestation_age
    before = cx.deployer.member(g)
    too_long = {"net_assets": 10**9, "valid_until": now + max_age + DAY}
    status, p, _r = _post(net, G, G, path, too_long)
    assert status == 409 and p["code"] == "InvalidAttestation", p
    assert p["errors"][0]["field"] == "valid_until" and p["maxAge"] == max_age
    assert cx.deployer.member(g) == before  # nothing sent
    with pytest.raises(ContractRevert) as direct:
        cx.client(account(G)).attest_capital(10**9, 0, now + max_age + DAY)
    assert direct.value.code == "InvalidAttestation"
    # only the guarantor, on its own node
    assert (
        net.session(A, A).post(path, {"net_assets": 1, "valid_until": now + DAY}).status_code == 404
    )
    body = {"net_assets": 10**9, "valid_until": now + 30 * DAY}
    assert net.session(A, G).post(path, body).status_code == 403
    assert cx.deployer.member(g) == before
    status, out, _r = _post(net, G, G, path, body)
    assert status == 201 and out["cap"] == 10**10 and out["guarantor"] == g, out
    m = cx.deployer.member(g)
    assert (m["tier1_capital"], m["attested_until"]) == (10**9, now + 30 * DAY)
    # fresh net assets again: the stale-net-assets refusal of the test before is lifted
    lid = _loan(net, "gt-3", {P: 400_000, A: 300_000, B: 300_000})
    status, out, _r = _post(net, G, G, f"/v1/loans/{lid}/guarantee-offer", {"cover_bps": 5_000})
    assert status == 201 and out["amount"] == 300_000, out
    # a defaulted loan nobody guarantees: no payout recorded through the node, nor directly
    bare = _loan(net, "gt-4", {P: 400_000, A: 300_000, B: 300_000})
    for to in ("overdue", "defaulted"):
        status, _o, r = _post(net, P, P, f"/v1/loans/{bare}/status", {"status": to})
        assert status == 200, r.text
    status, p, _r = _post(net, G, G, f"/v1/loans/{bare}/compensation")
    assert status == 409 and p["code"] == "NoGuarantee" and p["account"] == g, p
    with pytest.raises(ContractRevert) as direct:
        cx.client(account(G)).compensate(_terms(net, bare))
    assert direct.value.code == "NoGuarantee"
    assert not any(cx.plat.compensation_of(bytes.fromhex(bare[2:])))


def test_a_lenders_capital_attestation_is_pre_checked_at_its_own_node(net) -> None:  # noqa: ANN001
    """A bank attests its tier-1 capital and loan balance (R5/R6 bases) through its own node with
    the same pre-check as a guarantor's net assets: a period the registry would refuse (already
    past, or beyond the policy's maximum age) is a 409 `InvalidAttestation` naming `valid_until`
    with the registry's numbers, and nothing is sent; the registry refuses the same call made
    directly; a period within the rule lands."""
    cx, c = net.cx, address(C)
    path = "/v1/attestations/capital"
    now, max_age = cx.now(), cx.deployer.current_policy()[0].max_attestation_age
    before = cx.deployer.member(c)
    sent = cx.deployer.w3.eth.get_transaction_count(c)
    figures = {"tier1_capital": before["tier1_capital"],
               "total_loan_balance": before["total_loan_balance"]}  # fmt: skip
    for valid_until in (now - 1, now + max_age + DAY):
        status, p, _r = _post(net, C, C, path, {**figures, "valid_until": valid_until})
        assert status == 409 and p["code"] == "InvalidAttestation", p
        assert p["errors"][0]["field"] == "valid_until", p
        assert (p["validUntil"], p["maxAge"]) == (valid_until, max_age), p
    assert cx.deployer.member(c) == before
    assert cx.deployer.w3.eth.get_transaction_count(c) == sent  # nothing sent
    with pytest.raises(ContractRevert) as direct:
        cx.client(account(C)).attest_capital(
            figures["tier1_capital"], figures["total_loan_balance"], now + max_age + DAY
        )
    assert direct.value.code == "InvalidAttestation"
    status, out, _r = _post(net, C, C, path, {**figures, "valid_until": now + 30 * DAY})
    assert status == 201 and out["lender"] == c and out["block_number"] > 0, out
    assert cx.deployer.member(c)["attested_until"] == now + 30 * DAY
