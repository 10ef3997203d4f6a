"""Schedules and the all-in APR through the nodes, over real HTTP on real anvil: the platform
node builds the schedule, computes the IRR APR and commits the schedule's digest in the signed
terms; each bank node re-checks both before it signs; GET /v1/loans/{id} shows the instalments
due, paid and overdue. Bad input is a 4xx problem naming the field and rule, nothing sent."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ledger import apr, economics, prepayment
from ledger import schedule as sched
from ledger.chain.servicing import Partnership
from ledger.records import loan_terms
from tests.api_support import Consortium, address, loan_body, problem, running_consortium

P, A, B = "platform", "bank-a", "bank-b"
SHARES = {P: 400_000, A: 300_000, B: 300_000}
TWELVE = {"kind": "equal_instalment", "months": 12, "rate_bps": 1_200}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    keeper = {"dpd_keeper_s": 0.5}
    with running_consortium(tmp_path_factory.mktemp("economics"), {"platform": keeper}) as c:
        yield c


def post(net: Consortium, path: str, body: dict) -> tuple[int, dict]:
    r = net.session(P, "platform").post(path, body)
    return r.status_code, (problem(r) if r.status_code >= 400 else r.json())


def _body(loan_id: str, schedule: dict, **extra: object) -> dict:
    body = loan_body(loan_id, SHARES, schedule=schedule, **extra)
    body.pop("apr_bps")
    body.update(extra)
    return body


def _on_chain(net: Consortium, loan_id: str) -> bool:
    from api.schemas.common import chain_id_of

    return net.cx.plat.loan_state(chain_id_of(loan_id, address(P)))[2] != 0


def test_a_loan_with_a_schedule_is_signed_with_its_apr_and_digest(net: Consortium) -> None:
    status, out = post(net, "/v1/loans", _body("sch-1", TWELVE))
    assert status == 201, out
    for node in ("platform", "bank-a", "bank-b"):
        who = P if node == "platform" else node
        view = net.session(who, node).get(f"/v1/loans/{out['loan_id']}").json()
        assert view["apr_bps"] == 1_200
        s = view["schedule"]
        rows = sched.from_json(s["instalments"])
        assert "0x" + sched.digest(rows).hex() == view["schedule_digest"]
        assert sum(r.principal for r in rows) == 1_000_000 and len(rows) == 12
        assert s["all_in_apr_bps"] == apr.all_in_apr_bps(rows, 1_000_000, s["start"]) == 1_200
        assert [i["state"] for i in s["instalments"][:2]] == ["due", "upcoming"]
        assert (s["days_past_due"], s["floor_category"]) == (0, "normal")
    # the first instalment repaid: it shows as paid
    first = s["instalments"][0]
    status, _ = post(net, f"/v1/loans/{out['loan_id']}/repayments",
                     {"repayment_id": "sch-1-r1", "principal": first["principal"],
                      "interest": first["interest"]})  # fmt: skip
    assert status == 201
    view = net.session(P, "platform").get(f"/v1/loans/{out['loan_id']}").json()
    assert [i["state"] for i in view["schedule"]["instalments"][:2]] == ["paid", "due"]


def test_an_apr_that_does_not_match_the_schedule_is_refused_before_the_chain(
    net: Consortium,
) -> None:
    status, p = post(net, "/v1/loans", _body("sch-2", TWELVE, apr_bps=1_100))
    assert status == 422 and p["code"] == "AprMismatch", p
    assert p["errors"][0]["field"] == "apr_bps" and (p["declared"], p["computed"]) == (1_100, 1_200)
    assert not _on_chain(net, "sch-2")


def test_a_schedule_whose_irr_apr_is_over_the_cap_is_refused(net: Consortium) -> None:
    """2.2% a month: a simple rate of 14.86% but an IRR APR of 26.40%, over R9's 24%."""
    status, p = post(net, "/v1/loans", _body("sch-3", {**TWELVE, "rate_bps": 2_640}))
    assert status in (409, 422) and p["code"] == "AllInAprTooHigh", p
    assert (p["aprBps"], p["capBps"]) == (2_640, 2_400), p
    assert not _on_chain(net, "sch-3")


def test_instalments_that_do_not_sum_to_the_principal_are_refused(net: Consortium) -> None:
    now = net.cx.now()
    rows = [{"due": now + 30 * 86_400 * (k + 1), "principal": 100_000, "interest": 1_000}
            for k in range(9)]  # fmt: skip
    status, p = post(net, "/v1/loans", _body("sch-4", {"instalments": rows}))
    assert status == 422 and p["code"] == "InvalidSchedule", p
    assert p["errors"][0] == {"field": "schedule.principal", "rule": "sums_to_principal",
                              "message": p["detail"]}  # fmt: skip
    assert not _on_chain(net, "sch-4")


def test_a_term_that_contradicts_the_schedule_is_refused_before_the_chain(net: Consortium) -> None:
    """The chain takes the start as last due - term_days days, so the node derives term_days
    from the schedule and refuses a different one (a short term would also dodge R7)."""
    status, p = post(net, "/v1/loans", _body("sch-t1", TWELVE, term_days=180))
    assert status == 422 and p["code"] == "TermMismatch", p
    assert p["errors"][0]["field"] == "term_days" and p["errors"][0]["rule"] == "matches_schedule"
    assert p["declared"] == 180 and p["computed"] in (365, 366)
    assert not _on_chain(net, "sch-t1")
    now = net.cx.now()
    rows = [{"due": now + 30 * 86_400 + 1, "principal": 1_000_000, "interest": 1_000}]
    status, p = post(net, "/v1/loans", _body("sch-t2", {"start": now, "instalments": rows}))
    assert status == 422 and p["code"] == "InvalidSchedule", p
    assert p["errors"][0]["field"] == "schedule.start", p
    assert p["errors"][0]["rule"] == "whole_days_to_last_due"
    assert not _on_chain(net, "sch-t2")
    # without term_days the node derives it, and the chain agrees with the loan it records
    status, out = post(net, "/v1/loans", _body("sch-t3", {"start": now, "instalments": [
        {**rows[0], "due": now + 30 * 86_400}]}))  # fmt: skip
    assert status == 201, out
    view = net.session(P, "platform").get(f"/v1/loans/{out['loan_id']}").json()
    assert view["term_days"] == 30 and view["schedule"]["start"] == now


def test_a_batch_refuses_just_the_loan_whose_term_contradicts_its_schedule(
    net: Consortium,
) -> None:
    r = net.session(P, "platform").post(
        "/v1/loans/batch",
        {"loans": [_body("sch-b1", TWELVE), _body("sch-b2", TWELVE, term_days=200)]},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["accepted"], out["rejected"]) == (1, 1), out
    bad = next(x for x in out["results"] if x["status"] != 201)
    assert bad["status"] == 422 and bad["problem"]["code"] == "TermMismatch"
    assert bad["problem"]["errors"][0]["field"] == "term_days"
    assert _on_chain(net, "sch-b1") and not _on_chain(net, "sch-b2")


def test_a_bank_node_checks_the_schedule_it_is_asked_to_sign(net: Consortium) -> None:
    """An insider platform sends a bank node terms whose schedule is missing, does not hash to the
    signed digest, or whose declared APR understates the schedule's IRR: each refused."""
    cx = net.cx
    start = cx.now()
    rows = sched.build("equal_instalment", 1_000_000, 12, 1_800, start)
    good = {"start": start, "instalments": sched.to_json(rows)}
    loan = cx.loan(1_000_000, [(cx.platform, 400_000), (cx.lenders[0], 600_000)],
                   schedule=rows, start=start)  # fmt: skip
    assert loan.apr_bps == 1_800
    s = net.session(P, A)
    r = s.post("/v1/cosign", {"kind": "loan", "terms": loan_terms(loan)})
    assert r.status_code == 409 and problem(r)["code"] == "ScheduleMissing"
    other = {"start": good["start"], "instalments": good["instalments"][:-1]}
    r = s.post("/v1/cosign", {"kind": "loan", "terms": loan_terms(loan), "schedule": other})
    assert r.status_code == 409 and problem(r)["code"] == "ScheduleMismatch"
    assert problem(r)["errors"][0] == {"field": "schedule", "rule": "hashes_to_digest",
                                       "message": problem(r)["detail"]}  # fmt: skip
    cheap = cx.loan(1_000_000, [(cx.platform, 400_000), (cx.lenders[0], 600_000)],
                    apr_bps=1_500, schedule=rows, start=start)  # fmt: skip
    r = s.post("/v1/cosign", {"kind": "loan", "terms": loan_terms(cheap), "schedule": good})
    assert r.status_code == 409 and problem(r)["code"] == "AprMismatch"
    assert (problem(r)["declared"], problem(r)["computed"]) == (1_500, 1_800)
    # a term that moves the start the chain judges the APR from (last due - term_days days)
    short = cx.loan(1_000_000, [(cx.platform, 400_000), (cx.lenders[0], 600_000)],
                    term_days=180, schedule=rows, start=start)  # fmt: skip
    r = s.post("/v1/cosign", {"kind": "loan", "terms": loan_terms(short), "schedule": good})
    assert r.status_code == 409 and problem(r)["code"] == "TermMismatch", r.text
    assert problem(r)["errors"][0]["field"] == "term_days"
    ok = s.post("/v1/cosign", {"kind": "loan", "terms": loan_terms(loan), "schedule": good})
    assert ok.status_code == 200 and ok.json()["signer"] == address(A)


def _wait_status(net: Consortium, loan_id: str, want: str) -> dict:
    """The platform node's keeper acts on its own tick: poll (bounded) until it has."""
    for _ in range(120):
        view = net.session(P, "platform").get(f"/v1/loans/{loan_id}").json()
        if view["status"] == want:
            return view
        time.sleep(0.25)
    raise AssertionError(f"status stayed {view['status']}, expected {want}")


def test_statements_reconcile_with_the_chain_and_portfolio_by_category(net: Consortium) -> None:
    cx = net.cx
    for bank, fee in ((cx.lenders[0], 3_000), (cx.lenders[1], 2_500)):
        t = Partnership(fee, 1_000, 4_000, cx.now() - 10, cx.now() + 365 * 86_400)
        cx.client(bank).offer_partnership(cx.platform.address, t)
        cx.plat.accept_partnership(bank.address, t)
    since = cx.now()
    status, out = post(net, "/v1/loans", _body("stmt-1", TWELVE))
    assert status == 201, out
    view = net.session(P, "platform").get(f"/v1/loans/{out['loan_id']}").json()
    first = view["schedule"]["instalments"][0]
    status, rep = post(net, f"/v1/loans/{out['loan_id']}/repayments",
                       {"repayment_id": "stmt-1-r1", "principal": first["principal"],
                        "interest": first["interest"]})  # fmt: skip
    assert status == 201, rep
    tranches = view["tranches"]
    amounts = [t["amount"] for t in tranches]
    fee_bps = [{address(A): 3_000, address(B): 2_500}.get(t["lender"], 0) for t in tranches]
    split = economics.split_interest(amounts, 1_000_000, fee_bps, first["interest"])
    a = address(A)
    i = [t["lender"] for t in tranches].index(a)
    r = net.session(A, "bank-a").get(f"/v1/lenders/{a}/statement", params={"from": since})
    assert r.status_code == 200, r.text
    line = r.json()["loans"][out["loan_id"]]
    assert (line["interest"], line["fees_paid"], line["interest_kept"]) == (
        split.tranche[i],
        split.fee[i],
        split.kept[i],
    )
    plat = (
        net.session(P, "platform")
        .get(f"/v1/lenders/{address(P)}/statement", params={"from": since})
        .json()
    )
    assert plat["loans"][out["loan_id"]]["fee_income"] == split.platform_fee > 0
    # a window that ends before the repayment shows nothing for it
    r = net.session(A, "bank-a").get(f"/v1/lenders/{a}/statement", params={"from": 0, "to": since})
    assert out["loan_id"] not in r.json()["loans"]
    # only the member itself and the auditor; a window that ends before it starts is a 422
    r = net.session(B, "bank-b").get(f"/v1/lenders/{a}/statement")
    assert r.status_code == 403 and problem(r)["code"] == "NotYourStatement"
    r = net.session(A, "bank-a").get(f"/v1/lenders/{a}/statement", params={"from": 10, "to": 5})
    assert r.status_code == 422 and problem(r)["errors"][0]["field"] == "to"
    folio = net.session(A, "bank-a").get(f"/v1/lenders/{a}/portfolio").json()
    mine = next(x for x in folio["loans"] if x["loan_id"] == out["loan_id"])
    after = net.session(A, "bank-a").get(f"/v1/loans/{out['loan_id']}").json()
    assert mine["category"] == "normal"
    assert mine["outstanding"] == after["tranches"][i]["outstanding"]
    assert folio["total"] == sum(folio["by_category"].values())


def test_partnership_terms_through_the_nodes_and_a_fee_outside_its_range(net: Consortium) -> None:
    cx, now = net.cx, net.cx.now()
    bank = net.session(A, "bank-a")
    terms = {"fee_bps": 4_500, "min_fee_bps": 1_000, "max_fee_bps": 4_000, "valid_from": now,
             "valid_until": now + 86_400}  # fmt: skip
    r = bank.post("/v1/partnerships", {"platform": address(P), **terms})
    assert r.status_code == 422 and problem(r)["code"] == "FeeShareOutOfRange"
    assert problem(r)["errors"][0]["field"] == "fee_bps"
    before = cx.plat.partnership(address(A), address(P))
    terms["fee_bps"] = 2_000
    r = bank.post("/v1/partnerships", {"platform": address(P), **terms})
    assert r.status_code == 201, r.text
    assert cx.plat.partnership(address(A), address(P)) == before  # binds only once accepted
    plat = net.session(P, "platform")
    r = plat.post("/v1/partnerships/accept", {"bank": address(A), **terms, "fee_bps": 2_500})
    assert r.status_code == 409 and problem(r)["code"] == "PartnershipTermsMismatch"
    r = net.session(P, "platform").post("/v1/partnerships/accept", {"bank": address(A), **terms})
    assert r.status_code == 201, r.text
    assert cx.plat.partnership(address(A), address(P)).fee_bps == 2_000


def test_a_payment_on_a_repaid_loan_is_refused_by_the_node(net: Consortium) -> None:
    status, out = post(net, "/v1/loans", _body("paid-1", TWELVE))
    assert status == 201, out
    path = f"/v1/loans/{out['loan_id']}/repayments"
    assert post(net, path, {"repayment_id": "paid-1-all", "principal": 1_000_000})[0] == 201
    status, p = post(net, path, {"repayment_id": "paid-1-more", "principal": 0, "interest": 5})
    assert status == 409 and p["code"] == "LoanNotOpen", p


def test_a_prepayment_through_the_node_rescales_the_schedule_every_node_shows(
    net: Consortium,
) -> None:
    status, out = post(net, "/v1/loans", _body("pre-1", TWELVE))
    assert status == 201, out
    lid, path = out["loan_id"], f"/v1/loans/{out['loan_id']}/repayments"
    rows = sched.from_json(
        net.session(P, "platform").get(f"/v1/loans/{lid}").json()["schedule"]["instalments"]
    )
    # exactly the first instalment, flagged as a prepayment: nothing prepaid, nothing sent
    status, p = post(net, path, {"repayment_id": "pre-1-r0", "principal": rows[0].principal,
                                 "prepayment": True})  # fmt: skip
    assert status == 409 and p["code"] == "NothingPrepaid", p
    assert p["errors"][0]["field"] == "prepayment" and p["covered"] == 1
    assert net.cx.plat.loan_state(bytes.fromhex(lid[2:]))[1] == 1_000_000
    # the first instalment and 500 CNY early
    paid = rows[0].principal + 50_000
    body = {"repayment_id": "pre-1-r1", "principal": paid, "interest": rows[0].interest,
            "prepayment": True}  # fmt: skip
    status, rep = post(net, path, body)
    assert status == 201, rep
    want = prepayment.InForce(rows).prepay(paid)
    assert rep["prepayment"]["principal"] == 50_000
    assert rep["prepayment"]["schedule_digest"] == "0x" + want.digest.hex()
    assert (rep["prepayment"]["covered_instalments"], rep["prepayment"]["remaining_instalments"]) \
        == (1, 11)  # fmt: skip
    # retried: the same answer, no second prepayment
    again = net.session(P, "platform").post(path, body)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert len(net.cx.plat.events("Prepaid", from_block=0, loanId=bytes.fromhex(lid[2:]))) == 1
    for who, node in ((P, "platform"), (A, "bank-a"), (B, "bank-b")):
        s = net.session(who, node).get(f"/v1/loans/{lid}").json()["schedule"]
        shown = sched.from_json(s["instalments"])
        assert shown == rows[:1] + want.rows, node
        assert [i["state"] for i in s["instalments"][:2]] == ["paid", "due"]
        assert s["prepayments"] == [{"principal": 50_000, "covered_instalments": 1,
                                     "principal_base": paid,
                                     "schedule_digest": "0x" + want.digest.hex()}]  # fmt: skip
        assert all(a.total < b.total for a, b in zip(shown[1:], rows[1:], strict=True))
    # the bank classifies against the schedule in force
    r = net.session(A, "bank-a").post(f"/v1/loans/{lid}/classification", {"category": "normal"})
    assert r.status_code == 200, r.text


# last: it moves the chain's clock on by months (bank attestations go stale after it)
def test_the_keeper_moves_a_loan_with_days_past_due(net: Consortium) -> None:
    status, out = post(net, "/v1/loans", _body("dpd-1", TWELVE))
    assert status == 201, out
    view = net.session(P, "platform").get(f"/v1/loans/{out['loan_id']}").json()
    due = view["schedule"]["instalments"][0]["due"]
    net.cx.advance(due - net.cx.now() + 86_400)
    view = _wait_status(net, out["loan_id"], "overdue")
    assert view["schedule"]["days_past_due"] >= 1
    assert view["schedule"]["floor_category"] == "special_mention"
    assert view["schedule"]["instalments"][0]["state"] == "overdue"
    # the bank classifies its own tranche: never milder than the floor
    bank = net.session(A, "bank-a")
    r = bank.post(f"/v1/loans/{out['loan_id']}/classification", {"category": "normal"})
    assert r.status_code == 422 and problem(r)["code"] == "ClassificationBelowFloor"
    assert problem(r)["errors"][0]["field"] == "category" and problem(r)["floor"] == 1
    r = bank.post(f"/v1/loans/{out['loan_id']}/classification", {"category": "substandard"})
    assert r.status_code == 200 and r.json()["floor"] == "special_mention", r.text
    assert net.cx.plat.classification_of(bytes.fromhex(out["loan_id"][2:]), address(A)) == 2
    # its portfolio, from the read model (LoanServicing's Classified indexed), at once on its own
    # node, and the same on the auditor's
    for who, node in ((A, "bank-a"), ("auditor", "auditor")):
        folio = net.session(who, node).get(f"/v1/lenders/{address(A)}/portfolio").json()
        mine = next(x for x in folio["loans"] if x["loan_id"] == out["loan_id"])
        assert mine["category"] == "substandard", (node, mine)
        assert folio["by_category"]["substandard"] >= mine["outstanding"] > 0
    net.cx.advance(91 * 86_400)
    view = _wait_status(net, out["loan_id"], "defaulted")
    assert view["schedule"]["days_past_due"] > 90


def test_a_resumed_claim_sends_the_schedule_saved_beside_it(tmp_path) -> None:  # noqa: ANN001
    """A retry resumes a loan from its signed terms (which carry only the digest): the words the
    contract needs come from the schedule the node saved before anything was sent."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    from api.service import schedules
    from api.store import LoanSchedule
    from ledger import apr_bounds
    from ledger.records import loan_from_terms

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'node.db'}")
    SQLModel.metadata.create_all(engine, tables=[LoanSchedule.__table__])  # type: ignore[attr-defined]
    start = 1_769_832_000
    rows = sched.build("equal_instalment", 1_000_000, 12, 1_200, start)
    c = apr_bounds.committed(rows, 1_000_000, start)
    terms = {"loan_id": "0x" + "12" * 32, "borrower_key": "0x" + "34" * 32,
             "platform": "0x" + "56" * 20, "product": "consumer", "principal": 1_000_000,
             "apr_bps": c.apr_bps, "term_days": c.term_days, "repayment": "instalment",
             "line_id": "0x" + "00" * 32, "document_digest": "0x" + "00" * 32,
             "schedule_digest": "0x" + c.digest.hex(), "deadline": start,
             "tranches": [{"lender": "0x" + "56" * 20, "amount": 1_000_000}]}  # fmt: skip
    resumed = loan_from_terms(terms)
    assert resumed.schedule == ()
    assert schedules.with_held(engine, resumed).schedule == ()  # nothing saved: nothing to send
    schedules.save(engine, resumed, start, rows)
    assert schedules.with_held(engine, resumed).schedule == c.words
    engine.dispose()
