"""The indexer reads range k+1 while it writes range k: a reorg that lands after a range was read
ahead, before it is written, is still rolled back to the common ancestor (on real anvil, into
SQLite and, with TEST_DATABASE_URL, PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from ledger.chain.rpc import Header, Rpc
from ledger.indexer import Indexer
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap
from tests.dbs import Databases, assert_same, dbs_fixture, dump  # noqa: F401
from tests.workload import Workload


def _rpc(cx: LocalConsortium, method: str, params: list | None = None) -> Any:
    return cx.gov.w3.provider.make_request(method, params or [])["result"]


class ReorgAfterReadAhead(Rpc):
    """Runs `reorg` once, on the read-ahead thread, right after a range from `first` on was
    read in full (its logs, then its headers): that range is stale before it is written."""

    def __init__(self, url: str, first: int, reorg: Callable[[], None]) -> None:
        super().__init__(url)
        self.first, self.reorg = first, reorg
        self.read_from: int | None = None
        self.fired_at: int | None = None

    def get_logs(self, from_block: int, to_block: int, addresses: Any, **kw: Any) -> list[dict]:
        self.read_from = from_block
        return super().get_logs(from_block, to_block, addresses, **kw)

    def headers(self, numbers: Iterable[int]) -> dict[int, Header | None]:
        out = super().headers(list(numbers))
        ahead = threading.current_thread().name.startswith("ledger-index-fetch")
        if ahead and self.fired_at is None and (self.read_from or 0) >= self.first:
            self.fired_at = self.read_from
            self.reorg()
        self.read_from = None
        return out


def test_a_reorg_after_a_range_was_read_ahead_is_rolled_back(dbs: Databases) -> None:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        Workload(cx, seed=31).run(20)  # common history
        snap = _rpc(cx, "evm_snapshot")
        ancestor = int(_rpc(cx, "eth_blockNumber"), 16)
        Workload(cx, seed=32).run(30)  # the branch that will be orphaned
        old_head = int(_rpc(cx, "eth_blockNumber"), 16)

        def reorg() -> None:
            _rpc(cx, "evm_revert", [snap])
            cx.reset_clients()
            Workload(cx, seed=33).run(30)
            while int(_rpc(cx, "eth_blockNumber"), 16) <= old_head:
                _rpc(cx, "evm_mine")

        rpc = ReorgAfterReadAhead(chain.url, ancestor + 4, reorg)
        engine = dbs.engine()
        ix = Indexer(engine, rpc, cx.deployment, span=2, max_span=2)
        res = ix.catch_up()
        assert rpc.fired_at is not None and res.reorgs >= 1 and res.rolled_back_events > 0
        assert ix.last_block > old_head
        fresh_engine = dbs.engine()
        Indexer(fresh_engine, chain.url, cx.deployment).catch_up()
        assert_same(dump(engine), dump(fresh_engine))
        assert ix.check_consistency(cx.plat) == []
        ix.close()
