"""Alerts end to end on one running consortium (real anvil, the node processes over HTTP):

* a borrower slipping at one lender reaches every bank exposed to it, without naming the loan or
  its lenders to a bank that does not fund it, and nothing reaches a bank with no exposure;
* R5 usage past 80%, an attestation and a credit line ending within 7 days;
* the stream (Server-Sent Events): a node SIGKILLed mid-stream and started again, the client
  resuming with Last-Event-ID, gets every alert exactly once;
* webhooks: a test receiver checks the Standard Webhooks signature (HMAC-SHA256 over id,
  timestamp and body) with its own code; a receiver that keeps failing gets its delivery parked,
  visible in the delivery log, and a retry after it is fixed delivers it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.localnet import nodes
from tests.api_support import Consortium, address, loan_body, problem, running_consortium

P, A, B, C = "platform", "bank-a", "bank-b", "bank-c"
FAST = {"alerts": {"poll_s": 0.2, "webhook_attempts": 2, "webhook_backoff_s": 0.2}}


def _wait(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    overrides = {m: FAST for m in (P, A, B, C, "auditor")}
    with running_consortium(tmp_path_factory.mktemp("alerts"), overrides) as c:
        c.data["restarted"] = []
        try:
            yield c
        finally:
            for proc in c.data["restarted"]:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


def _post(net: Consortium, path: str, body: dict) -> dict:
    r = net.session(P, "platform").post(path, body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _loan(net: Consortium, loan_id: str, shares: dict[str, int], key: str) -> dict:
    return _post(net, "/v1/loans", loan_body(loan_id, shares, borrower_key=key))


def _overdue(net: Consortium, loan_id: str) -> None:
    _post(net, f"/v1/loans/{loan_id}/status", {"status": "overdue", "reason": "DPD30"})


def _alerts(net: Consortium, member: str, **params: Any) -> list[dict]:
    r = net.session(member, member).get("/v1/alerts", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def _of(net: Consortium, member: str, kind: str, subject: str | None = None) -> list[dict]:
    return [
        a for a in _alerts(net, member, type=kind) if subject is None or a["subject"] == subject
    ]


KEY = "0x" + "ab" * 32  # the borrower that slips


@pytest.fixture(scope="module")
def slipped(net: Consortium) -> dict:
    """Borrower KEY has a loan funded by bank-a and one funded by bank-b; the latter goes
    overdue. bank-c has nothing to do with KEY."""
    a = _loan(net, "al-a-1", {P: 400_000, A: 600_000}, KEY)
    b = _loan(net, "al-b-1", {P: 400_000, B: 600_000}, KEY)
    _loan(net, "al-c-1", {P: 400_000, C: 600_000}, "0x" + "cd" * 32)
    _overdue(net, b["loan_id"])
    return {"a": a, "b": b}


def test_a_bank_exposed_to_the_borrower_learns_of_it_without_the_other_lenders_loan(
    net: Consortium, slipped: dict
) -> None:
    seen_a = _wait(lambda: _of(net, A, "borrower.overdue", KEY), "bank-a's alert")
    assert len(seen_a) == 1
    alert = seen_a[0]
    assert alert["severity"] == "warning" and alert["block"] > 0
    assert alert["figures"] == {"borrower_key": KEY, "status": "overdue", "own_loan": False}
    text = json.dumps(alert).lower()
    assert slipped["b"]["loan_id"].lower() not in text
    assert address(B).lower() not in text  # the other lender is not named
    # the bank that funds the loan gets the loan, its amounts and its own share
    seen_b = _wait(lambda: _of(net, B, "borrower.overdue", KEY), "bank-b's alert")
    fig = seen_b[0]["figures"]
    assert fig["own_loan"] is True and fig["loan_id"] == slipped["b"]["loan_id"]
    assert (fig["principal"], fig["own_share"]) == (1_000_000, 600_000)
    # ids are the same thing on every node: a hash of the transaction and the loan
    assert seen_a[0]["id"] == seen_b[0]["id"]
    # a bank with no exposure to the borrower hears nothing; the platform marked it itself
    _wait(lambda: net.session(C, C).get("/v1/alerts").json()["as_of_block"], "bank-c's pass")
    head = net.cx.plat.w3.eth.block_number
    _wait(lambda: net.session(C, C).get("/v1/alerts").json()["as_of_block"] >= head, "bank-c")
    assert _of(net, C, "borrower.overdue") == []
    assert _of(net, P, "borrower.overdue") == []


def test_alerts_are_the_nodes_own_members_only(net: Consortium, slipped: dict) -> None:
    r = net.session(A, B).get("/v1/alerts")  # bank-a signed in on bank-b's node
    assert r.status_code == 403 and problem(r)["code"] == "NotThisNodesMember"
    r = net.session(None, A).get("/v1/alerts")
    assert r.status_code == 401
    r = net.session(A, A).get("/v1/alerts", params={"type": "nonsense"})
    assert r.status_code == 422 and problem(r)["code"] == "UnknownAlertType"


def test_usage_attestation_and_line_deadlines(net: Consortium, slipped: dict) -> None:
    now = net.cx.now()
    # bank-c attests a small tier-1 capital, valid for 3 more days: R5's limit with the
    # platform is 25% of 4,000,000 = 1,000,000 fen
    r = net.session(C, C).post(
        "/v1/attestations/capital",
        {"tier1_capital": 4_000_000, "total_loan_balance": 10**12, "valid_until": now + 3 * 86_400},
    )
    assert r.status_code == 201, r.text
    # 600,000 already lent with the platform (al-c-1); 250,000 more is 85%
    _loan(net, "al-c-2", {P: 200_000, C: 250_000}, "0x" + "ce" * 32)
    r5 = _wait(lambda: _of(net, C, "usage.r5"), "R5 usage alert")
    assert len(r5) == 1 and r5[0]["severity"] == "warning"
    assert r5[0]["figures"] == {
        "outstanding": 850_000, "limit": 1_000_000, "threshold_bps": 8_000,
        "usage_bps": 8_500, "partner": address(P),
    }  # fmt: skip
    expiring = _wait(lambda: _of(net, C, "attestation.expiring"), "attestation alert")
    assert expiring[0]["figures"]["valid_until"] == now + 3 * 86_400
    # a line bank-b funds, ending in 2 days
    line = _post(
        net,
        "/v1/credit-lines",
        {
            "line_id": "al-line-1", "borrower_key": "0x" + "cf" * 32, "product": "consumer",
            "limit": 1_000_000, "expires_at": now + 2 * 86_400,
            "shares": [{"lender": address(P), "amount": 400_000},
                       {"lender": address(B), "amount": 600_000}],
        },
    )  # fmt: skip
    lines = _wait(lambda: _of(net, B, "line.expiring"), "line alert")
    assert lines[0]["figures"]["line_id"] == line["line_id"]
    assert lines[0]["figures"]["own_share"] == 600_000
    assert _of(net, A, "line.expiring") == []  # bank-a does not fund it


# ------------------------------------------------------------------ the stream


def _sse(url: str, token: str, last_id: str | None, want: int, out: list[dict]) -> None:
    """Read `want` events (or until the connection drops) into `out`."""
    headers = {"authorization": f"Bearer {token}", "accept": "text/event-stream"}
    if last_id is not None:
        headers["last-event-id"] = last_id
    event: dict[str, str] = {}
    try:
        with httpx.Client(timeout=httpx.Timeout(60, read=60), trust_env=False) as http:
            with http.stream("GET", f"{url}/v1/alerts/stream", headers=headers) as r:
                assert r.status_code == 200, r.read()
                for line in r.iter_lines():
                    if not line:
                        if "data" in event:
                            out.append({"id": event["id"], **json.loads(event["data"])})
                            if len(out) >= want:
                                return
                        event = {}
                        continue
                    if line.startswith(":"):
                        continue
                    field, _, value = line.partition(":")
                    event[field] = value.removeprefix(" ")
    except httpx.HTTPError:
        pass  # the node went away: the caller resumes


def _info(net: Consortium, name: str) -> nodes.NodeInfo:
    return next(i for i in nodes.recorded(net.state) if i.name == name)


def _start_node(net: Consortium, name: str) -> None:
    info = _info(net, name)
    log = open(info.log, "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "--config", info.config],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    net.data["restarted"].append(proc)

    def ready() -> bool:
        assert proc.poll() is None, f"{name} exited with {proc.returncode}"
        try:
            return httpx.get(f"{info.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(ready, f"{name} ready again", 60)


def test_stream_survives_a_node_killed_mid_stream_nothing_lost_or_repeated(
    net: Consortium, slipped: dict
) -> None:
    token = net.session(A, A).token
    url = _info(net, A).url
    before = _alerts(net, A)
    # the stream from the start replays what is kept, in order
    first: list[dict] = []
    reader = threading.Thread(target=_sse, args=(url, token, None, len(before) + 1, first))
    reader.start()
    _wait(lambda: len(first) >= len(before), "the replay")
    assert [e["id"] for e in first] == [a["id"] for a in before]
    # a new slip arrives live
    x = _loan(net, "al-a-2", {P: 400_000, A: 600_000}, KEY)
    y = _loan(net, "al-b-2", {P: 400_000, B: 600_000}, KEY)
    _overdue(net, y["loan_id"])
    reader.join(30)
    assert not reader.is_alive() and len(first) == len(before) + 1
    last_id = first[-1]["seq"]
    # now kill bank-a's node mid-stream (SIGKILL: no clean shutdown) ...
    second: list[dict] = []
    reader = threading.Thread(target=_sse, args=(url, token, str(last_id), 10, second))
    reader.start()
    time.sleep(0.5)  # the stream is open (not an assertion on time: it only has to be open)
    os.killpg(_info(net, A).pid, signal.SIGKILL)
    reader.join(30)
    assert not reader.is_alive()
    # ... while it is down, more slips land on chain
    z = _loan(net, "al-b-3", {P: 400_000, B: 600_000}, KEY)
    _overdue(net, z["loan_id"])
    _overdue(net, x["loan_id"])
    _post(net, f"/v1/loans/{x['loan_id']}/status", {"status": "defaulted", "reason": "DPD90"})
    _start_node(net, A)
    # resume from the last id the client saw: exactly the alerts after it, once each
    third: list[dict] = []
    reader = threading.Thread(target=_sse, args=(url, token, str(last_id), 3 - len(second), third))
    reader.start()
    reader.join(60)
    got = second + third
    kinds = sorted(e["type"] for e in got)
    assert kinds == ["borrower.defaulted", "borrower.overdue", "borrower.overdue"], got
    ids = [e["id"] for e in first + got]
    assert len(ids) == len(set(ids)), "an alert was delivered twice"
    assert [e["id"] for e in _alerts(net, A)] == ids  # and the list agrees with the stream


# ------------------------------------------------------------------ webhooks


class Receiver:
    """A webhook receiver that verifies each delivery's signature with its own code."""

    def __init__(self, secret: str = "", fail: bool = False) -> None:
        self.secret = secret
        self.fail = fail
        self.verified: list[dict] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["content-length"]))
                ok = outer.verify(
                    body,
                    self.headers["webhook-id"],
                    self.headers["webhook-timestamp"],
                    self.headers["webhook-signature"],
                )
                if outer.fail or not ok:
                    outer.refused += 1
                    self.send_response(500 if ok else 400)
                else:
                    outer.verified.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def verify(self, body: bytes, msg_id: str, ts: str, sig: str) -> bool:
        if abs(time.time() - int(ts)) > 300:
            return False
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        expected = "v1," + base64.b64encode(mac).decode()
        return any(hmac.compare_digest(expected, s) for s in sig.split(" "))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhooks_are_signed_retried_parked_and_visible(net: Consortium, slipped: dict) -> None:
    s = net.session(B, B)
    good, bad = Receiver(), Receiver(fail=True)
    try:
        r = s.post("/v1/webhooks", {"url": good.url, "types": ["borrower.overdue"]})
        assert r.status_code == 201, r.text
        good.secret = r.json()["secret"]
        assert good.secret.startswith("whsec_")
        r = s.post("/v1/webhooks", {"url": bad.url})
        bad.secret = r.json()["secret"]
        bad_id = r.json()["id"]
        assert "secret" not in json.dumps(s.get("/v1/webhooks").json())  # shown once only
        # bank-b's own loan goes overdue: both receivers are called
        w = _loan(net, "al-b-4", {P: 400_000, B: 600_000}, KEY)
        _overdue(net, w["loan_id"])
        got = _wait(lambda: good.verified, "a verified delivery")
        assert got[0]["figures"]["loan_id"] == w["loan_id"] and got[0]["type"] == "borrower.overdue"
        # the signature really is checked: the same delivery with one byte changed is refused
        body = json.dumps(got[0], sort_keys=True, separators=(",", ":")).encode()
        assert not good.verify(body.replace(b"overdue", b"0verdue"), got[0]["id"],
                               str(int(time.time())), "v1,AAAA")  # fmt: skip
        # the failing receiver: 2 attempts, then parked, and the log shows both
        parked = _wait(
            lambda: s.get("/v1/webhooks/deliveries", params={"state": "parked"}).json()["items"],
            "a parked delivery",
        )
        assert parked[0]["webhook_id"] == bad_id and parked[0]["attempts"] == 2
        assert [a["status"] for a in parked[0]["attempt_log"]] == [500, 500]
        assert bad.refused == 2
        # fixed, and retried by hand: delivered, signed like the rest
        bad.fail = False
        r = s.post(f"/v1/webhooks/deliveries/{parked[0]['id']}/retry")
        assert r.status_code == 200, r.text
        _wait(lambda: bad.verified, "the retried delivery")
        log = s.get("/v1/webhooks/deliveries", params={"webhook_id": bad_id}).json()["items"]
        assert {d["state"] for d in log if d["id"] == parked[0]["id"]} == {"delivered"}
        r = s.post(f"/v1/webhooks/deliveries/{parked[0]['id']}/retry")
        assert r.status_code == 404 and problem(r)["code"] == "NoParkedDelivery"
    finally:
        good.close()
        bad.close()


def test_a_borrower_classified_worse_at_another_lender(net: Consortium, slipped: dict) -> None:
    """bank-b classifies its tranche of a loan to KEY stricter (LoanServicing `Classified`):
    bank-a, exposed to KEY through its own loan, learns the category without the loan or bank-b;
    the platform, which funds that loan, gets the loan and the lender; a milder reclassification
    is no alert; bank-b's own act and bank-c (no exposure) get nothing."""
    twelve = {"kind": "equal_instalment", "months": 12, "rate_bps": 1_200}
    body = loan_body("al-cls-1", {P: 400_000, B: 600_000}, borrower_key=KEY, schedule=twelve)
    body.pop("apr_bps")
    loan = _post(net, "/v1/loans", body)
    path = f"/v1/loans/{loan['loan_id']}/classification"
    bank_b = net.session(B, B)
    for category in ("substandard", "special_mention", "doubtful"):
        r = bank_b.post(path, {"category": category})
        assert r.status_code == 200, r.text

    def two(member: str) -> list[dict]:
        got = _of(net, member, "borrower.classified", KEY)
        return got if len(got) >= 2 else []

    seen = _wait(lambda: two(A), "bank-a's classification alerts")
    by_category = {a["figures"]["category"]: a for a in seen}
    assert sorted(by_category) == ["doubtful", "substandard"]  # special_mention was milder
    sub = by_category["substandard"]
    assert sub["severity"] == "critical"
    assert sub["figures"] == {
        "borrower_key": KEY,
        "category": "substandard",
        "previous": "normal",
        "days_past_due": 0,
        "own_loan": False,
    }
    assert by_category["doubtful"]["figures"]["previous"] == "special_mention"
    text = json.dumps(seen).lower()
    assert loan["loan_id"].lower() not in text and address(B).lower() not in text
    mine = _wait(lambda: two(P), "the platform's alerts")
    fig = {a["figures"]["category"]: a["figures"] for a in mine}["substandard"]
    assert fig["own_loan"] is True and fig["loan_id"] == loan["loan_id"]
    assert fig["lender"] == address(B) and fig["own_share"] == 400_000
    assert {a["id"] for a in mine} == {a["id"] for a in seen}  # the same ids on every node
    head = net.cx.plat.w3.eth.block_number
    for m in (B, C):
        _wait(lambda m=m: net.session(m, m).get("/v1/alerts").json()["as_of_block"] >= head, m)
        assert _of(net, m, "borrower.classified") == []


# last: it suspends bank-c and freezes bank-b
def test_council_queue_suspension_and_freeze_reach_the_members(net: Consortium) -> None:
    """Proposals through the nodes (platform proposes, banks A and B approve: scheduled on the
    timelock): a policy changing R1 is announced to every member subject to it, a suspension of
    bank-c to bank-c alone while queued; once executed, the suspension and a freeze reach every
    member, critical for the member itself (through its webhook: its sign-in no longer reads)."""
    gov = "/v1/governance/proposals"
    cap = net.cx.plat.current_policy()[0].consumer_cap
    asks = {
        "policy": {"action": "policy", "policy": {"consumer_cap": cap - 1_000_000}},
        "suspend": {"action": "suspend", "address": address(C)},
        "freeze": {"action": "freeze", "address": address(B)},
    }
    ids = {}
    for what, body in asks.items():
        r = net.session(P, P).post(gov, body)
        assert r.status_code == 201, r.text
        ids[what] = r.json()["id"]
        for m in (A, B):
            r = net.session(m, m).post(f"{gov}/{ids[what]}/approve")
            assert r.status_code == 200, r.text
        assert r.json()["state"] == "scheduled", r.text

    def queued(member: str) -> dict[str, dict]:
        return {a["subject"].lower(): a for a in _of(net, member, "council.queued")}

    pid = ids["policy"].lower()
    for m in (P, A, C, "auditor"):
        got = _wait(lambda m=m: pid in queued(m) and queued(m), f"{m}'s council.queued")
        fig = got[pid]["figures"]
        assert (fig["function"], fig["rules"]) == ("setPolicy", ["R1"]), fig
        assert fig["changes"] == {"consumer_cap": {"from": cap, "to": cap - 1_000_000}}
    # the suspension while queued: only the member it is about hears of it
    sid = ids["suspend"].lower()
    got = _wait(lambda: sid in queued(C) and queued(C), "bank-c's queued suspension")
    fig = got[sid]["figures"]
    assert (fig["function"], fig["member"]) == ("suspendMember", address(C)), fig
    assert sid not in queued(A) and ids["freeze"].lower() not in queued(A)

    # the members concerned register webhooks now: once suspended or frozen, their sign-in no
    # longer reads their own node, but the node still computes and delivers their alerts
    hooks = {B: Receiver(), C: Receiver()}
    for m, kind in ((B, "member.frozen"), (C, "member.suspended")):
        r = net.session(m, m).post("/v1/webhooks", {"url": hooks[m].url, "types": [kind]})
        assert r.status_code == 201, r.text
        hooks[m].secret = r.json()["secret"]
    try:
        net.cx.advance(3)  # the timelock's delay
        for what in ("suspend", "freeze"):
            r = net.session(A, A).post(f"{gov}/{ids[what]}/execute")
            assert r.status_code == 200 and r.json()["state"] == "executed", r.text
        for kind, who in (("member.suspended", C), ("member.frozen", B)):
            for m in (P, A, "auditor"):
                (alert,) = _wait(lambda m=m, kind=kind, who=who: _of(net, m, kind, address(who)),
                                 f"{m}'s {kind}")  # fmt: skip
                assert alert["figures"] == {"member": address(who), "self": False}
                assert alert["severity"] == "warning"
            (own,) = _wait(lambda who=who: hooks[who].verified, f"{who}'s own {kind}")
            assert (own["type"], own["severity"]) == (kind, "critical")
            assert own["figures"] == {"member": address(who), "self": True}
        r = net.session(B, B).get("/v1/alerts")
        assert r.status_code == 403 and problem(r)["code"] == "MemberIsFrozen"
        r = net.session(C, C).get("/v1/alerts")
        assert r.status_code == 403 and problem(r)["code"] == "MemberNotActive"
    finally:
        for h in hooks.values():
            h.close()
