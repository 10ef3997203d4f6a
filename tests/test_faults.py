"""Faults from outside, on real processes: the chain killed mid-run, a reorg of every depth from
1 to 10 under all five nodes, and a lender node that goes down and comes back.

Covered elsewhere (not repeated here):
* a graceful chain restart under 300 one-by-one records:
  tests/test_client.py::test_chain_restart_mid_run_every_record_lands_exactly_once;
* the indexer SIGKILLed during catch-up, on SQLite and PostgreSQL (the `dbs` fixture):
  tests/test_indexer.py::test_sigkill_during_catch_up_then_restart_equals_a_fresh_index;
* PostgreSQL restarted under a node: tests/test_faults_pg.py.

The module's consortium is used by the lender-down test first (writes through the platform
node), then by the reorg test (writes with the test's own client, reverting the chain).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ledger.chain.client import LedgerClient
from ledger.indexer import Indexer
from ledger.localnet import nodes
from ledger.localnet.chains import LocalChain, rpc_call
from ledger.localnet.consortium import bootstrap, new_id
from ledger.store.db import make_engine
from ledger.store.models import TABLES
from tests.api_support import Consortium, address, loan_body, problem, running_consortium
from tests.dbs import assert_same, dump

P, A, B = "platform", "bank-a", "bank-b"
NODES = ("platform", "bank-a", "bank-b", "bank-c", "auditor")


def _originated(client: LedgerClient, from_block: int) -> Counter[bytes]:
    logs = client.ledger.events.LoanOriginated().get_logs(from_block=from_block)
    return Counter(bytes(e["args"]["loanId"]) for e in logs)


def _head(url: str) -> int:
    return int(rpc_call(url, "eth_blockNumber"), 16)


def _wait(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


# ------------------------------------------------------------------ 1. chain killed mid-run


def _kill_and_restart(
    chain: LocalChain, client: LedgerClient, done: threading.Event, sig: int = signal.SIGTERM
) -> None:
    """Kill anvil's pid from outside, wait until it is gone and the client has noticed, then
    start it again on the same port from its state file. anvil dumps --state on SIGTERM, not on
    SIGKILL: after a SIGKILL it comes back without every block since the last dump."""
    pid = chain.pid
    os.kill(pid, sig)
    _wait(lambda: not chain.running, "anvil to exit after SIGTERM", 30)
    noticed = len(client.retried)
    # down for a while: the client's requests fail meanwhile
    _wait(lambda: len(client.retried) > noticed or done.is_set(), "the client to notice", 30)
    chain.restart()  # reaps the dead process, loads the dumped state, same port


@pytest.mark.slow
def test_chain_killed_mid_run_of_1000_records_every_one_lands_exactly_once(
    tmp_path: Path,
) -> None:
    """250 co-loans one by one, then 750 pipelined; anvil is killed from outside in the middle
    of each part and started again with its state. The second kill is a crash (SIGKILL): the
    chain comes back as it was at the first kill, without hundreds of records the client holds
    receipts for, and the client records each of them again."""
    with LocalChain("anvil", state_path=tmp_path / "anvil-state.json") as chain:
        cx = bootstrap(chain.url)
        plat = cx.plat
        plat.receipt_timeout = 3.0
        start_block = plat.w3.eth.block_number + 1
        items = [(ln, cx.sign(ln)) for ln in (cx.loan(100_000) for _ in range(1_000))]
        one_by_one, pipelined = items[:250], items[250:]
        progress = {"n": 0, "nonce": 0}
        results: list[Any] = []
        errors: list[BaseException] = []
        phase_two, done = threading.Event(), threading.Event()

        def work() -> None:
            try:
                for loan, sigs in one_by_one:
                    plat.originate(loan, sigs)
                    progress["n"] += 1
                progress["nonce"] = plat.w3.eth.get_transaction_count(plat.address)
                phase_two.set()
                results.extend(plat.originate_pipelined(pipelined, chunk=100))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
            finally:
                done.set()

        def mined_pipelined() -> int:
            return int(rpc_call(chain.url, "eth_getTransactionCount", [plat.address, "latest"]), 16)

        worker = threading.Thread(target=work)
        worker.start()
        try:
            _wait(lambda: progress["n"] >= 100 or done.is_set(), "100 records one by one")
            assert not done.is_set(), errors
            _kill_and_restart(chain, plat, done)
            _wait(lambda: phase_two.is_set() or done.is_set(), "the pipelined part", 120)
            assert not done.is_set(), errors
            # killed once 300 of the 750 are mined: some sent and unmined, some not yet sent
            target = progress["nonce"] + 300
            deadline = time.monotonic() + 120
            while not done.is_set() and mined_pipelined() < target:
                assert time.monotonic() < deadline, "the pipelined part stalled"
                time.sleep(0.005)
            assert not done.is_set(), "the pipelined part finished before the kill"
            _kill_and_restart(chain, plat, done, signal.SIGKILL)
        finally:
            worker.join(timeout=300)
        assert errors == []
        assert progress["n"] == 250
        assert len(results) == 750 and all(hasattr(r, "loan_id") for r in results), [
            r for r in results if not hasattr(r, "loan_id")
        ][:3]
        ids = _originated(plat, start_block)
        assert set(ids) == {ln.loan_id for ln, _ in items}
        assert max(ids.values()) == 1  # each record exactly once
        # the client reports what it retried, and both kills made it retry records
        retried = {r.split()[1] for r in plat.retried if r.startswith("originate 0x")}
        parts = [{"0x" + ln.loan_id.hex() for ln, _ in part} for part in (one_by_one, pipelined)]
        assert retried & parts[0] and retried & parts[1], plat.retried
        assert retried <= parts[0] | parts[1]
        lost = {r.split()[1] for r in plat.retried if r.endswith("(lost in a restart)")}
        # the crash took both parts' receipted records with it: those one by one since the first
        # kill (about 150: where each kill lands varies by a record or two), and pipelined ones
        assert len(lost & parts[0]) >= 100 and lost & parts[1], len(lost)
        print(f"\n{len(retried)} of 1000 retried after two kills, {len(lost)} lost in a crash")


# ------------------------------------------------------------------ one consortium for 5 and 4


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    with running_consortium(tmp_path_factory.mktemp("faults")) as c:
        c.data["restarted"] = []  # node processes this module started again itself
        try:
            yield c
        finally:
            for proc in c.data["restarted"]:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)


def _node_engine(net: Consortium, node: str) -> sa.Engine:
    return make_engine(f"sqlite:///{net.state / 'nodes' / node / 'node.db'}")


def _rows_of(net: Consortium, node: str, loan_id: bytes) -> int:
    engine = _node_engine(net, node)
    try:
        with engine.connect() as conn:
            loans, tranches = TABLES["loans"], TABLES["tranches"]
            return sum(
                conn.execute(sa.select(sa.func.count()).where(t.c.loan_id == loan_id)).scalar()
                for t in (loans, tranches)
            )
    finally:
        engine.dispose()


def _start_node(net: Consortium, name: str) -> None:
    """Start a stopped node again from its own config, as an operator would (`python -m api`),
    and wait until it is ready."""
    info = next(i for i in nodes.recorded(net.state) if i.name == name)
    log = open(info.log, "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "--config", info.config],
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    net.data["restarted"].append(proc)
    with httpx.Client(timeout=2.0, trust_env=False) as http:

        def ready() -> bool:
            assert proc.poll() is None, f"{name} exited with {proc.returncode}"
            try:
                return http.get(f"{info.url}/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        _wait(ready, f"{name} ready again")


# ------------------------------------------------------------------ 5. a lender node down


def test_lender_node_down_leaves_nothing_half_recorded_and_a_retry_succeeds_once_back(
    net: Consortium,
) -> None:
    """Extends tests/test_api_cosign.py::test_lender_node_down_is_a_503_naming_it_and_nothing_
    is_submitted (which retries *without* the lender): no node's read model has the loan, and the
    very same request succeeds once the lender's node is back."""
    info = next(i for i in nodes.recorded(net.state) if i.name == B)
    os.killpg(info.pgid, signal.SIGKILL)
    plat = net.session(P, "platform")
    body = loan_body("faults-peer-down", {P: 400_000, A: 300_000, B: 300_000})
    r = plat.post("/v1/loans", body)
    p = problem(r)
    assert r.status_code == 503 and p["code"] == "LenderNodeUnavailable"
    assert p["lender"] == address(B) and "Traceback" not in r.text
    loan_id = _id("faults-peer-down")
    lid = bytes.fromhex(loan_id[2:])
    logs = net.cx.plat.ledger.events.LoanOriginated().get_logs(
        argument_filters={"loanId": lid}, from_block=0
    )
    assert logs == []
    # a later loan makes every running node index past the moment of the refusal
    later = plat.post("/v1/loans", loan_body("faults-peer-later", {P: 400_000, A: 600_000}))
    assert later.status_code == 201, later.text
    for node in NODES:
        if node != B:
            assert net.session("auditor", node).get(f"/v1/loans/{loan_id}").status_code == 404
            seen = net.session("auditor", node).get(f"/v1/loans/{later.json()['loan_id']}")
            assert seen.status_code == 200, (node, seen.text)
        assert _rows_of(net, node, lid) == 0, node
    # the lender's node comes back; the same request goes through, once
    _start_node(net, B)
    again = plat.post("/v1/loans", body)
    assert again.status_code == 201, again.text
    assert again.json()["loan_id"] == loan_id
    logs = net.cx.plat.ledger.events.LoanOriginated().get_logs(
        argument_filters={"loanId": lid}, from_block=0
    )
    assert len(logs) == 1
    net._sessions.pop((B, B), None)  # the restarted node has its own tokens
    for member, node in [("auditor", n) for n in NODES] + [(B, B)]:
        view = net.session(member, node).get(f"/v1/loans/{loan_id}")
        assert view.status_code == 200, (node, view.text)
        assert view.json()["outstanding"] == 1_000_000
    assert plat.post("/v1/loans", body).headers["idempotent-replayed"] == "true"


def _id(text: str) -> str:
    """The on-chain id the platform's node gives its client id `text` (its own namespace)."""
    from ledger.domain import record_id

    return "0x" + record_id(address("platform"), text).hex()


# ------------------------------------------------------------------ 4. reorgs of depth 1..10


def _rpc(net: Consortium, method: str, params: list | None = None) -> Any:
    return rpc_call(net.chain.url, method, params or [])


def _head_hash(net: Consortium) -> tuple[int, bytes]:
    block = _rpc(net, "eth_getBlockByNumber", ["latest", False])
    return int(block["number"], 16), bytes.fromhex(block["hash"][2:])


def _cursor(net: Consortium, node: str) -> tuple[int, bytes | None]:
    engine = _node_engine(net, node)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(TABLES["indexer_cursor"])).mappings().one()
            return row["last_block"], row["last_hash"] and bytes(row["last_hash"])
    finally:
        engine.dispose()


def _all_nodes_at_head(net: Consortium) -> None:
    """Every node's read model holds exactly the chain's current head block (by hash: after a
    reorg the same height is another block)."""
    head = _head_hash(net)
    for node in NODES:
        _wait(lambda n=node: _cursor(net, n) == head, f"{node} indexed block {head[0]}")


def _reorgs_seen(net: Consortium, node: str) -> int:
    return Path(net.state / "nodes" / node / "node.log").read_text().count("reorg: rolled back")


@pytest.mark.slow
def test_reorgs_of_depth_1_to_10_leave_every_node_equal_to_the_chain(
    net: Consortium, tmp_path: Path
) -> None:
    cx = net.cx
    cx.reset_clients()  # nonces as the chain has them now (the nodes wrote before us)
    common = cx.loan(2_000_000)
    cx.plat.originate(common, cx.sign(common))
    orphaned_ids: list[bytes] = []
    for depth in range(1, 11):
        _all_nodes_at_head(net)
        reorgs_before = {n: _reorgs_seen(net, n) for n in NODES}
        snap = _rpc(net, "evm_snapshot")
        borrowers = [os.urandom(32) for _ in range(depth)]
        # the branch that will be orphaned: `depth` blocks, one co-loan each
        old = [cx.loan(500_000, borrower_key=k) for k in borrowers]
        for ln in old:
            cx.plat.originate(ln, cx.sign(ln))
        _all_nodes_at_head(net)  # every node has indexed the branch that is about to vanish
        assert _rpc(net, "evm_revert", [snap]) is True
        cx.reset_clients()
        # the new branch: other loans to the same borrowers, and a repayment of a common loan
        new = [cx.loan(700_000, borrower_key=k) for k in borrowers]
        for ln in new:
            cx.plat.originate(ln, cx.sign(ln))
        cx.plat.repay(common, new_id("repayment", cx.platform.address), 10_000)
        _all_nodes_at_head(net)
        orphaned_ids += [ln.loan_id for ln in old]
        fresh_engine = make_engine(f"sqlite:///{tmp_path / f'fresh-{depth}.db'}", writer=True)
        fresh = Indexer(fresh_engine, net.chain.url, cx.deployment)
        fresh.catch_up()
        expected = dump(fresh_engine)
        assert fresh.check_consistency(cx.plat) == []
        fresh.close()
        fresh_engine.dispose()
        for node in NODES:
            assert _reorgs_seen(net, node) > reorgs_before[node], (depth, node)
            engine = _node_engine(net, node)
            try:
                assert_same(dump(engine), expected)
            finally:
                engine.dispose()
        # as a member sees it: the orphaned loans are gone everywhere, the new ones are there
        for node in NODES:
            s = net.session("auditor", node)
            assert s.get(f"/v1/loans/0x{old[-1].loan_id.hex()}").status_code == 404, node
            got = s.get(f"/v1/loans/0x{new[0].loan_id.hex()}")
            assert got.status_code == 200 and got.json()["principal"] == 700_000, node
            expo = s.get(f"/v1/borrowers/0x{borrowers[0].hex()}/exposure").json()
            assert expo["total_exposure"] == 700_000, (node, expo)
    for node in NODES:
        assert all(_rows_of(net, node, lid) == 0 for lid in orphaned_ids), node
