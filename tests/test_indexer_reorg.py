"""A reorg that orphans every kind of event the indexer projects (the registry's, the ledger's and
LoanServicing's), on records from before the common ancestor as well as new ones, leaves the read
model equal to one indexed fresh from the surviving chain (on real anvil, into SQLite and, with
TEST_DATABASE_URL, PostgreSQL)."""

from __future__ import annotations

import copy
from typing import Any

import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.domain import Role
from ledger.indexer import Indexer
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap
from ledger.store.models import SERVICING_TABLES, TABLES
from tests.dbs import Databases, assert_same, dbs_fixture, dump  # noqa: F401
from tests.workload import Workload, admit_guarantor, servicing_story

LEDGER_EVENTS = {
    "LoanOriginated",
    "LineGranted",
    "LineEnded",
    "Repaid",
    "LoanStatusChanged",
    "LoanRejected",
}
REGISTRY_EVENTS = {
    "MemberAdmitted",
    "MemberStatusChanged",
    "MemberFrozen",
    "CapitalAttested",
    "PolicyUpdated",
    "OwnershipTransferStarted",
    "Paused",
    "Unpaused",
}
SERVICING_EVENTS = {"GuaranteeRecorded", "GuaranteeReleased", "Compensated", "Classified",
                    "Recovered"}  # fmt: skip


def _rpc(cx: LocalConsortium, method: str, params: list | None = None) -> Any:
    return cx.gov.w3.provider.make_request(method, params or [])["result"]


def _head(cx: LocalConsortium) -> int:
    return int(_rpc(cx, "eth_blockNumber"), 16)


def _orphaned_branch(w: Workload, g: LocalAccount) -> None:
    """Every kind of event, many on loans and lines recorded before the branch point."""
    for _ in range(3):
        w.line()
    w.rejected_batch()
    w.run(50)
    for _ in range(6):
        w.status()
        w.repay()
    for _ in range(3):
        w.end_line()
    for _ in range(4):
        w.registry()
    servicing_story(w.cx, g)
    cx, newcomer = w.cx, Account.create().address
    cx.gov.admit_member(newcomer, Role.LENDER, "Newcomer Bank")
    cx.gov.suspend_member(newcomer)
    cx.gov.transfer_governor(newcomer)
    cx.gov.pause()
    cx.gov.unpause()


def test_a_reorg_across_every_event_kind_equals_a_fresh_index(dbs: Databases) -> None:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        w = Workload(cx, seed=41)
        w.run(60)  # common history
        g = admit_guarantor(cx)
        servicing_story(cx, g)
        snap = _rpc(cx, "evm_snapshot")
        ancestor = _head(cx)
        kept = copy.deepcopy((w.loans, w.lines))
        _orphaned_branch(w, g)
        old_head = _head(cx)
        engine = dbs.engine()
        ix = Indexer(engine, chain.url, cx.deployment)
        ix.catch_up()
        raw = TABLES["raw_events"]
        with engine.connect() as conn:
            orphaned = set(
                conn.execute(sa.select(raw.c.event).where(raw.c.block_number > ancestor)).scalars()
            )
        every = LEDGER_EVENTS | REGISTRY_EVENTS | SERVICING_EVENTS
        assert orphaned >= every, every - orphaned
        with engine.connect() as conn:  # each servicing table has rows on both sides
            for name in SERVICING_TABLES:
                t = TABLES[name]
                blocks = set(conn.execute(sa.select(t.c.block_number)).scalars())
                assert min(blocks) <= ancestor < max(blocks), name

        _rpc(cx, "evm_revert", [snap])
        cx.reset_clients()
        w.loans, w.lines = kept
        w.run(30)  # the surviving branch, on the same borrowers
        servicing_story(cx, g)
        while _head(cx) <= old_head:
            _rpc(cx, "evm_mine")
        res = ix.catch_up()
        assert res.reorgs == 1 and res.rolled_back_events > 0

        fresh_engine = dbs.engine()
        fresh = Indexer(fresh_engine, chain.url, cx.deployment)
        fresh.catch_up()
        assert_same(dump(engine), dump(fresh_engine))
        assert ix.check_consistency(cx.plat) == []
        ix.close()
        fresh.close()
