"""A node's processes (issue 18): its follower (the indexer and the alert watcher) in a process of
its own, started, restarted and stopped by the node process; several HTTP processes (`workers`)
where that is safe; and what those processes share held in the node's database, so a rate limit
and an idempotent write hold across them.

Two HTTP processes of one node are started here the plain way too: a second `python -m api` on
another port with the node's own key and database (reading the chain directly, keepers off), so
a client can be sent to each process in turn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from ledger.bench.api import group_pids
from ledger.localnet import nodes
from ledger.localnet.processes import free_port
from ledger.nodeclient import NodeSession
from tests.api_support import Consortium, account, loan_body, problem, running_consortium

ROOT = Path(__file__).resolve().parents[1]
SLOW = 0.01  # tokens a second: an emptied bucket stays empty for the whole test
BURST = 4


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    overrides = {
        "bank-a": {"limits": {"rate_per_s": SLOW, "burst": BURST}},
        "bank-b": {"workers": 2},
    }
    with running_consortium(tmp_path_factory.mktemp("workers"), overrides) as c:
        c.data["second"] = {}
        try:
            yield c
        finally:
            for proc, _url in c.data["second"].values():
                proc.terminate()
                proc.wait(10)


def _wait(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _info(net: Consortium, name: str) -> nodes.NodeInfo:
    return next(i for i in nodes.recorded(net.state) if i.name == name)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _followers(pid: int) -> list[int]:
    return [p for p in group_pids(pid) if "api.follower" in _cmdline(p)]


def _http_workers(pid: int) -> list[int]:
    return [p for p in group_pids(pid) if "--worker-of" in _cmdline(p)]


def _second_process(net: Consortium, name: str) -> str:
    """Another HTTP process of node `name`: its key and database, another port; its URL."""
    if name in net.data["second"]:
        return net.data["second"][name][1]
    info = _info(net, name)
    cfg = json.loads(Path(info.config).read_text())
    cfg.update(port=free_port(), read_model="chain", line_keeper_s=0, dpd_keeper_s=0)
    path = Path(info.config).with_name("second.json")
    path.write_text(json.dumps(cfg))
    proc = nodes._spawn(path)  # as the tooling starts a node, logging beside the first
    url = f"http://127.0.0.1:{cfg['port']}"
    net.data["second"][name] = (proc, url)
    nodes._wait_ready(replace(info, url=url, config=str(path)), proc, time.monotonic() + 30)
    return url


def test_a_client_hitting_both_processes_of_a_node_sees_one_rate_limit(net: Consortium) -> None:
    first, second = net.urls["bank-a"], _second_process(net, "bank-a")
    with NodeSession.signed_in(first, account("bank-a")) as a:
        b = NodeSession(second, a.token)  # one token, valid on both: it is in the database
        path = "/v1/borrowers/0x" + "11" * 32 + "/exposure"
        got = [(a if i % 2 == 0 else b).get(path).status_code for i in range(BURST + 2)]
        b.close()
    # one bucket for the caller, not one per process (that would have served all six)
    assert got == [200] * BURST + [429, 429]


def test_an_idempotency_key_raced_across_two_processes_yields_one_record(
    net: Consortium,
) -> None:
    urls = [net.urls["platform"], _second_process(net, "platform")]
    body = loan_body("race-1", {"platform": 400_000, "bank-a": 300_000, "bank-b": 300_000})
    with NodeSession.signed_in(urls[0], account("platform")) as s0:
        sessions = [NodeSession(u, s0.token) for u in urls for _ in range(3)]
        answers: list[httpx.Response] = []
        gate = threading.Barrier(len(sessions))

        def post(s: NodeSession) -> None:
            gate.wait()
            answers.append(s.post("/v1/loans", body))

        threads = [threading.Thread(target=post, args=(s,)) for s in sessions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        created = [r for r in answers if r.status_code == 201]
        codes = [problem(r)["code"] for r in answers if r.status_code != 201]
        # the others were told it is being written; under heavy load the winner may instead
        # have been answered 503 by a lender's node, which records nothing: the retry below
        assert set(codes) <= {"RequestInProgress", "LenderNodeUnavailable"}, [
            (r.status_code, r.text) for r in answers
        ]
        assert len({r.json()["tx_hash"] for r in created}) <= 1
        # a retry on either process gets the one record (replayed, or written now)
        done = [s.post("/v1/loans", body) for s in (sessions[0], sessions[-1])]
        assert [r.status_code for r in done] == [201, 201], [r.text for r in done]
        assert done[-1].headers["idempotent-replayed"] == "true"
        created += done
        assert len({r.json()["tx_hash"] for r in created}) == 1
        for s in sessions:
            s.close()
    loan_id = bytes.fromhex(created[0].json()["loan_id"][2:])
    events = net.cx.plat.events("LoanOriginated", from_block=0, loanId=loan_id)
    assert len(events) == 1


def test_a_lender_node_with_two_workers_has_one_follower_and_restarts_a_dead_worker(
    net: Consortium,
) -> None:
    info = _info(net, "bank-b")
    assert len(_followers(info.pid)) == 1
    (worker,) = _http_workers(info.pid)
    os.kill(worker, signal.SIGKILL)
    _wait(lambda: len(_http_workers(info.pid)) == 1 and worker not in _http_workers(info.pid),
          "the worker started again")  # fmt: skip
    # the node kept serving meanwhile, and serves its writes' reads: a loan it co-signed is
    # listed at once through whichever process takes the connection
    body = loan_body("two-workers", {"platform": 400_000, "bank-a": 300_000, "bank-b": 300_000})
    made = net.session("platform", "platform").post("/v1/loans", body)
    assert made.status_code == 201, made.text
    key = made.json()["borrower_key"]
    for _ in range(4):
        with NodeSession.signed_in(info.url, account("bank-b")) as s:
            listed = s.get("/v1/loans", params={"borrower_key": key}).json()
            assert listed["count"] == 1 and listed["loans"][0]["outstanding"] == 1_000_000


def test_a_platform_node_refuses_more_than_one_worker_in_one_line(net: Consortium) -> None:
    info = _info(net, "platform")
    cfg = json.loads(Path(info.config).read_text())
    path = Path(info.config).with_name("workers.json")
    path.write_text(json.dumps({**cfg, "workers": 2}))
    r = subprocess.run(
        [sys.executable, "-m", "api", "--config", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("python -m api: platform: workers: a platform node serves with 1 "), (
        r.stderr
    )


def test_the_follower_is_restarted_and_readiness_reports_it_meanwhile(net: Consortium) -> None:
    info = _info(net, "bank-c")
    (follower,) = _followers(info.pid)
    os.kill(follower, signal.SIGKILL)
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        r = http.get(f"{info.url}/readyz")
        if r.status_code == 503:  # unless it was started again before this asked
            assert "the indexer process" in problem(r)["detail"]
        _wait(lambda: http.get(f"{info.url}/readyz").status_code == 200, "bank-c ready again")
    (again,) = _followers(info.pid)
    assert again != follower
    # read-after-write holds with the new follower
    body = loan_body("after-restart", {"platform": 400_000, "bank-a": 300_000, "bank-c": 300_000})
    made = net.session("platform", "platform").post("/v1/loans", body)
    assert made.status_code == 201, made.text
    with NodeSession.signed_in(info.url, account("bank-c")) as s:
        key = made.json()["borrower_key"]
        expo = s.get(f"/v1/borrowers/{key}/exposure").json()
        assert expo["own_exposure"] == 300_000
        assert expo["as_of_block"] >= made.json()["block_number"]


def test_a_killed_node_leaves_no_follower_or_worker_behind(net: Consortium) -> None:
    info = _info(net, "bank-b")
    children = _followers(info.pid) + _http_workers(info.pid)
    assert len(children) == 2
    os.kill(info.pid, signal.SIGKILL)  # the node process alone, not its group
    _wait(lambda: not any(Path(f"/proc/{p}").exists() and _cmdline(p) for p in children),
          "its follower and worker gone")  # fmt: skip


def test_connections_accepted_on_the_shared_socket_have_nagle_off() -> None:
    """The socket a node with several workers binds (api/workers.py `listen`) says it is TCP, so
    asyncio turns Nagle's algorithm off on each connection it accepts, as it does for a socket
    uvicorn binds itself. Without it each response (headers, then body: two writes) waited for
    the client's delayed ACK: an 8-client exposure p50 of 44 ms with two workers, 7 ms now."""
    import asyncio
    import socket

    from api.workers import listen

    async def main() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        sock = listen("127.0.0.1", free_port())
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        try:
            port = sock.getsockname()[1]
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(accepted, 10)
            finally:
                writer.close()
        finally:
            server.close()

    assert asyncio.run(main()) != 0
