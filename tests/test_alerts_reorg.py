"""Alerts across a reorg (real anvil, the real indexer and alert watcher, SQLite): a block holding
a slip is orphaned and its signed transaction is included again in a later block of the branch
that wins, beside a new slip. The watcher keeps the first alert once under its id (an id names the
transaction, not the block) and finds the new one: nothing lost, nothing repeated."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from api.alerting import store
from api.alerting.service import AlertService
from ledger.domain import LoanStatus
from ledger.indexer import Indexer
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import bootstrap
from ledger.store import make_engine
from tests.workload import Workload


def _rpc(cx: Any, method: str, params: list | None = None) -> Any:
    reply = cx.gov.w3.provider.make_request(method, params or [])
    assert "error" not in reply, reply
    return reply["result"]


def _slips(engine: Any) -> list[store.AlertRecord]:
    return store.alerts_after(engine, 0, 100, types=["borrower.overdue"])


def _head(cx: Any) -> int:
    return int(_rpc(cx, "eth_blockNumber"), 16)


def test_a_reorged_slip_is_kept_once_and_the_new_branch_s_slip_is_found(tmp_path: Path) -> None:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        w = Workload(cx, seed=17)
        for _ in range(12):
            w.loan()
        # a bank that funds two active loans: both will slip
        funded: dict[str, list] = {}
        for loan, _outstanding, status in w.loans.values():
            if status == LoanStatus.ACTIVE:
                for t in loan.tranches[1:]:
                    funded.setdefault(t.lender, []).append(loan)
        member, (first, second) = next((m, ls[:2]) for m, ls in funded.items() if len(ls) >= 2)

        account = next(a for a in cx.lenders if a.address == member)
        ix = Indexer(make_engine(f"sqlite:///{tmp_path}/read.db"), chain.url, cx.deployment)
        ix.catch_up()
        ctx = SimpleNamespace(
            address=member,
            role="lender",
            engine=make_engine(f"sqlite:///{tmp_path}/api.db"),
            deployment=cx.deployment,
            client=cx.client(account),
        )
        svc = AlertService(ctx, SimpleNamespace(engine=ix.engine, indexer=ix))  # type: ignore[arg-type]
        svc.run_once()
        assert _slips(ctx.engine) == []

        # the branch that will be orphaned: `first` marked overdue
        snap = _rpc(cx, "evm_snapshot")
        tx = cx.plat.set_status(first, LoanStatus.OVERDUE, b"DPD".ljust(32, b"\0")).tx_hash
        raw = _rpc(cx, "eth_getRawTransactionByHash", [tx])
        orphaned_block = cx.plat.wait(tx).block_number
        _rpc(cx, "evm_mine")
        old_head = _head(cx)
        ix.catch_up()
        svc.run_once()
        (before,) = _slips(ctx.engine)
        assert (before.type, before.block) == ("borrower.overdue", orphaned_block)

        # the branch that wins: two empty blocks, the same signed transaction, then `second`
        _rpc(cx, "evm_revert", [snap])
        cx.reset_clients()
        for _ in range(2):
            _rpc(cx, "evm_mine")
        assert _rpc(cx, "eth_sendRawTransaction", [raw]) == tx
        # the client's own wait: anvil's automine can answer before the block is sealed, or
        # leave the transaction unmined until another arrives; the client mines one then
        again = cx.plat.wait(tx).block_number
        assert again != orphaned_block
        cx.reset_clients()
        cx.plat.set_status(second, LoanStatus.OVERDUE, b"DPD".ljust(32, b"\0"))
        while _head(cx) <= old_head:
            _rpc(cx, "evm_mine")
        ctx.client = cx.client(account)  # the reset closed the watcher's client
        res = ix.catch_up()
        assert res.reorgs == 1 and res.rolled_back_events > 0

        svc.run_once()
        after = _slips(ctx.engine)
        ids = [a.alert_id for a in after]
        assert len(ids) == len(set(ids)) == 2, ids
        assert ids[0] == before.alert_id  # the re-included transaction: the same alert, once
        subjects = {a.figures for a in after}
        assert any(first.loan_id.hex() in f for f in subjects)
        assert any(second.loan_id.hex() in f for f in subjects)
        _rpc(cx, "evm_mine")
        ix.catch_up()
        svc.run_once()
        assert [a.alert_id for a in _slips(ctx.engine)] == ids
        ix.close()
