"""The co-signing flow end to end, over real HTTP between the node processes on real anvil:
origination with every lender node's signature, refusals by rule (with the numbers) and by a
bank's own appetite, idempotent retries, credit lines, batches, repayments, status changes,
encrypted documents, metrics, and a lender node that is down."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from api.service.inflight import SUBMITTED, Entry, InFlight
from api.service.submitter import Submitter
from ledger import provenance
from ledger.domain import CoLoan
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import bootstrap
from ledger.localnet.nodes import recorded
from tests.api_support import Consortium, address, loan_body, problem, running_consortium

P, A, B, C = "platform", "bank-a", "bank-b", "bank-c"


def plain(value):
    """web3's AttributeDicts as plain dicts and lists (read here through web3 on purpose, apart
    from the node's own decoder)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    # a co-signature is awaited a minute: long enough to look at the queue while a node stops
    overrides = {P: {"peer_timeout_s": 60}}
    with running_consortium(tmp_path_factory.mktemp("cosign"), overrides) as c:
        yield c


def post(net: Consortium, path: str, body: dict) -> tuple[int, dict]:
    r = net.session(P, "platform").post(path, body)
    return r.status_code, (problem(r) if r.status_code >= 400 else r.json())


def test_co_origination_collects_and_verifies_every_signature(net: Consortium) -> None:
    body = loan_body(
        "flow-1", {P: 1_200_000, A: 900_000, B: 900_000}, borrower_id="11010519491231002X"
    )
    status, out = post(net, "/v1/loans", body)
    assert status == 201 and out["status"] == "active", out
    # on chain, with the platform's and both banks' signatures, each verifiable from the event
    plat = net.cx.plat
    logs = plat.ledger.events.LoanOriginated().get_logs(
        argument_filters={"loanId": bytes.fromhex(out["loan_id"][2:])}, from_block=0
    )
    assert len(logs) == 1 and logs[0]["transactionHash"].to_0x_hex() == out["tx_hash"]
    loan = CoLoan.from_abi(plain(logs[0]["args"]["loan"]))
    assert {t.lender for t in loan.tranches} == {address(P), address(A), address(B)}
    sigs = provenance.unpack_signatures(logs[0]["args"]["signatures"])
    provenance.verify(plat.domain, loan, sigs)
    assert loan.borrower_key.hex() == out["borrower_key"][2:]
    # every reader sees it the same way
    view = net.session(A, "bank-a").get(f"/v1/loans/{out['loan_id']}").json()
    assert view["principal"] == 3_000_000 and view["outstanding"] == 3_000_000
    assert [t["amount"] for t in view["tranches"]] == [t.amount for t in loan.tranches]


def test_idempotent_retry_returns_the_original_result(net: Consortium) -> None:
    body = loan_body("retry-1", {P: 400_000, A: 600_000})
    first = net.session(P, "platform").post("/v1/loans", body)
    again = net.session(P, "platform").post("/v1/loans", body)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    # tranches in another order are the same request
    reordered = dict(body, tranches=list(reversed(body["tranches"])))
    assert post(net, "/v1/loans", reordered) == (201, first.json())
    # the same id with other terms is a conflict, and nothing more was recorded
    status, p = post(net, "/v1/loans", dict(body, apr_bps=1_500))
    assert status == 409 and p["code"] == "IdempotencyConflict"
    logs = net.cx.plat.ledger.events.LoanOriginated().get_logs(
        argument_filters={"loanId": bytes.fromhex(first.json()["loan_id"][2:])}, from_block=0
    )
    assert len(logs) == 1
    # the id as a string and as its bytes32 are one and the same record
    hexed = dict(body, loan_id=first.json()["loan_id"])
    assert post(net, "/v1/loans", hexed) == (201, first.json())


def test_refusal_by_rule_carries_the_numbers_and_is_not_recorded(net: Consortium) -> None:
    key = "0x" + "c1" * 32
    assert (
        post(net, "/v1/loans", loan_body("cap-1", {P: 6_000_000, A: 9_000_000}, borrower_key=key))[
            0
        ]
        == 201
    )
    status, p = post(
        net, "/v1/loans", loan_body("cap-2", {P: 3_000_000, A: 3_000_000}, borrower_key=key)
    )
    assert status == 409 and p["code"] == "BorrowerCapExceeded" and p["rule"] == "R1/R2"
    assert (p["exposure"], p["requested"], p["cap"], p["headroom"]) == (
        15_000_000,
        6_000_000,
        20_000_000,
        5_000_000,
    )
    # refused, not stored: after a repayment the same id and request go through
    loan_id = post(
        net, "/v1/loans", loan_body("cap-1", {P: 6_000_000, A: 9_000_000}, borrower_key=key)
    )[1]["loan_id"]
    status, rep = post(
        net, f"/v1/loans/{loan_id}/repayments", {"repayment_id": "cap-rp", "principal": 1_000_000}
    )
    assert status == 201 and rep["outstanding"] == 14_000_000
    assert (
        post(net, "/v1/loans", loan_body("cap-2", {P: 3_000_000, A: 3_000_000}, borrower_key=key))[
            0
        ]
        == 201
    )


def test_r3_and_r4_refusals(net: Consortium) -> None:
    key = "0x" + "c3" * 32
    three = loan_body("r3-1", {P: 400_000, A: 300_000, B: 300_000}, borrower_key=key)
    assert post(net, "/v1/loans", three)[0] == 201
    status, p = post(
        net, "/v1/loans", loan_body("r3-2", {P: 400_000, C: 600_000}, borrower_key=key)
    )
    assert status == 409 and (p["code"], p["rule"], p["institutions"], p["max"]) == (
        "TooManyInstitutions",
        "R3",
        4,
        3,
    )
    status, p = post(net, "/v1/loans", loan_body("r4", {P: 200_000, A: 800_000}))
    assert status == 409 and (p["code"], p["rule"], p["platformAmount"], p["minBps"]) == (
        "PlatformShareTooLow",
        "R4",
        200_000,
        3_000,
    )


def test_r0_a_platform_alone_is_refused_by_its_node(net: Consortium) -> None:
    """A platform asks its own node to record a loan and a line with no bank in them: refused
    before anything is signed or sent, with the contract's error and numbers."""
    key = "0x" + "a0" * 32
    status, p = post(net, "/v1/loans", loan_body("r0", {P: 1_000_000}, borrower_key=key))
    assert status == 409
    assert (p["code"], p["rule"], p["banks"], p["min"]) == ("TooFewBankTranches", "R0", 0, 1)
    line = {
        "line_id": "r0-line", "borrower_key": key, "product": "consumer", "limit": 20_000_000,
        "expires_at": net.cx.now() + 30 * 86_400,
        "shares": [{"lender": address(P), "amount": 20_000_000}],
    }  # fmt: skip
    status, p = post(net, "/v1/credit-lines", line)
    assert status == 409 and (p["code"], p["banks"]) == ("TooFewBankTranches", 0)
    status, out = post(net, "/v1/loans/batch", {"loans": [loan_body("r0-b", {P: 1_000_000})]})
    assert status == 200 and out["rejected"] == 1
    assert out["results"][0]["problem"]["code"] == "TooFewBankTranches"
    # the borrower's headroom is untouched: a joint loan up to the cap still fits
    full = loan_body("r0-joint", {P: 8_000_000, A: 6_000_000, B: 6_000_000}, borrower_key=key)
    assert post(net, "/v1/loans", full)[0] == 201


def test_bank_refuses_by_its_own_appetite(net: Consortium) -> None:
    status, p = post(net, "/v1/loans", loan_body("appetite", {P: 2_000_000, C: 3_000_000}))
    assert status == 409 and p["code"] == "AppetiteExceeded"
    assert (p["lender"], p["requested"], p["max_tranche"]) == (address(C), 3_000_000, 2_000_000)
    status, p = post(
        net, "/v1/loans", loan_body("product", {P: 400_000, C: 600_000}, product="business")
    )
    assert status == 409 and p["code"] == "ProductNotAccepted" and p["lender"] == address(C)
    metrics = net.session(None, "bank-c").get("/metrics").text
    assert 'ledger_records_rejected_total{kind="loan",code="AppetiteExceeded"' in metrics


def test_lender_refuses_terms_not_proposed_by_their_platform(net: Consortium) -> None:
    loan = net.cx.loan(1_000_000, [(net.cx.platform, 400_000), (net.cx.lenders[0], 600_000)])
    from ledger.records import loan_terms

    terms = loan_terms(loan) | {"deadline": net.cx.now() + 7 * 86_400}
    r = net.session(P, A).post("/v1/cosign", {"kind": "loan", "terms": terms})
    assert r.status_code == 409 and problem(r)["code"] == "DeadlineTooFar"
    other = loan_terms(loan) | {
        "tranches": [
            {"lender": address(P), "amount": 400_000},
            {"lender": address(B), "amount": 600_000},
        ]
    }
    r = net.session(P, A).post("/v1/cosign", {"kind": "loan", "terms": other})
    assert r.status_code == 409 and problem(r)["code"] == "NotAParty"
    ok = net.session(P, A).post("/v1/cosign", {"kind": "loan", "terms": loan_terms(loan)})
    assert ok.status_code == 200
    sig = bytes.fromhex(ok.json()["signature"][2:])
    assert provenance.recover(provenance.digest(net.cx.plat.domain, loan), sig) == address(A)


def test_credit_line_then_a_drawing_under_it(net: Consortium) -> None:
    key = "0x" + "d1" * 32
    line = {
        "line_id": "line-1", "borrower_key": key, "product": "consumer", "limit": 5_000_000,
        "expires_at": net.cx.now() + 30 * 86_400,
        "shares": [{"lender": address(P), "amount": 2_000_000},
                   {"lender": address(A), "amount": 3_000_000}],
    }  # fmt: skip
    status, out = post(net, "/v1/credit-lines", line)
    assert status == 201 and out["line_id"] and out["status"] == "active"
    assert post(net, "/v1/credit-lines", line) == (201, out)  # idempotent
    drawn = loan_body("drawn", {P: 400_000, A: 600_000}, borrower_key=key, line_id="line-1")
    assert post(net, "/v1/loans", drawn)[0] == 201
    expo = net.session(A, "bank-a").get(f"/v1/borrowers/{key}/exposure").json()
    assert expo["total_exposure"] == 5_000_000 and expo["own_exposure"] == 3_000_000


def test_batch_gives_per_item_results(net: Consortium) -> None:
    key = "0x" + "ba" * 32
    items = [
        loan_body("batch-ok", {P: 400_000, A: 600_000}, borrower_key=key),
        loan_body("batch-r4", {P: 100_000, A: 900_000}, borrower_key=key),
        loan_body("batch-cap", {P: 8_000_000, A: 12_000_000}, borrower_key=key),
    ]
    status, out = post(net, "/v1/loans/batch", {"loans": items})
    assert status == 200 and (out["accepted"], out["rejected"]) == (1, 2)
    by_code = {r["status"]: r for r in out["results"]}
    assert by_code[201]["result"]["block_number"] > 0
    codes = sorted(r["problem"]["code"] for r in out["results"] if r["status"] != 201)
    # 400,000 + 20,000,000 only exceed the cap within the batch: the node judges the batch's
    # loans in order, each accepted one counting against the next, as the contract does
    assert codes == ["BorrowerCapExceeded", "PlatformShareTooLow"]
    again = post(net, "/v1/loans/batch", {"loans": items[:1]})[1]
    assert again["results"][0]["result"] == by_code[201]["result"]


def test_repayment_allocation_idempotency_and_status(net: Consortium) -> None:
    status, loan = post(net, "/v1/loans", loan_body("repay", {P: 400_000, A: 300_000, B: 300_000}))
    assert status == 201
    path = f"/v1/loans/{loan['loan_id']}"
    first = net.session(P, "platform").post(
        f"{path}/repayments", {"repayment_id": "rp-1", "principal": 100_000, "interest": 1_000}
    )
    assert first.status_code == 201
    alloc = {a["lender"]: (a["principal"], a["interest"]) for a in first.json()["allocation"]}
    assert alloc == {
        address(P): (40_000, 400),
        address(A): (30_000, 300),
        address(B): (30_000, 300),
    }
    again = net.session(P, "platform").post(
        f"{path}/repayments", {"repayment_id": "rp-1", "principal": 100_000, "interest": 1_000}
    )
    assert again.status_code == 201 and again.json() == first.json()
    status, p = post(net, f"{path}/repayments", {"repayment_id": "rp-1", "principal": 5})
    assert status == 409 and p["code"] == "IdempotencyConflict"
    status, p = post(net, f"{path}/repayments", {"repayment_id": "rp-2", "principal": 10**9})
    assert status == 409 and p["code"] == "RepaymentExceedsOutstanding"
    status, st = post(net, f"{path}/status", {"status": "overdue", "reason": "DPD30"})
    assert status == 200 and (st["previous_status"], st["status"]) == ("active", "overdue")
    status, p = post(net, f"{path}/status", {"status": "overdue", "reason": "DPD30"})
    assert status == 409 and p["code"] == "IllegalTransition"
    status, st = post(
        net, f"{path}/status", {"status": "written_off", "reason": "WO", "change_id": "wo-1"}
    )
    assert status == 200 and st["released_principal"] == 900_000
    assert post(
        net, f"{path}/status", {"status": "written_off", "reason": "WO", "change_id": "wo-1"}
    ) == (200, st)
    status, p = post(
        net, "/v1/loans/no-such-loan/repayments", {"repayment_id": "x", "principal": 1}
    )
    assert status == 404


def test_document_is_stored_encrypted_and_only_its_digest_goes_on_chain(net: Consortium) -> None:
    doc = b"Joint loan agreement no. 42 (synthetic)"
    body = loan_body("with-doc", {P: 400_000, A: 600_000}, document=base64.b64encode(doc).decode())
    status, out = post(net, "/v1/loans", body)
    digest = hashlib.sha256(doc).hexdigest()
    assert status == 201 and out["document_digest"] == "0x" + digest
    view = net.session("auditor", "platform").get(f"/v1/loans/{out['loan_id']}").json()
    assert view["document_digest"] == "0x" + digest
    stored = list((net.state / "nodes" / "platform" / "documents").glob(f"{digest}*"))
    assert len(stored) == 1 and doc not in stored[0].read_bytes()


def test_metrics_and_readiness(net: Consortium) -> None:
    anon = net.session(None, "platform")
    ready = anon.get("/readyz").json()
    assert ready["status"] == "ready" and ready["chain_reachable"] is True
    assert 0 <= ready["indexer_lag"] <= ready["max_indexer_lag"]
    text = anon.get("/metrics").text
    assert "ledger_indexer_lag_blocks " in text
    assert 'ledger_records_submitted_total{kind="loan"}' in text
    assert 'code="BorrowerCapExceeded",rule="R1/R2"' in text
    assert 'route="/v1/loans",status="201"' in text


def test_lender_cosigns_a_batch_item_by_item(net: Consortium) -> None:
    """One request, many loans: each is checked as /v1/cosign checks one, in order against one
    snapshot (a second loan to the same borrower counts the first), and signed or refused."""
    from ledger.records import loan_terms

    cx = net.cx
    soon = cx.now() + 600
    k1, k2 = bytes.fromhex("b1" * 32), bytes.fromhex("b2" * 32)
    fills = cx.loan(20_000_000, [(cx.platform, 8_000_000), (cx.lenders[0], 12_000_000)],
                    borrower_key=k1, deadline=soon)  # fmt: skip
    over = cx.loan(1_000_000, [(cx.platform, 400_000), (cx.lenders[0], 600_000)],
                   borrower_key=k1, deadline=soon)  # fmt: skip
    not_mine = cx.loan(1_000_000, [(cx.platform, 400_000), (cx.lenders[1], 600_000)],
                       deadline=soon)  # fmt: skip
    late = cx.loan(1_000_000, [(cx.platform, 400_000), (cx.lenders[0], 600_000)],
                   deadline=cx.now() + 7 * 86_400)  # fmt: skip
    fine = cx.loan(1_000_000, [(cx.platform, 400_000), (cx.lenders[0], 600_000)],
                   borrower_key=k2, deadline=soon)  # fmt: skip
    foreign = loan_terms(fine) | {"platform": address(B), "loan_id": "0x" + "f0" * 32}
    items = [loan_terms(x) for x in (fills, over, not_mine, late)] + [foreign, loan_terms(fine)]
    r = net.session(P, A).post("/v1/cosign/batch", {"kind": "loan", "items": items})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["signer"] == address(A)
    got = [(x["status"], (x.get("problem") or {}).get("code")) for x in out["results"]]
    assert got == [
        (200, None),
        (409, "BorrowerCapExceeded"),
        (409, "NotAParty"),
        (409, "DeadlineTooFar"),
        (403, "NotYourRecord"),
        (200, None),
    ]
    assert out["results"][1]["problem"]["exposure"] == 20_000_000
    for i, loan in ((0, fills), (5, fine)):
        sig = bytes.fromhex(out["results"][i]["signature"][2:])
        assert provenance.recover(provenance.digest(cx.plat.domain, loan), sig) == address(A)
    # an insider: another bank's key may not ask for a batch of signatures
    r = net.session(B, A).post("/v1/cosign/batch", {"kind": "loan", "items": items[:1]})
    assert r.status_code == 403
    # terms of the wrong kind, and more than a batch holds, are refused whole
    r = net.session(P, A).post("/v1/cosign/batch", {"kind": "line", "items": items[:1]})
    assert r.status_code == 422
    r = net.session(P, A).post("/v1/cosign/batch", {"kind": "loan", "items": items[:1] * 101})
    assert r.status_code == 422


def test_batch_each_loan_its_own_outcome_once(net: Consortium) -> None:
    """A duplicate id in one batch, a bank refusing one loan by its appetite, and good loans:
    each gets its own outcome, the good ones land exactly once, a retry replays them."""
    good1 = loan_body("bx-1", {P: 400_000, A: 300_000, B: 300_000})
    good2 = loan_body("bx-2", {P: 400_000, A: 600_000})
    too_big = loan_body("bx-3", {P: 2_000_000, C: 3_000_000})
    items = [good1, good1, too_big, good2]
    status, out = post(net, "/v1/loans/batch", {"loans": items})
    assert status == 200 and (out["accepted"], out["rejected"]) == (2, 2)
    got = [(x["status"], (x.get("problem") or {}).get("code")) for x in out["results"]]
    assert got == [(201, None), (409, "RequestInProgress"), (409, "AppetiteExceeded"), (201, None)]
    assert out["results"][2]["problem"]["lender"] == address(C)
    for x in (out["results"][0], out["results"][3]):
        logs = net.cx.plat.ledger.events.LoanOriginated().get_logs(
            argument_filters={"loanId": bytes.fromhex(x["loan_id"][2:])}, from_block=0
        )
        assert len(logs) == 1 and logs[0]["transactionHash"].to_0x_hex() == x["result"]["tx_hash"]
    status, again = post(net, "/v1/loans/batch", {"loans": items})
    assert [x["status"] for x in again["results"]] == [201, 409, 409, 201]
    assert again["results"][0]["result"] == out["results"][0]["result"]
    # the refused id stays usable once its terms fit the bank's appetite
    fits = loan_body("bx-3", {P: 2_000_000, C: 2_000_000})
    status, out = post(net, "/v1/loans/batch", {"loans": [fits]})
    assert out["results"][0]["status"] == 201


def test_lender_node_down_is_a_503_naming_it_and_nothing_is_submitted(net: Consortium) -> None:
    import os
    import signal

    info = next(i for i in recorded(net.state) if i.name == B)
    os.killpg(info.pgid, signal.SIGKILL)
    body = loan_body("peer-down", {P: 400_000, A: 300_000, B: 300_000})
    status, p = post(net, "/v1/loans", body)
    assert status == 503 and p["code"] == "LenderNodeUnavailable" and p["lender"] == address(B)
    logs = net.cx.plat.ledger.events.LoanOriginated().get_logs(
        argument_filters={"loanId": bytes.fromhex(_id("peer-down")[2:])}, from_block=0
    )
    assert logs == []
    # nothing was claimed for good: the id is still free for a request without that lender
    assert post(net, "/v1/loans", loan_body("peer-down", {P: 400_000, A: 600_000}))[0] == 201


def _id(text: str) -> str:
    """The on-chain id the platform's node gives its client id `text` (its own namespace)."""
    from ledger.domain import record_id

    return "0x" + record_id(address("platform"), text).hex()


def test_originations_in_flight_are_listed_until_recorded(net: Consortium) -> None:
    """While bank A's node is stopped (SIGSTOP) a batch to it waits for its co-signatures:
    `GET /v1/originations/pending` lists each loan, gathering co-signatures, with its age, paged;
    other members cannot read the queue, and a bad page size is a 422 naming it. Once the node
    goes on, the batch is recorded and the queue is empty."""
    plat = net.session(P, "platform")
    outsider = net.session(A, "platform")  # bank A signed in on the platform's node
    ids = [f"inflight-{i}" for i in range(3)]
    body = {"loans": [loan_body(i, {P: 400_000, A: 600_000}) for i in ids]}
    answer: dict[str, Any] = {}
    info = next(i for i in recorded(net.state) if i.name == A)
    os.killpg(info.pgid, signal.SIGSTOP)
    worker = threading.Thread(target=lambda: answer.update(r=plat.post("/v1/loans/batch", body)))
    try:
        worker.start()
        deadline = time.monotonic() + 30
        while (page := plat.get("/v1/originations/pending", params={"limit": 2}).json())[
            "total"
        ] < 3:
            assert time.monotonic() < deadline, page
            time.sleep(0.1)
        assert len(page["items"]) == 2 and page["next_offset"] == 2
        time.sleep(0.5)
        rest = plat.get("/v1/originations/pending", params={"offset": 2, "limit": 2}).json()
        assert len(rest["items"]) == 1 and rest["next_offset"] is None
        items = page["items"] + rest["items"]
        assert {x["loan_id"] for x in items} == {_id(i) for i in ids}
        assert {(x["state"], x["tx_hash"]) for x in items} == {("gathering_cosignatures", None)}
        assert rest["items"][0]["age_s"] >= 0.5
        # the queue is the platform's own; a page of 0 is refused, naming the field
        r = outsider.get("/v1/originations/pending")
        assert r.status_code == 403 and problem(r)["code"] == "RoleForbidden"
        r = plat.get("/v1/originations/pending", params={"limit": 0})
        assert r.status_code == 422 and problem(r)["errors"][0]["field"] == "query.limit"
    finally:
        os.killpg(info.pgid, signal.SIGCONT)
        worker.join(timeout=120)
    r = answer["r"]
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    after = plat.get("/v1/originations/pending").json()
    assert (after["total"], after["items"]) == (0, [])


def test_the_submitter_shows_a_transaction_submitted_before_its_receipt() -> None:
    """In process, on an anvil of its own that mines only when asked: the moment the node's one
    submission queue has sent a loan's transaction, the in-flight list shows the loan submitted
    with that transaction's hash, which the chain holds unmined; the request's own tracking
    keeps it listed until its answer is settled, and nothing remains after."""
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        loan = cx.loan(1_000_000)
        key = "0x" + loan.loan_id.hex()
        seen: list[tuple[Entry, Any]] = []

        def receipt(tx: str) -> Any:
            return cx.gov.w3.provider.make_request("eth_getTransactionReceipt", [tx])["result"]

        class Probe(InFlight):
            def mark(self, ids: Any, state: str, tx_hash: str | None = None) -> None:
                super().mark(ids, state, tx_hash)
                if state == SUBMITTED:  # what a reader of the list sees at this moment
                    seen.append((self.entries()[key], receipt(tx_hash or "")))

        inflight = Probe()
        sub = Submitter(cx.plat, inflight=inflight)
        cx.gov.w3.provider.make_request("evm_setAutomine", [False])
        try:
            with inflight.tracking([key]):
                (outcome,) = sub.originate_many([(loan, cx.sign(loan))])
                assert inflight.entries()[key].state == SUBMITTED
        finally:
            sub.close()
        ((entry, pending_receipt),) = seen
        assert not isinstance(outcome, Exception)
        assert (entry.state, entry.tx_hash) == (SUBMITTED, outcome.tx_hash)
        assert pending_receipt is None and receipt(outcome.tx_hash) is not None
        assert inflight.entries() == {}


def test_openapi_documents_every_body_with_examples_and_problems(net: Consortium) -> None:
    spec = net.session(None, "platform").get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for name in ("LoanIn", "LineIn", "RecordOut", "RepaymentIn", "RepaymentOut", "StatusIn",
                 "StatusOut", "BatchIn", "BatchOut", "ExposureOut", "LoanView", "LimitsOut",
                 "ChallengeIn", "TokenOut", "BorrowerKeyIn"):  # fmt: skip
        assert schemas[name].get("examples"), name
    create = spec["paths"]["/v1/loans"]["post"]["responses"]
    assert "application/problem+json" in create["409"]["content"]
    exposure = spec["paths"]["/v1/borrowers/{borrower_key}/exposure"]["get"]["responses"]
    challenge = spec["paths"]["/v1/auth/challenge"]["post"]["responses"]
    for route in (create, exposure, challenge):
        assert {"413", "429", "422"} <= set(route), route.keys()
    assert "503" in exposure and "503" not in challenge
    lender_spec = net.session(None, "bank-a").get("/openapi.json").json()
    assert "/v1/cosign" in lender_spec["paths"] and "/v1/cosign" not in spec["paths"]


def test_chain_down_makes_nodes_unready_and_requests_503(net: Consortium) -> None:
    # Last in this module: it stops the module's chain.
    bank = net.session(A, "bank-a")
    net.chain.stop()
    r = net.session(None, "bank-a").get("/readyz")
    p = problem(r)
    assert r.status_code == 503 and p["code"] == "NotReady" and p["chain_reachable"] is False
    r = bank.get(f"/v1/borrowers/0x{'00' * 32}/exposure")
    assert r.status_code == 503 and problem(r)["code"] == "ChainUnavailable"
    assert net.session(None, "bank-a").get("/healthz").status_code == 200
