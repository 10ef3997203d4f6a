"""PostgreSQL restarted under load: the nodes say they are not ready and answer 503 problems
while it is down, recover by themselves when it is back, and lose nothing.

The test runs its own PostgreSQL server (Debian's binaries, as the `postgres` OS user when run
as root) on a free loopback port: the machine's shared server is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.indexer import Indexer
from ledger.localnet.chains import rpc_call
from ledger.localnet.consortium import DEFAULT_LOAN_BALANCE, DEFAULT_TIER1
from ledger.localnet.processes import free_port
from ledger.store.db import make_engine
from ledger.store.models import TABLES
from tests.api_support import Consortium, address, loan_body, problem, running_consortium
from tests.dbs import assert_same, dump

PG_BIN = Path(os.environ.get("LEDGER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
NODES = ("platform", "bank-a", "bank-b", "bank-c", "auditor")
P, A = "platform", "bank-a"

pytestmark = pytest.mark.skipif(
    not all((PG_BIN / b).is_file() for b in ("initdb", "pg_ctl", "postgres")),
    reason=f"no PostgreSQL server binaries in {PG_BIN} (initdb, pg_ctl, postgres)",
)


class PrivatePostgres:
    """A throw-away PostgreSQL server: its own data directory, port and socket directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-test-pg-"))
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(PG_BIN / "initdb", "-D", self.dir / "data", "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")  # fmt: skip

    def _run(self, *argv: Any) -> None:
        done = subprocess.run(
            [*self._as, *map(str, argv)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{argv[0]} failed: {done.stdout}\n{done.stderr}"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-o", opts,
                  "-l", self.dir / "server.log", "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "immediate") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", mode, "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [*self._as, str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate",
             "-w", "stop"], capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def _wait(cond: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.1)


class Load:
    """A platform client posting co-loans and a bank reading exposure, until stopped (bounded
    in count). Every answer is kept: status and, for errors, the problem document."""

    def __init__(self, net: Consortium, limit: int = 400) -> None:
        self.net, self.limit = net, limit
        self.bodies: dict[str, dict[str, Any]] = {}
        self.answers: list[tuple[str, int, dict[str, Any] | None]] = []  # (what, status, problem)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        plat, bank = self.net.session(P, "platform"), self.net.session(A, "bank-a")
        key = "0x" + "5e" * 32
        try:
            for i in range(self.limit):
                if self.stop.is_set():
                    break
                loan_id = f"pg-restart-{i}"
                body = loan_body(loan_id, {P: 40_000, A: 30_000, "bank-b": 30_000})
                self.bodies[loan_id] = body
                self._keep(loan_id, plat.post("/v1/loans", body))
                self._keep("exposure", bank.get(f"/v1/borrowers/{key}/exposure"))
                time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def _keep(self, what: str, r: Any) -> None:
        self.answers.append((what, r.status_code, problem(r) if r.status_code >= 400 else None))

    def count(self, status: int) -> int:
        return sum(1 for _, s, _ in list(self.answers) if s == status)


def _node_url(net: Consortium, node: str) -> str:
    return json.loads((net.state / "nodes" / node / "config.json").read_text())["database_url"]


def _cursor(engine: sa.Engine) -> tuple[int, bytes]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(TABLES["indexer_cursor"])).mappings().one()
    return row["last_block"], bytes(row["last_hash"])


@pytest.mark.slow
def test_postgresql_restarted_under_load_nodes_recover_and_lose_nothing(
    pg: PrivatePostgres, tmp_path: Path
) -> None:
    with running_consortium(tmp_path, database_url=pg.url) as net:
        load = Load(net)
        load.thread.start()
        try:
            _wait(lambda: load.count(201) >= 5 or not load.thread.is_alive(), "5 loans before")
            pg.stop("immediate")
            # down: not ready, and requests are 503 problems, never a 500 or a stack trace
            for node in ("platform", "bank-a"):
                r = net.session(None, node).get("/readyz")
                p = problem(r)
                assert r.status_code == 503 and p["code"] == "NotReady", p
                assert p["database_reachable"] is False and p["chain_reachable"] is True
            r = net.session(A, "bank-a").get(f"/v1/borrowers/0x{'5e' * 32}/exposure")
            assert r.status_code == 503 and problem(r)["code"] == "DatabaseUnavailable"
            assert "Traceback" not in r.text and "psycopg" not in r.text
            # meanwhile another member records on chain: every node's indexer has a block to
            # write while its database is down
            cx = net.cx
            bank_c = cx.client(cx.lenders[2])
            bank_c.attest_capital(DEFAULT_TIER1, DEFAULT_LOAN_BALANCE, cx.now() + 86_400)
            failed = len([a for a in load.answers if a[1] >= 400])
            _wait(
                lambda: (
                    len([a for a in load.answers if a[1] >= 400]) >= failed + 6
                    or not load.thread.is_alive()
                ),
                "the load to meet the outage",
            )
            pg.start()
            # back: ready again without anyone touching the nodes, and the load goes through
            for node in NODES:
                s = net.session(None, node)
                _wait(lambda s=s: s.get("/readyz").status_code == 200, f"{node} ready again")
            ok_before = load.count(201)
            _wait(
                lambda: load.count(201) >= ok_before + 5 or not load.thread.is_alive(),
                "loans after",
            )
        finally:
            load.stop.set()
            load.thread.join(timeout=120)
        assert load.errors == [] and not load.thread.is_alive()
        refused = [(w, s, p) for w, s, p in load.answers if s >= 400]
        assert refused, "the outage went unnoticed"
        assert {s for _, s, _ in refused} == {503}, refused
        codes = {p["code"] for _, _, p in refused if p}
        assert codes <= {"DatabaseUnavailable", "LenderNodeUnavailable"}, codes
        # nothing lost: every loan the load tried is recorded once, on retry where it failed
        plat = net.session(P, "platform")
        for loan_id, body in load.bodies.items():
            r = plat.post("/v1/loans", body)
            assert r.status_code == 201, (loan_id, r.text)
        logs = net.cx.plat.ledger.events.LoanOriginated().get_logs(from_block=0)
        ids = [bytes(e["args"]["loanId"]) for e in logs]
        assert len(ids) == len(set(ids)) == len(load.bodies)
        # every node's read model catches up and equals a fresh index of the chain
        block = rpc_call(net.chain.url, "eth_getBlockByNumber", ["latest", False])
        head = (int(block["number"], 16), bytes.fromhex(block["hash"][2:]))
        fresh_engine = make_engine(f"{pg.url}?options=-csearch_path%3Dfresh", writer=True)
        with fresh_engine.begin() as conn:
            conn.execute(sa.text('CREATE SCHEMA IF NOT EXISTS "fresh"'))
        fresh = Indexer(fresh_engine, net.chain.url, net.cx.deployment)
        fresh.catch_up()
        assert fresh.check_consistency(net.cx.plat) == []
        expected = dump(fresh_engine)
        fresh.close()
        fresh_engine.dispose()
        for node in NODES:
            engine = make_engine(_node_url(net, node))
            try:
                _wait(lambda e=engine: _cursor(e) == head, f"{node} indexed the head")
                assert_same(dump(engine), expected)
            finally:
                engine.dispose()
        # and a member reads every loan through its node
        auditor = net.session("auditor", "auditor")
        for loan_id in list(load.bodies)[:: max(1, len(load.bodies) // 10)]:
            from ledger.domain import record_id

            r = auditor.get(f"/v1/loans/0x{record_id(address(P), loan_id).hex()}")
            assert r.status_code == 200, (loan_id, r.text)
