"""The indexer on real anvil chains, into SQLite and (with TEST_DATABASE_URL) PostgreSQL:
equivalence with the contract views, reorgs, SIGKILL mid-catch-up, adaptive ranges, concurrent
indexers, follow mode, and the aggregates a migration fills in."""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from api.service.prepayments import in_force_indexed
from ledger import prepayment
from ledger.bench.indexer import make_events
from ledger.chain.rpc import ResultTooLarge, Rpc, RpcError
from ledger.domain import CoLoan
from ledger.indexer import Indexer, IndexerError
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap
from ledger.schedule import Instalment
from ledger.store import db
from ledger.store.models import SERVICING_TABLES, TABLES
from tests.dbs import PG_URL, Databases, assert_same, dbs_fixture, dump  # noqa: F401
from tests.workload import Workload, admit_guarantor, servicing_story

ROOT = Path(__file__).resolve().parents[1]


def _rpc(cx: LocalConsortium, method: str, params: list | None = None) -> Any:
    return cx.gov.w3.provider.make_request(method, params or [])["result"]


def _head(cx: LocalConsortium) -> int:
    return int(_rpc(cx, "eth_blockNumber"), 16)


def _log_count(url: str, cx: LocalConsortium) -> int:
    dep = cx.deployment
    with Rpc(url) as rpc:
        return len(
            rpc.get_logs(
                dep.deployment_block, rpc.block_number(), [dep.registry, dep.ledger, dep.servicing]
            )
        )


def _index(dbs: Databases, url: str, cx: LocalConsortium, **kw: Any) -> tuple[Indexer, sa.Engine]:
    engine = dbs.engine()
    return Indexer(engine, url, cx.deployment, **kw), engine


PREPAID: list[tuple[CoLoan, tuple[Instalment, ...]]] = []  # the workload's prepaid loan


@pytest.fixture(scope="module")
def workload() -> Iterator[tuple[LocalChain, LocalConsortium]]:
    """Lines, loans, repayments, status changes and registry events across three lenders, and
    LoanServicing's guarantees, compensation, classifications and recovery."""
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        done = Workload(cx, seed=5).run(160)
        assert done["loan"] > 10 and done["repay"] > 10 and done["line"] > 2
        PREPAID.append(servicing_story(cx, admit_guarantor(cx)))
        yield chain, cx


def test_random_workload_aggregates_equal_the_contract_views(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    chain, cx = workload
    ix, engine = _index(dbs, chain.url, cx)
    res = ix.catch_up()
    assert res.events == _log_count(chain.url, cx) and res.last_block == _head(cx)
    assert ix.check_consistency(cx.plat) == []
    with engine.connect() as conn:
        names = set(conn.execute(sa.select(TABLES["raw_events"].c.event)).scalars())
        exposures = conn.execute(sa.select(TABLES["borrower_exposure"])).mappings().all()
        usage = dict(conn.execute(sa.select(TABLES["lender_usage"])).all())
        drawn = conn.execute(
            sa.select(sa.func.count()).where(TABLES["loans"].c.line_id.is_not(None))
        ).scalar()
    assert {"LoanOriginated", "LineGranted", "LineEnded", "Repaid", "LoanStatusChanged",
            "LoanRejected", "CapitalAttested", "MemberAdmitted"} <= names  # fmt: skip
    assert drawn and exposures and len(usage) == 3  # the workload reached every aggregate
    for row in exposures:  # spot check through the client, as a user would
        view = cx.plat.borrower_exposure(row["borrower_key"])
        assert (view["consumer"], view["business"]) == (row["consumer"], row["business"])
    for lender, total in usage.items():
        assert cx.plat.lender_usage(lender, cx.platform.address)["total"] == total
    assert ix.catch_up().events == 0  # caught up: nothing twice


def test_consistency_check_names_a_tampered_aggregate(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    chain, cx = workload
    ix, engine = _index(dbs, chain.url, cx)
    ix.catch_up()
    exposure, usage = TABLES["borrower_exposure"], TABLES["lender_usage"]
    pairs = TABLES["borrower_lenders"]
    with engine.begin() as conn:
        key = conn.execute(sa.select(exposure.c.borrower_key).limit(1)).scalar()
        conn.execute(
            exposure.update()
            .where(exposure.c.borrower_key == key)
            .values(consumer=exposure.c.consumer + 1)
        )
        conn.execute(usage.update().values(total=usage.c.total - 1))
        conn.execute(pairs.delete().where(pairs.c.borrower_key == key))
        # LoanServicing's rows: a milder classification, a payout and a guarantee gone
        classes, paid = TABLES["classifications"], TABLES["compensations"]
        conn.execute(classes.update().where(classes.c.category == 2).values(category=1))
        conn.execute(paid.delete().where(paid.c.idx == 1))
        conn.execute(TABLES["guarantee_releases"].delete())
    kinds = {m.kind for m in ix.check_consistency(cx.plat)}
    assert {"borrower_exposure", "lender_usage", "borrower_lender"} <= kinds
    assert {"classification", "compensation", "guarantee", "guarantor"} <= kinds


def test_rollback_to_any_block_equals_a_fresh_index_up_to_it(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    chain, cx = workload
    ix, engine = _index(dbs, chain.url, cx)
    ix.catch_up()
    head = ix.last_block
    points = sorted(random.Random(3).sample(range(cx.deployment.deployment_block, head), 4))
    for k in reversed(points):  # each rollback undoes a longer stretch of events
        assert ix.rollback_to(k) > 0
        fresh, fresh_engine = _index(dbs, chain.url, cx)
        fresh.catch_up(to_block=k)
        assert_same(dump(engine), dump(fresh_engine))
    ix.catch_up()
    assert ix.last_block == head and ix.check_consistency(cx.plat) == []


def test_upgrading_from_the_first_migration_fills_the_aggregates(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    """The SQL definitions in migration 0002 and the indexer's incremental ones agree."""
    chain, cx = workload
    ix, engine = _index(dbs, chain.url, cx)
    ix.catch_up()
    maintained = dump(engine)
    db.downgrade(engine, "0001")
    db.upgrade(engine)
    # what 0002 fills (columns and tables of later revisions come back empty: 0004's schedule
    # digests, 0005's LoanServicing rows, which the indexer writes again)
    aggregates = ("borrower_exposure", "borrower_lenders", "lender_usage", "lender_partner_usage")
    upgraded = dump(engine)
    assert_same({t: maintained[t] for t in aggregates}, {t: upgraded[t] for t in aggregates})
    assert all(upgraded[t] == [] for t in SERVICING_TABLES)


def test_a_database_indexed_before_loan_servicing_is_indexed_again(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    """A database from before migration 0005 holds none of LoanServicing's events; once
    upgraded, the indexer indexes the deployment again and it equals a fresh index. Its rows are
    what the chain says: each bank's classification with its previous one, the guarantees, the
    compensation and the recovery per tranche."""
    chain, cx = workload
    ix, engine = _index(dbs, chain.url, cx)
    ix.catch_up()
    indexed = dump(engine)
    db.downgrade(engine, "0004")
    db.upgrade(engine)
    again = Indexer(engine, chain.url, cx.deployment)
    again.prepare()
    assert again.last_block == cx.deployment.deployment_block - 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(TABLES["loans"])).scalar() == 0
    again.catch_up()
    assert_same(indexed, dump(engine))
    t = TABLES
    with engine.connect() as conn:
        classes = conn.execute(
            sa.select(t["classifications"].c.previous, t["classifications"].c.category)
            .order_by(t["classifications"].c.block_number)
        ).all()  # fmt: skip
        assert [tuple(r) for r in classes] == [(None, 0), (0, 2)]
        guarantees = conn.execute(sa.select(t["guarantees"])).mappings().all()
        released = conn.execute(sa.select(t["guarantee_releases"])).mappings().all()
        paid = conn.execute(sa.select(t["compensations"])).mappings().all()
        recovered = conn.execute(sa.select(t["recoveries"])).mappings().all()
    assert len(guarantees) == 2 and len(released) == 1
    (bad,) = {r["loan_id"] for r in paid}
    assert [r["payout"] for r in sorted(paid, key=lambda r: r["idx"])] == cx.plat.compensation_of(
        bad
    )
    assert {r["loan_id"] for r in recovered} == {bad}
    assert sum(r["share"] for r in recovered) == 12_345 == cx.plat.recovered(bad)
    # the prepayment: the node replays the schedule in force from its own rows, no chain call
    (ev,) = cx.plat.events("Prepaid", from_block=cx.deployment.deployment_block)
    (early, committed), paid = PREPAID[-1], PREPAID[-1][1][0].principal + 50_000
    with engine.connect() as conn:
        (row,) = conn.execute(sa.select(t["prepayments"])).mappings().all()
        assert (row["loan_id"], row["principal"]) == (early.loan_id, 50_000)
        force = in_force_indexed(conn, early.loan_id, committed)
    assert force.digest == bytes(ev.args["scheduleDigest"]) == row["schedule_digest"]
    assert force.rows == prepayment.InForce(committed).prepay(paid).rows
    assert [i.word() for i in force.rows] == list(ev.args["schedule"])
    # another servicing contract than the one indexed is refused
    other = dataclasses.replace(cx.deployment, servicing=cx.deployment.registry)
    with pytest.raises(IndexerError, match="servicing contract"):
        Indexer(engine, chain.url, other).prepare()


class RefusingRpc(Rpc):
    """A node that refuses eth_getLogs over more than `limit` blocks, as public nodes do."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(url)
        self.limit, self.spans, self.refused = limit, [], 0

    def get_logs(self, from_block: int, to_block: int, addresses: Any, **kw: Any) -> list[dict]:
        if to_block - from_block + 1 > self.limit:
            self.refused += 1
            raise RpcError("eth_getLogs", {"code": -32005, "message": "block range too large"})
        self.spans.append(to_block - from_block + 1)
        return super().get_logs(from_block, to_block, addresses, **kw)


def test_ranges_shrink_when_refused_and_grow_when_they_succeed(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    chain, cx = workload
    normal, normal_engine = _index(dbs, chain.url, cx)
    normal.catch_up()
    for start in (1_000, 1):
        rpc = RefusingRpc(chain.url, 5)
        engine = dbs.engine()
        ix = Indexer(engine, rpc, cx.deployment, span=start)
        res = ix.catch_up()
        assert res.refused_ranges == rpc.refused > 0
        assert max(rpc.spans) <= 5 and len(rpc.spans) == res.ranges
        if start == 1:
            assert rpc.spans[:3] == [1, 2, 4]  # doubling after each success
        assert_same(dump(normal_engine), dump(engine))


class MeasuringRpc(Rpc):
    """Records the span and the number of logs of every eth_getLogs answered in full."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.answers: list[tuple[int, int]] = []

    def get_logs(self, from_block: int, to_block: int, addresses: Any, **kw: Any) -> list[dict]:
        logs = super().get_logs(from_block, to_block, addresses, **kw)
        self.answers.append((to_block - from_block + 1, len(logs)))
        return logs


@pytest.fixture(scope="module")
def quiet_then_busy() -> Iterator[tuple[LocalChain, LocalConsortium]]:
    """2,000 empty blocks, then blocks of about 1,800 co-loans each (3,000 in all)."""
    from ledger.bench.memory import chain_args, record_history

    with LocalChain("anvil", extra_args=chain_args()) as chain:
        cx = bootstrap(chain.url)
        _rpc(cx, "anvil_mine", [hex(2_000), "0x0"])
        record_history(chain.url, cx, 3_000)
        yield chain, cx


def test_a_range_that_outgrows_its_byte_cap_is_cut_and_nothing_is_lost(
    dbs: Databases, quiet_then_busy: tuple[LocalChain, LocalConsortium]
) -> None:
    chain, cx = quiet_then_busy
    # Uncapped, the span grown over the quiet blocks swallows the whole busy stretch at once.
    wide = MeasuringRpc(chain.url)
    uncapped, uncapped_engine = _index(dbs, wide, cx, max_range_bytes=2**40)
    full = uncapped.catch_up()
    assert full.oversized_ranges == 0
    assert max(n for _, n in wide.answers) >= 3_000

    cap = 1_000_000
    rpc = MeasuringRpc(chain.url)
    ix, engine = _index(dbs, rpc, cx, max_range_bytes=cap)
    res = ix.catch_up()
    assert res.oversized_ranges >= 1
    # every log is over 1,000 bytes of JSON, so no answer for several blocks held more than this
    assert all(n <= cap // 1_000 for span, n in rpc.answers if span > 1)
    assert_same(dump(uncapped_engine), dump(engine))
    assert res.events == full.events

    # one block cannot be split: its answer is taken whole, however large
    where = [cx.deployment.registry, cx.deployment.ledger]
    busiest = _head(cx)  # the history's last blocks are busy ones
    assert len(rpc.get_logs(busiest, busiest, where, max_bytes=cap)) > 1_000
    with pytest.raises(ResultTooLarge) as exc:
        rpc.get_logs(busiest - 1, busiest, where, max_bytes=cap)
    assert exc.value.reached in (busiest - 1, busiest)


def test_two_indexers_on_one_database_never_apply_a_range_twice(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    chain, cx = workload
    url = dbs.new()
    indexers = [
        Indexer(dbs.engine(url), chain.url, cx.deployment, span=2, max_span=2) for _ in "ab"
    ]
    errors: list[BaseException] = []

    def run(ix: Indexer) -> None:
        try:
            ix.catch_up()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(ix,)) for ix in indexers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    fresh, fresh_engine = _index(dbs, chain.url, cx)
    fresh.catch_up()
    assert_same(dump(fresh_engine), dump(dbs.engine(url)))
    # and the raw events are unique on (block hash, log index)
    with pytest.raises(sa.exc.IntegrityError), fresh_engine.begin() as conn:
        row = conn.execute(sa.select(TABLES["raw_events"]).limit(1)).mappings().one()
        conn.execute(
            TABLES["raw_events"].insert(), {**row, "block_number": row["block_number"] + 10**9}
        )


def test_confirmations_keep_the_indexer_behind_the_head(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    chain, cx = workload
    ix, _ = _index(dbs, chain.url, cx, confirmations=3)
    assert ix.catch_up().last_block == _head(cx) - 3


def test_another_deployment_is_refused(
    dbs: Databases, workload: tuple[LocalChain, LocalConsortium]
) -> None:
    chain, cx = workload
    url = dbs.new()
    Indexer(dbs.engine(url), chain.url, cx.deployment).catch_up()
    other = dataclasses.replace(cx.deployment, ledger=cx.deployment.registry)
    with pytest.raises(IndexerError, match="not this deployment"):
        Indexer(dbs.engine(url), chain.url, other).prepare()


@pytest.mark.parametrize("new_branch", ["longer", "shorter"])
def test_reorg_rolls_back_to_the_common_ancestor_and_equals_a_fresh_index(
    dbs: Databases, new_branch: str
) -> None:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        Workload(cx, seed=21).run(30)  # common history
        snap = _rpc(cx, "evm_snapshot")
        ancestor = _head(cx)
        Workload(cx, seed=22).run(40)  # the branch that will be orphaned
        ix, engine = _index(dbs, chain.url, cx)
        ix.catch_up()
        old_head = ix.last_block
        _rpc(cx, "evm_revert", [snap])
        cx.reset_clients()
        Workload(cx, seed=23).run(70 if new_branch == "longer" else 8)
        if new_branch == "longer":
            while _head(cx) <= old_head:
                _rpc(cx, "evm_mine")
        assert (_head(cx) > old_head) == (new_branch == "longer")
        res = ix.catch_up()
        assert res.reorgs == 1 and res.rolled_back_events > 0
        with engine.connect() as conn:  # nothing the ancestor had was undone
            assert (
                conn.execute(sa.select(sa.func.max(TABLES["blocks"].c.number))).scalar() >= ancestor
            )
        fresh, fresh_engine = _index(dbs, chain.url, cx)
        fresh.catch_up()
        assert_same(dump(engine), dump(fresh_engine))
        assert ix.check_consistency(cx.plat) == []


def test_follow_mode_indexes_new_blocks_and_rides_out_a_reorg(dbs: Databases) -> None:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        ix, engine = _index(dbs, chain.url, cx)
        ix.prepare()  # the tables exist before the test looks into them
        stop = threading.Event()
        runner = threading.Thread(target=ix.follow, kwargs={"poll_interval": 0.02, "stop": stop})
        runner.start()

        def indexed(loan_id: bytes) -> bool:
            with engine.connect() as conn:
                t = TABLES["loans"]
                return (
                    conn.execute(sa.select(t.c.loan_id).where(t.c.loan_id == loan_id)).first()
                    is not None
                )

        def wait_for(cond: Any) -> None:
            deadline = time.monotonic() + 20
            while not cond():
                assert runner.is_alive() and time.monotonic() < deadline
                time.sleep(0.02)

        try:
            snap = _rpc(cx, "evm_snapshot")
            old = cx.loan(500_000)
            cx.plat.originate(old, cx.sign(old))
            wait_for(lambda: indexed(old.loan_id))
            _rpc(cx, "evm_revert", [snap])
            cx.reset_clients()
            new = cx.loan(700_000)
            cx.plat.originate(new, cx.sign(new))
            wait_for(lambda: indexed(new.loan_id) and not indexed(old.loan_id))
        finally:
            stop.set()
            runner.join(10)
        assert not runner.is_alive()
        assert ix.check_consistency(cx.plat) == []


@pytest.fixture(scope="module")
def bulk(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalChain, LocalConsortium, Path]]:
    """Several thousand events: 3,000 co-loans in batches of 50, 750 repayments."""
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        make_events(cx, 3_000)
        dep = tmp_path_factory.mktemp("bulk") / "deployment.json"
        cx.deployment.save(dep)
        yield chain, cx, dep


def _cursor(engine: sa.Engine) -> int | None:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(TABLES["indexer_cursor"].c.last_block)).scalar()
    except sa.exc.DBAPIError:
        return None  # not created yet


def test_sigkill_during_catch_up_then_restart_equals_a_fresh_index(
    dbs: Databases, bulk: tuple[LocalChain, LocalConsortium, Path]
) -> None:
    chain, cx, dep = bulk
    url = dbs.new()
    engine = dbs.engine(url, writer=False)
    head = _head(cx)
    cmd = [sys.executable, "-m", "ledger.cli", "index", "--rpc-url", chain.url,
           "--deployment", str(dep), "--database-url", url, "--max-span", "1",
           "--json"]  # fmt: skip
    env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}"}
    rng = random.Random(9)
    killed_mid_way = 0
    for _ in range(3):
        before = _cursor(engine) or 0
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while (
            proc.poll() is None and (_cursor(engine) or 0) <= before and time.monotonic() < deadline
        ):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        at = _cursor(engine) or 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_mid_way += before < at < head
        proc.wait()
    assert killed_mid_way >= 2
    done = subprocess.run(
        [*cmd, "--check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert '"mismatches": []' in done.stdout
    assert _cursor(engine) == head
    fresh, fresh_engine = _index(dbs, chain.url, cx)
    assert fresh.catch_up().events == _log_count(chain.url, cx)
    assert_same(dump(engine), dump(fresh_engine))


def test_benchmark_smoke() -> None:
    from ledger.bench.indexer import run

    result = run(loans=60, runs=1, pg_url=PG_URL)
    assert result["events"] >= 60
    for kind in ("sqlite", "postgresql") if PG_URL else ("sqlite",):
        assert result[kind]["runs"][0]["events"] == result["events"]
        assert result[kind]["median_events_per_s"] > 0


def test_indexes_anvil_and_hardhat_nodes(cx: LocalConsortium, tmp_path: Path) -> None:
    """On each of the session's chains (anvil and Hardhat node): demo data, SQLite."""
    from ledger.localnet.seed import seed

    seed(cx)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'n.db'}", writer=True)
    ix = Indexer(engine, cx.rpc_url, cx.deployment)
    assert ix.catch_up().events > 10
    assert ix.check_consistency(cx.plat) == []
    engine.dispose()


def test_a_catch_up_freezes_older_objects_and_gives_them_back() -> None:
    import gc

    from ledger.ingest.heap import older_objects_frozen

    assert gc.get_freeze_count() == 0
    with older_objects_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()  # the process froze objects itself: left as it is
    try:
        frozen = gc.get_freeze_count()
        with older_objects_frozen():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
