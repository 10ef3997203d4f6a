"""Load: 32 concurrent clients, each with its own signed-in session, against the local consortium
(anvil and the five node processes) for LEDGER_LOAD_SECONDS (default 60): platform clients
originating co-signed loans one by one and in batches and recording repayments, lender and
auditor clients reading exposure, loans, listings and limits on their own nodes.

A share of the loans go to four "hot" borrowers in amounts where only three fit under the R1 cap,
so BorrowerCapExceeded refusals are provoked on purpose; they are the only error allowed. Any
other status (a 5xx, an unexpected 4xx, a transport error) fails the test. Afterwards every 201
must be on chain exactly once and nothing else may be, the audit (ours and the auditor node's)
must be clean, and the hot borrowers' exposure must be exactly what was accepted.

p50/p99 latency per kind of request is printed and, when LEDGER_LOAD_REPORT names a file, written
there as JSON. Latency is reported, never asserted.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.schemas.common import chain_id_of
from ledger.audit import run_audit
from ledger.nodeclient import NodeSession
from tests.api_support import Consortium, account, address, loan_body, running_consortium

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("LEDGER_LOAD_SECONDS", "60"))
P, A, B, C, AUD = "platform", "bank-a", "bank-b", "bank-c", "auditor"
HOT_KEYS = ["0x" + f"{0xE0 + i:02x}" * 32 for i in range(4)]
HOT_SHARES = {P: 2_400_000, A: 3_600_000}  # 6,000,000: three fit under the 20,000,000 cap
HOT_FIT = 3
CAP = 20_000_000
COLD_SHARES = [
    {P: 400_000, A: 300_000, B: 300_000},
    {P: 400_000, A: 600_000},
    {P: 500_000, B: 500_000},
    {P: 600_000, C: 900_000},
]
REFUSALS = {"BorrowerCapExceeded"}  # the only error a client may see, and only for hot loans
WRITERS, BATCHERS, REPAYERS = 10, 2, 4
READERS = {A: 4, B: 4, C: 4, AUD: 4}  # 32 clients in all


class Load:
    """What the clients sent and saw, shared between their threads."""

    def __init__(self, net: Consortium) -> None:
        self.net = net
        self.lock = threading.Lock()
        self.deadline = 0.0
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.unexpected: list[str] = []
        self.sent: set[str] = set()  # chain ids of every loan a client sent
        self.created: dict[str, dict[str, Any]] = {}  # chain id -> the body that got its 201
        self.created_twice: list[str] = []
        self.hot: Counter[str] = Counter()  # hot key -> loans accepted
        self.hot_attempts = 0
        self.refused = 0
        self.repaid: dict[str, tuple[str, int, int]] = {}  # repayment id -> loan, principal, int.
        self.to_repay: queue.Queue[tuple[str, int]] = queue.Queue()
        self.readable: list[tuple[str, dict[str, Any]]] = []  # loans for the readers

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def bad(self, what: str) -> None:
        with self.lock:
            self.unexpected.append(what)

    def call(self, kind: str, fn: Callable[[], httpx.Response]) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = fn()
        except httpx.HTTPError as exc:
            self.bad(f"{kind}: {type(exc).__name__}: {exc}")
            return None
        dt = time.perf_counter() - t0
        with self.lock:
            self.latency[kind].append(dt)
        return r

    def judge(self, kind: str, r: httpx.Response, ok: int, refusable: bool) -> str:
        """'ok', 'refused' (an expected rule refusal) or 'bad' (recorded as unexpected)."""
        if r.status_code == ok:
            outcome = "ok"
        elif r.status_code == 409 and refusable and _code(r) in REFUSALS:
            outcome = "refused"
        else:
            outcome = "bad"
            self.bad(f"{kind}: HTTP {r.status_code} {r.text[:300]}")
        with self.lock:
            self.outcomes[(kind, outcome)] += 1
        return outcome

    def record_item(self, body: dict[str, Any], status: int, result: dict | None, hot: bool,
                    problem: dict | None = None) -> None:  # fmt: skip
        lid = "0x" + chain_id_of(body["loan_id"], address(P)).hex()
        with self.lock:
            if hot:
                self.hot_attempts += 1
            if status == 201:
                assert result is not None
                if result.get("loan_id") != lid:
                    self.unexpected.append(f"201 for {lid} names {result.get('loan_id')}")
                if lid in self.created:
                    self.created_twice.append(lid)
                self.created[lid] = body
                if hot:
                    self.hot[body["borrower_key"]] += 1
                else:
                    self.to_repay.put((lid, body["principal"]))
                self.readable.append((lid, body))
            elif hot and status == 409 and (problem or {}).get("code") in REFUSALS:
                self.refused += 1
            # anything else was already recorded as unexpected by judge()

    def next_body(self, who: str, n: int, hot: bool) -> dict[str, Any]:
        loan_id = f"load-{who}-{n}"
        if hot:
            body = loan_body(loan_id, HOT_SHARES, borrower_key=random.choice(HOT_KEYS))
        else:
            shares = COLD_SHARES[n % len(COLD_SHARES)]
            business = n % 5 == 1 and C not in shares
            body = loan_body(loan_id, shares, product="business" if business else "consumer")
        with self.lock:
            self.sent.add("0x" + chain_id_of(loan_id, address(P)).hex())
        return body


def _code(r: httpx.Response) -> str | None:
    try:
        return r.json().get("code")
    except ValueError:
        return None


def _is_hot(body: dict[str, Any]) -> bool:
    return body["borrower_key"] in HOT_KEYS


# ---------------------------------------------------------------------- the clients


def writer(load: Load, s: NodeSession, who: str) -> None:
    # the first two writes of each writer are hot, so refusals happen however short the run
    for n in itertools.count():
        if n >= 2 and not load.running():
            return
        body = load.next_body(who, n, hot=n < 2 or n % 4 == 0)
        r = load.call("loan", lambda b=body: s.post("/v1/loans", b))
        if r is None:
            continue
        outcome = load.judge("loan", r, 201, _is_hot(body))
        if outcome != "bad":
            load.record_item(body, r.status_code, r.json(), _is_hot(body), r.json())
        if outcome == "ok" and n % 8 == 3:  # a client's retry: the same answer, nothing new
            again = load.call("loan_retry", lambda b=body: s.post("/v1/loans", b))
            if again is not None and load.judge("loan_retry", again, 201, False) == "ok":
                if again.json() != r.json() or again.headers.get("idempotent-replayed") != "true":
                    load.bad(f"retry of {body['loan_id']}: {again.json()} vs {r.json()}")


def batcher(load: Load, s: NodeSession, who: str) -> None:
    for n in itertools.count():
        if not load.running():
            return
        bodies = [load.next_body(who, n * 5 + i, hot=i == 0) for i in range(5)]
        r = load.call("batch", lambda b=bodies: s.post("/v1/loans/batch", {"loans": b}))
        if r is None or load.judge("batch", r, 200, False) != "ok":
            continue
        out = r.json()
        for body, item in zip(bodies, out["results"], strict=True):
            hot = _is_hot(body)
            code = (item.get("problem") or {}).get("code")
            if item["status"] != 201 and not (hot and item["status"] == 409 and code in REFUSALS):
                load.bad(f"batch item {body['loan_id']}: {item}")
                continue
            with load.lock:
                load.outcomes[("batch_item", "ok" if item["status"] == 201 else "refused")] += 1
            load.record_item(body, item["status"], item.get("result"), hot, item.get("problem"))


def repayer(load: Load, s: NodeSession, who: str) -> None:
    while load.running():
        try:
            lid, principal = load.to_repay.get(timeout=0.2)
        except queue.Empty:
            continue
        half = principal // 2
        for i, (amount, interest) in enumerate(((half, 1_000), (principal - half, 0))):
            # the id's own bytes: its first 20 are the platform's address, the same for every loan
            rid = f"rp-{lid[-24:]}-{i}"
            body = {"repayment_id": rid, "principal": amount, "interest": interest}
            path = f"/v1/loans/{lid}/repayments"
            r = load.call("repayment", lambda p=path, b=body: s.post(p, b))
            if r is None or load.judge("repayment", r, 201, False) != "ok":
                break
            out = r.json()
            left = principal - half if i == 0 else 0
            if out["outstanding"] != left or out["principal"] != amount:
                load.bad(f"repayment {rid}: {out} (expected outstanding {left})")
            with load.lock:
                load.repaid["0x" + chain_id_of(rid, address(P)).hex()] = (lid, amount, interest)


def reader(load: Load, s: NodeSession, member: str) -> None:
    me = address(member)
    lenders = [address(m) for m in (A, B, C)]
    for n in itertools.count():
        if not load.running():
            return
        with load.lock:
            known = [(i, b) for i, b in load.readable[-500:] if member == AUD or _funds(b, me)]
        op = n % 5
        if op == 0:
            key = random.choice(HOT_KEYS)
            r = load.call("exposure", lambda k=key: s.get(f"/v1/borrowers/{k}/exposure"))
            if r is not None and load.judge("exposure", r, 200, False) == "ok":
                total = r.json()["total_exposure"]
                if total > CAP or total % sum(HOT_SHARES.values()):
                    load.bad(f"hot borrower {key}: exposure {total}")
        elif op == 1 and known:
            key = random.choice(known)[1]["borrower_key"]
            r = load.call("exposure", lambda k=key: s.get(f"/v1/borrowers/{k}/exposure"))
            if r is not None:
                load.judge("exposure", r, 200, False)
        elif op == 2 and known:
            lid, body = random.choice(known)
            r = load.call("loan_read", lambda i=lid: s.get(f"/v1/loans/{i}"))
            if r is not None and load.judge("loan_read", r, 200, False) == "ok":
                if r.json()["principal"] != body["principal"]:
                    load.bad(f"loan {lid} read as {r.json()}, sent {body}")
        elif op == 3:
            key = random.choice(HOT_KEYS)
            r = load.call("listing", lambda k=key: s.get("/v1/loans", params={"borrower_key": k}))
            if r is not None and load.judge("listing", r, 200, False) == "ok":
                if r.json()["count"] > HOT_FIT:
                    load.bad(f"hot borrower {key} lists {r.json()['count']} loans")
        else:
            lender = me if member != AUD else random.choice(lenders)
            r = load.call("limits", lambda a=lender: s.get(f"/v1/lenders/{a}/limits"))
            if r is not None:
                load.judge("limits", r, 200, False)


def _funds(body: dict[str, Any], lender: str) -> bool:
    return any(t["lender"] == lender for t in body["tranches"])


# ---------------------------------------------------------------------- the run


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    with running_consortium(tmp_path_factory.mktemp("load")) as c:
        yield c


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else 0.0


def _report(load: Load, seconds: float) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for kind in sorted({k for k, _ in load.outcomes} | set(load.latency)):
        lat = load.latency.get(kind, [])
        kinds[kind] = {
            "requests": len(lat) or sum(load.outcomes[(kind, o)] for o in ("ok", "refused")),
            "ok": load.outcomes[(kind, "ok")],
            "refused": load.outcomes[(kind, "refused")],
            "unexpected": load.outcomes[(kind, "bad")],
            "p50_ms": round(_pct(lat, 50) * 1000, 1) if lat else None,
            "p99_ms": round(_pct(lat, 99) * 1000, 1) if lat else None,
        }
    every = [x for v in load.latency.values() for x in v]
    return {
        "clients": WRITERS + BATCHERS + REPAYERS + sum(READERS.values()),
        "seconds": round(seconds, 1),
        "requests": len(every),
        "p50_ms": round(_pct(every, 50) * 1000, 1),
        "p99_ms": round(_pct(every, 99) * 1000, 1),
        "loans_recorded": len(load.created),
        "loans_refused": load.refused,
        "repayments_recorded": len(load.repaid),
        "unexpected": len(load.unexpected),
        "kinds": kinds,
    }


def test_32_clients_lose_and_duplicate_nothing(net: Consortium) -> None:
    load = Load(net)
    plan: list[tuple[Callable[..., None], str, str]] = (
        [(writer, P, f"w{i}") for i in range(WRITERS)]
        + [(batcher, P, f"b{i}") for i in range(BATCHERS)]
        + [(repayer, P, f"r{i}") for i in range(REPAYERS)]
        + [(reader, m, m) for m, k in READERS.items() for _ in range(k)]
    )
    assert len(plan) == 32
    sessions = [NodeSession.signed_in(net.urls[m], account(m)) for _f, m, _w in plan]
    start = threading.Barrier(len(plan) + 1)

    def run(fn: Callable[..., None], s: NodeSession, who: str) -> None:
        start.wait()
        try:
            fn(load, s, who)
        except Exception as exc:  # noqa: BLE001 - a crashed client is a failure, reported below
            load.bad(f"client {who} crashed: {type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=run, args=(fn, s, who), name=f"load-{who}")
        for (fn, _m, who), s in zip(plan, sessions, strict=True)
    ]
    for t in threads:
        t.start()
    load.deadline = time.monotonic() + SECONDS
    t0 = time.monotonic()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    for s in sessions:
        s.close()

    report = _report(load, elapsed)
    print("\nload:", json.dumps(report, indent=2))
    if os.environ.get("LEDGER_LOAD_REPORT"):
        Path(os.environ["LEDGER_LOAD_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")

    # no error other than the provoked cap refusals
    assert not load.unexpected, f"{len(load.unexpected)} unexpected: {load.unexpected[:10]}"
    assert load.refused > 0 and load.hot_attempts > len(HOT_KEYS) * HOT_FIT

    # every 201 is on chain exactly once; nothing is on chain without a 201 or that was not sent
    plat = net.cx.plat
    start_block = net.cx.deployment.deployment_block
    on_chain = Counter(
        "0x" + bytes(e["args"]["loanId"]).hex()
        for e in plat.ledger.events.LoanOriginated().get_logs(from_block=start_block)
    )
    assert not load.created_twice
    assert [lid for lid, n in on_chain.items() if n != 1] == []
    assert set(on_chain) == set(load.created)
    assert set(on_chain) <= load.sent
    repaid = Counter(
        ("0x" + bytes(e["args"]["repaymentId"]).hex(), int(e["args"]["principal"]))
        for e in plat.ledger.events.Repaid().get_logs(from_block=start_block)
    )
    assert repaid == Counter((rid, p) for rid, (_lid, p, _i) in load.repaid.items())

    # the hot borrowers hold exactly the accepted loans, never more than fit under the cap
    auditor = net.session(AUD, AUD)
    head = plat.w3.eth.block_number
    for key in HOT_KEYS:
        for _ in range(300):  # the auditor's read model catches up with the last block
            expo = auditor.get(f"/v1/borrowers/{key}/exposure").json()
            if expo["as_of_block"] >= head:
                break
            time.sleep(0.1)
        assert load.hot[key] <= HOT_FIT
        assert expo["total_exposure"] == load.hot[key] * sum(HOT_SHARES.values()), (key, expo)
        listed = auditor.get("/v1/loans", params={"borrower_key": key}).json()
        assert listed["count"] == load.hot[key]

    # the audit: from the chain alone, against the auditor's read model, and as the node serves it
    cfg = json.loads((net.state / "nodes" / AUD / "config.json").read_text())
    audit = run_audit(net.chain.url, net.cx.deployment, database_url=cfg["database_url"])
    assert audit.ok, audit.violations[:10]
    assert audit.records["loans"] == len(load.created)
    assert audit.records["repayments"] == len(load.repaid)
    served = auditor.get("/v1/audit/report", timeout=300)
    assert served.status_code == 200 and served.json()["ok"] is True, served.text[:2000]
    assert served.json()["records"]["loans"] == len(load.created)
