"""Adversarial scenarios over the real stack (anvil, the five node processes, real HTTP): racing
writers at one borrower's cap through one platform node and through two, fifty requests at one
borrower's headroom, a suspended lender's tranche, a lender node that signs for another contract,
and a node started against the wrong chain.

Covered elsewhere (not repeated here):
* direct contract calls that skip the API, each decoded into its typed error
  (tests/test_contract_rules_*.py, tests/test_contract_signatures.py): over the cap
  `test_cap_exactly_accepted_one_fen_over_refused`, `test_cap_counts_existing_exposure`; a 4th
  institution `test_institution_limit_counts_distinct_institutions_and_frees_on_repayment`;
  platform share under 30% `test_platform_share_boundary_on_loans`; expired deadline
  `test_expired_deadline`; loan A's signatures on loan B and the same loan twice
  `test_signature_for_another_loan`, `test_same_loan_twice_is_reported_as_already_recorded`,
  `test_ids_are_single_use`; forged / non-member / suspended signers `test_wrong_signer`,
  `test_non_member_as_tranche_lender`, `test_inactive_lender`, `test_suspended_platform`;
  another chain id or contract `test_signature_for_another_chain`,
  `test_signature_for_another_deployment_on_the_same_chain`;
* sign-in and access (tests/test_api_auth.py, tests/test_api_access.py): forged signature,
  non-member, suspended member's next request, expired token, reused nonce, token or challenge
  of another node, BOLA (`test_access_matrix`: a bank funding no tranche gets 404), lender or
  auditor on platform endpoints (`test_access_matrix`: 403).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount

from api.schemas.common import chain_id_of
from ledger.chain.client import LedgerClient
from ledger.chain.deployment import DEV_DELAY, deploy, fund
from ledger.chain.errors import ContractRevert
from ledger.domain import (
    CoLoan,
    LoanStatus,
    Product,
    RepaymentType,
    Role,
    Tranche,
    record_id,
    sort_tranches,
)
from ledger.keys import dev_account
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import bootstrap
from ledger.localnet.processes import find_project_root, free_port, kill_group
from ledger.nodeclient import NodeSession
from ledger.provenance import sign
from tests.api_support import (
    Consortium,
    account,
    address,
    loan_body,
    problem,
    running_consortium,
)

P, A, B, C = "platform", "bank-a", "bank-b", "bank-c"
P2 = "platform-2"  # a second platform member with a node of its own, started here
CONFUSED = "bank-c-confused"  # bank-c's key, but the deployment file of another ledger


# ---------------------------------------------------------------------------------- nodes


def _config(net: Consortium, base: str, name: str, **changes: Any) -> Path:
    """A config of its own (name, port, database, document dirs) derived from `base`'s."""
    cfg = json.loads((net.state / "nodes" / base / "config.json").read_text())
    home = net.state / "nodes" / name
    home.mkdir(parents=True, exist_ok=True)
    cfg.update(
        name=name,
        port=free_port(),
        database_url=f"sqlite:///{home / 'node.db'}",
        document_key_dir=str(home / "document-keys"),
        document_dir=str(home / "documents"),
        read_model="chain",
    )
    cfg.update(changes)
    path = home / "config.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _run_node(config: Path, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "api", "--config", str(config)],
        cwd=find_project_root(),
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: stopped as a whole
        **kw,
    )


def _wait_ready(url: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"node exited ({proc.returncode}): {log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{url}/readyz", trust_env=False, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"node at {url} not ready: {log.read_text()[-3000:]}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    with running_consortium(tmp_path_factory.mktemp("adversarial")) as c:
        yield c


@pytest.fixture(scope="module")
def extra(net: Consortium) -> Iterator[dict[str, Any]]:
    """A second platform member and its node, and a node holding bank-c's key but configured with
    the deployment file of a second ledger on the same chain. The second platform's node talks to
    the real bank-a and bank-b nodes, and to the confused node as bank-c's."""
    plat2 = dev_account("platform", 1)
    fund(net.cx.rpc_url, [plat2.address])
    net.cx.gov.admit_member(plat2.address, Role.PLATFORM, "Platform 2 (test)")
    other = bootstrap(net.cx.rpc_url)  # the same governor key: rebuild our clients' nonces
    net.cx.reset_clients()
    other.gov.admit_member(plat2.address, Role.PLATFORM, "Platform 2 (test)")
    other.reset_clients()
    other.deployment.save(net.state / "other-deployment.json")
    confused_cfg = _config(
        net, C, CONFUSED, deployment_file=str(net.state / "other-deployment.json")
    )
    confused_url = f"http://127.0.0.1:{json.loads(confused_cfg.read_text())['port']}"
    peers = {address(A): net.urls[A], address(B): net.urls[B], address(C): confused_url}
    p2_cfg = _config(net, P, P2, key={"kind": "dev", "role": "platform", "index": 1}, peers=peers)
    p2_url = f"http://127.0.0.1:{json.loads(p2_cfg.read_text())['port']}"
    procs: list[subprocess.Popen[str]] = []
    try:
        for cfg, url in ((confused_cfg, confused_url), (p2_cfg, p2_url)):
            log = cfg.parent / "node.log"
            with log.open("w") as fh:
                procs.append(_run_node(cfg, stdout=fh, stderr=subprocess.STDOUT))
            _wait_ready(url, procs[-1], log)
        with NodeSession.signed_in(p2_url, plat2) as session:
            yield {"plat2": plat2, "session": session, "other": other}
    finally:
        for proc in procs:
            kill_group(proc.pid, proc, 10.0)


# ---------------------------------------------------------------------------------- helpers


def _reader(net: Consortium) -> LedgerClient:
    return LedgerClient(net.cx.rpc_url, net.cx.deployment)  # no key: reads only


def _cap(net: Consortium) -> int:
    with _reader(net) as r:
        return r.current_policy()[0].consumer_cap


def _exposure(net: Consortium, key: str) -> int:
    with _reader(net) as r:
        return r.borrower_exposure(bytes.fromhex(key[2:]))["consumer"]


def _owner(body: dict) -> str:
    """The platform of a loan body: its one tranche that is not a bank's."""
    banks = {address(A), address(B), address(C)}
    return next(t["lender"] for t in body["tranches"] if t["lender"] not in banks)


def _status(net: Consortium, body: dict) -> LoanStatus:
    """The on-chain status of the loan a body's API loan id names (NONE: never recorded)."""
    with _reader(net) as r:
        return r.loan_state(chain_id_of(body["loan_id"], _owner(body)))[2]


def _race(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls on as many threads at once (released together by a barrier)."""
    gate = Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        gate.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _poster(url: str, who: LocalAccount, body: dict) -> Callable[[], httpx.Response]:
    """A call that posts `body` with its own connection and sign-in (signed in up front)."""
    session = NodeSession.signed_in(url, who)
    session.http.timeout = httpx.Timeout(300.0)  # queued behind the others on a busy machine

    def call() -> httpx.Response:
        with session:
            return session.post("/v1/loans", body)

    return call


def _split(amount: int) -> dict[str, int]:
    """40% platform, 60% bank-a: R3 and R4 never bind, only the cap can."""
    return {P: amount * 4 // 10, A: amount - amount * 4 // 10}


def _as_platform(body: dict, platform: str) -> dict:
    """The same loan proposed by another platform: its tranche, its signature."""
    for t in body["tranches"]:
        if t["lender"] == address(P):
            t["lender"] = platform
    return body


def _one_won(net: Consortium, key: str, bodies: list[dict], rs: list[httpx.Response]) -> None:
    assert sorted(r.status_code for r in rs) == [201, 409], [r.text for r in rs]
    (won, ok), (lost, refusal) = sorted(
        zip(bodies, rs, strict=True), key=lambda x: x[1].status_code
    )
    p = problem(refusal)
    assert p["code"] == "BorrowerCapExceeded" and p["rule"] == "R1/R2", p
    assert ok.json()["loan_id"] == "0x" + chain_id_of(won["loan_id"], _owner(won)).hex()
    assert _exposure(net, key) == won["principal"]
    assert _status(net, won) == LoanStatus.ACTIVE
    assert _status(net, lost) == LoanStatus.NONE


# ---------------------------------------------------------------------------------- races


def test_two_concurrent_loans_over_the_cap_through_one_platform_node(net: Consortium) -> None:
    cap, key = _cap(net), "0x" + "a1" * 32
    amount = cap * 6 // 10  # each alone fits, both together do not
    bodies = [loan_body(f"race1-{i}", _split(amount), borrower_key=key) for i in range(2)]
    rs = _race([_poster(net.urls[P], account(P), b) for b in bodies])
    _one_won(net, key, bodies, rs)


def test_two_platforms_racing_on_one_borrower(net: Consortium, extra: dict) -> None:
    """The registry admits any number of platforms (R5 is per partner); each runs its own node.
    Both co-originate with bank-a for one borrower; the chain lets exactly one through."""
    cap, key = _cap(net), "0x" + "a2" * 32
    amount = cap * 6 // 10
    plat2 = extra["plat2"]
    b1 = loan_body("race2-p1", _split(amount), borrower_key=key)
    b2 = _as_platform(loan_body("race2-p2", _split(amount), borrower_key=key), plat2.address)
    p2_url = extra["session"].base
    rs = _race([_poster(net.urls[P], account(P), b1), _poster(p2_url, plat2, b2)])
    _one_won(net, key, [b1, b2], rs)


def test_fifty_requests_at_one_borrowers_headroom(net: Consortium) -> None:
    cap, key = _cap(net), "0x" + "a3" * 32
    unit, fits = 1_000_000, 8  # headroom for exactly 8 of the 50, with half a unit to spare
    start = cap - fits * unit - unit // 2
    first = net.session(P, "platform").post(
        "/v1/loans", loan_body("fifty-base", _split(start), borrower_key=key)
    )
    assert first.status_code == 201, first.text
    bodies = [loan_body(f"fifty-{i}", _split(unit), borrower_key=key) for i in range(50)]
    rs = _race([_poster(net.urls[P], account(P), b) for b in bodies])
    statuses = [r.status_code for r in rs]
    assert set(statuses) <= {201, 409}, [r.text for r in rs if r.status_code not in (201, 409)]
    refused = [problem(r) for r in rs if r.status_code == 409]
    assert {p["code"] for p in refused} <= {"BorrowerCapExceeded"}, refused
    won = [r.json()["loan_id"] for r in rs if r.status_code == 201]
    final = _exposure(net, key)
    assert len(won) == fits and final == start + fits * unit <= cap
    assert cap - final < unit  # no refused request would have fitted in what is left
    # the 201 set is exactly what landed: every 201 is active, every refusal left nothing
    for body, r in zip(bodies, rs, strict=True):
        landed = _status(net, body)
        assert landed == (LoanStatus.ACTIVE if r.status_code == 201 else LoanStatus.NONE)


# ---------------------------------------------------------------------------------- identity


def test_suspended_lender_tranche_is_refused_before_any_transaction(net: Consortium) -> None:
    """The contract side (a suspended member's signature reverts NotActiveMember) is
    tests/test_contract_signatures.py::test_inactive_lender; through the API the platform's
    pre-check refuses it, so nothing is signed into a transaction."""
    gov, bank_b = net.cx.gov, address(B)
    body = loan_body("suspended-b", {P: 400_000, B: 600_000})
    gov.suspend_member(bank_b)
    try:
        r = net.session(P, "platform").post("/v1/loans", body)
    finally:
        gov.reinstate_member(bank_b)
    p = problem(r)
    assert r.status_code == 403 and p["code"] == "NotActiveMember" and p["account"] == bank_b, p
    assert _status(net, body) == LoanStatus.NONE
    # reinstated, the same request goes through
    assert net.session(P, "platform").post("/v1/loans", body).status_code == 201


# ---------------------------------------------------------------------------------- chain confusion


def test_cosignature_for_another_contract_is_refused_by_the_platform_node(
    net: Consortium, extra: dict
) -> None:
    """bank-c's key on a node configured with another ledger's deployment (same chain) signs
    for that ledger's EIP-712 domain; the platform node verifies before it submits."""
    plat2 = extra["plat2"]
    body = _as_platform(loan_body("confused", {P: 400_000, C: 600_000}), plat2.address)
    r = extra["session"].post("/v1/loans", body)
    p = problem(r)
    assert r.status_code == 502 and p["code"] == "InvalidCosignature", p
    assert p["lender"] == address(C)
    assert _status(net, body) == LoanStatus.NONE
    with LedgerClient(net.cx.rpc_url, extra["other"].deployment) as there:
        assert there.loan_state(chain_id_of(body["loan_id"], plat2.address))[2] == LoanStatus.NONE


def test_node_on_a_ledger_wired_to_a_shadow_registry_refuses_to_start(net: Consortium) -> None:
    """Issue 14, item 6. The platform deploys a real second registry it owns and a ledger wired
    to it, then hands out a deployment file naming the real registry (with both code hashes as
    found on chain, so every hash check passes). A node given that file exits 2 with one line
    naming the registry the ledger is really wired to."""
    shadow = deploy(net.cx.rpc_url, account(P))
    forged = dataclasses.replace(
        shadow,
        registry=net.cx.deployment.registry,
        registry_code_hash=net.cx.deployment.registry_code_hash,
    )
    path = net.state / "shadow-deployment.json"
    forged.save(path)
    cfg = _config(net, A, "bank-a-shadow", deployment_file=str(path))
    proc = _run_node(cfg, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_group(proc.pid, proc, 5.0)
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith("python -m api: bank-a-shadow: wrong wiring: "), err
    assert f"the registry at {net.cx.deployment.registry}" in line
    assert f"wired to the registry at {shadow.registry}" in line
    assert "Uvicorn running" not in out + err


@pytest.mark.parametrize("wrong", ["another chain id", "no contracts"])
def test_node_pointed_at_the_wrong_chain_refuses_to_start(net: Consortium, wrong: str) -> None:
    chain_id = 31_338 if wrong == "another chain id" else net.chain.chain_id
    with LocalChain("anvil", chain_id=chain_id) as chain:
        cfg = _config(net, A, f"wrong-{chain_id}", rpc_url=chain.url)
        proc = _run_node(cfg, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                kill_group(proc.pid, proc, 5.0)
    assert proc.returncode not in (0, None), (out, err)
    assert "Traceback" not in out + err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"python -m api: wrong-{chain_id}: wrong chain: "), err
    if wrong == "another chain id":
        assert f"expects chain id {net.cx.deployment.chain_id}" in line
        assert f"{chain.url} is chain id 31338" in line
    else:
        assert f"the registry at {net.cx.deployment.registry}" in line
        assert "no contract code at that address" in line
    assert "Uvicorn running" not in out + err  # it never served


# ------------------------------------------------------------- issue 14, items 4 and 5


def test_a_platform_node_cannot_take_another_platforms_ids(net: Consortium, extra: dict) -> None:
    """Item 4. Platform 2, through its own node and straight at the contract, tries to record
    loans under the ids platform 1 will use; it is refused, and platform 1's loans under those
    ids are accepted afterwards."""
    plat2, session = extra["plat2"], extra["session"]
    theirs = "0x" + record_id(address(P), "squat-1").hex()
    body = _as_platform(loan_body(theirs, {P: 400_000, A: 600_000}), plat2.address)
    r = session.post("/v1/loans", body)
    p = problem(r)
    assert r.status_code == 400 and p["code"] == "IdOutsideNamespace", p
    assert p["platform"] == plat2.address
    # straight at the contract, with every party's real signature
    with LedgerClient(net.cx.rpc_url, net.cx.deployment, plat2) as c:
        loan = CoLoan(
            loan_id=bytes.fromhex(theirs[2:]), borrower_key=b"\x51" * 32, platform=plat2.address,
            product=Product.CONSUMER, principal=1_000_000, apr_bps=1_200, term_days=180,
            repayment=RepaymentType.INSTALMENT,
            deadline=int(c.w3.eth.get_block("latest")["timestamp"]) + 3_600,
            tranches=sort_tranches([Tranche(plat2.address, 400_000), Tranche(address(A), 600_000)]),
        )  # fmt: skip
        keys = {plat2.address: plat2.key, address(A): account(A).key}
        with pytest.raises(ContractRevert) as info:
            c.originate(loan, [sign(keys[s], c.domain, loan) for s in loan.signers])
        assert info.value.code == "IdOutsideNamespace"
    # the same client id is platform 2's own id in its own namespace
    own = _as_platform(loan_body("squat-1", {P: 400_000, A: 600_000}), plat2.address)
    r = session.post("/v1/loans", own)
    assert r.status_code == 201, r.text
    assert r.json()["loan_id"] == "0x" + record_id(plat2.address, "squat-1").hex()
    # platform 1's loans under its ids, by string and by hex, are accepted afterwards
    mine = net.session(P, "platform")
    r = mine.post("/v1/loans", loan_body("squat-1", {P: 400_000, A: 600_000}))
    assert r.status_code == 201 and r.json()["loan_id"] == theirs, r.text
    twin = "0x" + record_id(address(P), "squat-2").hex()
    r = mine.post("/v1/loans", loan_body(twin, {P: 400_000, A: 600_000}))
    assert r.status_code == 201 and r.json()["loan_id"] == twin, r.text


def test_a_removed_platforms_loan_is_serviced_through_its_successors_node(
    net: Consortium, extra: dict
) -> None:
    """Item 5, the last test of this module (platform 2 is removed for good). Platform 2 records a
    loan through its node and is removed: the loan is stranded until the council transfers its
    servicing to platform 1, whose node then changes its status and repays it, releasing the
    borrower's exposure and bank-a's R5/R6 usage with platform 2."""
    plat2, session = extra["plat2"], extra["session"]
    body = _as_platform(loan_body("outgoing-1", {P: 400_000, A: 600_000}), plat2.address)
    r = session.post("/v1/loans", body)
    assert r.status_code == 201, r.text
    lid, key = r.json()["loan_id"], body["borrower_key"]
    with _reader(net) as rd:
        before = rd.lender_usage(address(A), plat2.address)
    assert before["with_partner"] >= 600_000
    mine = net.session(P, "platform")
    repay = {"repayment_id": "succ-1", "principal": 1_000_000, "interest": 500}
    assert mine.post(f"/v1/loans/{lid}/repayments", repay).status_code == 404  # not its loan
    net.cx.gov.remove_member(plat2.address)
    # stranded: platform 2 is out, platform 1 is not its servicer
    assert session.post(f"/v1/loans/{lid}/repayments", repay).status_code in (401, 403)
    assert mine.post(f"/v1/loans/{lid}/repayments", repay).status_code == 404
    # the transfer: proposed and approved on the members' own nodes, each with its own key; to a
    # bank it is refused when executed, to platform 1 it passes
    gov = "/v1/governance/proposals"
    outcomes = []
    for to in (address(A), address(P)):
        made = mine.post(gov, {"action": "transfer-servicing", "address": plat2.address, "to": to})
        assert made.status_code == 201, made.text
        proposal = made.json()["id"]
        for bank in (A, B):
            r = net.session(bank, bank).post(f"{gov}/{proposal}/approve")
            assert r.status_code == 200, r.text
        assert r.json()["state"] == "scheduled"
        net.cx.advance(DEV_DELAY)
        outcomes.append(net.session("auditor", "auditor").post(f"{gov}/{proposal}/execute"))
    refused, done = outcomes
    assert refused.status_code == 409 and problem(refused)["code"] == "InvalidServicer"
    assert done.status_code == 200 and done.json()["state"] == "executed", done.text
    # the successor's node now services it: a status change, then the repayment in full
    r = mine.post(f"/v1/loans/{lid}/status", {"status": "overdue", "reason": "DPD30"})
    assert r.status_code == 200 and r.json()["status"] == "overdue", r.text
    r = mine.post(f"/v1/loans/{lid}/repayments", repay)
    assert r.status_code == 201, r.text
    assert r.json()["outstanding"] == 0 and r.json()["status"] == "repaid"
    assert _exposure(net, key) == 0
    with _reader(net) as rd:
        after = rd.lender_usage(address(A), plat2.address)
    assert before["with_partner"] - after["with_partner"] == 600_000
    assert before["total"] - after["total"] == 600_000
