"""Idempotency claims live in the node's database, not in one process: two engines on one
database (two worker processes of a node, or two requests racing) claiming overlapping ids at
once, through the batch path (`claim_many`) and the single path (`put_pending`), each id is
claimed exactly once and the loser sees the winner's record."""

from __future__ import annotations

import threading

from api import store
from tests.dbs import Databases, dbs_fixture  # noqa: F401 - the `dbs` fixture


def _race(engines: list, keys: list[str]) -> None:
    wins: list[set[str]] = [set(), set(), set()]
    seen: list[set[str]] = [set(), set()]
    barrier = threading.Barrier(3)

    def batch(n: int, mine: list[str]) -> None:
        barrier.wait()
        claimed, others = store.claim_many(engines[n], "loan", {k: "h" for k in mine})
        wins[n] |= claimed
        seen[n] |= set(others)

    def single(mine: list[str]) -> None:
        barrier.wait()
        for k in mine:
            if store.put_pending(engines[1], "loan", k, "h", ""):
                wins[2].add(k)

    threads = [
        threading.Thread(target=batch, args=(0, keys[:40])),
        threading.Thread(target=batch, args=(1, keys[20:])),
        threading.Thread(target=single, args=(keys[10:50],)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every id claimed by exactly one of the three
    assert sorted(k for w in wins for k in w) == sorted(keys)
    # what a batch did not claim, it saw as another's record
    for n, asked in ((0, keys[:40]), (1, keys[20:])):
        assert set(asked) - wins[n] == seen[n]
    for k in keys:
        rec = store.get_record(engines[0], "loan", k)
        assert rec is not None and rec.state == "pending" and rec.pending == ""


def test_overlapping_claims_from_two_engines_claim_each_id_once(dbs: Databases) -> None:
    url = dbs.new()
    engines = [store.make_engine(url), store.make_engine(url)]
    try:
        for rnd in range(5):
            _race(engines, [f"r{rnd}-{i}" for i in range(60)])
    finally:
        for e in engines:
            e.dispose()


def test_claims_of_ids_already_done_return_the_stored_result(dbs: Databases) -> None:
    engine = store.make_engine(dbs.new())
    try:
        claimed, _ = store.claim_many(engine, "loan", {"a": "h1", "b": "h2"})
        assert claimed == {"a", "b"}
        store.save_pending_many(engine, "loan", {"a": '{"terms": 1}', "b": '{"terms": 2}'})
        store.finish_many(engine, "loan", {"a": (201, '{"ok": true}')})
        store.forget_many(engine, "loan", ["a", "b"])  # only pending claims go
        claimed, others = store.claim_many(engine, "loan", {"a": "h1", "b": "h2", "c": "h3"})
        assert claimed == {"b", "c"}
        assert (others["a"].state, others["a"].status_code) == ("done", 201)
        assert others["a"].response == '{"ok": true}'
    finally:
        engine.dispose()
