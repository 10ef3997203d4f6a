"""LedgerClient under concurrency, a chain restart and a free-gas network (real anvil)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger.chain.client import LedgerClient
from ledger.chain.errors import ContractRevert
from ledger.domain import LoanStatus
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap


def _originated_ids(client: LedgerClient, from_block: int) -> Counter[bytes]:
    logs = client.ledger.events.LoanOriginated().get_logs(from_block=from_block)
    return Counter(bytes(e["args"]["loanId"]) for e in logs)


def test_eight_threads_share_one_client_without_losing_or_duplicating(tmp_path: Path) -> None:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        plat = cx.plat
        start_block = plat.w3.eth.block_number + 1
        per_thread, threads = 100, 8
        batches = [[cx.loan(100_000 + t) for _ in range(per_thread)] for t in range(threads)]
        signed = [[(ln, cx.sign(ln)) for ln in batch] for batch in batches]
        errors: list[BaseException] = []

        def work(items) -> None:
            try:
                for loan, sigs in items:
                    plat.originate(loan, sigs)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        t0 = time.perf_counter()
        workers = [threading.Thread(target=work, args=(s,)) for s in signed]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - t0

        assert errors == []
        ids = _originated_ids(plat, start_block)
        all_ids = [ln.loan_id for batch in batches for ln in batch]
        assert len(all_ids) == 800 and len(set(all_ids)) == 800
        assert set(ids) == set(all_ids)
        assert max(ids.values()) == 1  # recorded exactly once each
        for loan_id in all_ids[::50]:
            assert plat.loan_state(loan_id)[2] == LoanStatus.ACTIVE
        print(
            f"\n800 co-loans from 8 threads in {elapsed:.1f}s ({800 / elapsed:.0f}/s), "
            f"{len(plat.retried)} retried"
        )


def test_chain_restart_mid_run_every_record_lands_exactly_once(tmp_path: Path) -> None:
    with LocalChain("anvil", state_path=tmp_path / "anvil-state.json") as chain:
        cx = bootstrap(chain.url)
        plat = cx.plat
        plat.receipt_timeout = 3.0
        start_block = plat.w3.eth.block_number + 1
        loans = [cx.loan(200_000) for _ in range(300)]
        signed = [(ln, cx.sign(ln)) for ln in loans]
        done = threading.Event()
        progress = {"n": 0}
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for loan, sigs in signed:
                    plat.originate(loan, sigs)
                    progress["n"] += 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                done.set()

        worker = threading.Thread(target=work)
        worker.start()
        while progress["n"] < 100 and not done.is_set():
            time.sleep(0.01)
        chain.restart()  # stop (anvil dumps its state) and start again on the same port
        worker.join(timeout=300)

        assert errors == []
        assert progress["n"] == 300
        ids = _originated_ids(plat, start_block)
        assert set(ids) == {ln.loan_id for ln in loans}
        assert max(ids.values()) == 1
        # the client says which records it had to retry, and the restart made it retry some
        assert plat.retried, "the restart went unnoticed: nothing was retried"
        assert all(r.startswith("originate 0x") for r in plat.retried)


@pytest.mark.parametrize("fee_mode", ["legacy", "eip1559"])
def test_free_gas_network(fee_mode: str) -> None:
    """Gas price 0, as Besu QBFT and FISCO BCOS consortium chains run: no balance is spent."""
    flags = ["--gas-price", "0", "--base-fee", "0", "--disable-min-priority-fee"]
    with LocalChain("anvil", extra_args=flags) as chain:
        cx = bootstrap(chain.url)
        client = LedgerClient(chain.url, cx.deployment, cx.platform, fee_mode=fee_mode)  # type: ignore[arg-type]
        fees = client.fees()
        assert all(v == 0 for v in fees.values()), fees
        before = client.w3.eth.get_balance(cx.platform.address)
        loan = cx.loan(500_000)
        res = client.originate(loan, cx.sign(loan))
        tx = client.w3.eth.get_transaction(res.tx_hash)
        assert tx["type"] == (0 if fee_mode == "legacy" else 2)
        assert client.w3.eth.get_balance(cx.platform.address) == before
        assert client.loan_state(loan.loan_id)[2] == LoanStatus.ACTIVE


def test_pipelined_submission_gives_each_record_its_own_outcome() -> None:
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        plat = cx.plat
        start_block = plat.w3.eth.block_number + 1
        items = [(ln, cx.sign(ln)) for ln in (cx.loan(300_000) for _ in range(400))]
        over = cx.loan(20_000_001)
        items.insert(200, (over, cx.sign(over)))
        t0 = time.perf_counter()
        results = plat.originate_pipelined(items)
        elapsed = time.perf_counter() - t0
        refused = [r for r in results if not hasattr(r, "loan_id")]
        assert len(refused) == 1 and refused[0].code == "BorrowerCapExceeded"
        assert refused[0].values["requested"] == 20_000_001
        ids = _originated_ids(plat, start_block)
        assert set(ids) == {ln.loan_id for ln, _ in items} - {over.loan_id}
        assert max(ids.values()) == 1
        print(f"\n400 co-loans pipelined in {elapsed:.2f}s ({400 / elapsed:.0f}/s)")


def test_batched_pipelining_rejects_one_loan_and_records_the_rest() -> None:
    """Ten loans per transaction (non-atomic originateBatch): the loan over the cap is refused
    with its own typed error, every other loan is recorded once, and a loan already on chain
    is reported as already recorded (its id is the idempotency key), not recorded twice."""
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        plat = cx.plat
        start_block = plat.w3.eth.block_number + 1
        items = [(ln, cx.sign(ln)) for ln in (cx.loan(300_000) for _ in range(95))]
        over = cx.loan(20_000_001)
        items.insert(42, (over, cx.sign(over)))
        plat.originate(*items[7])  # already on chain before the batch that carries it
        results = plat.originate_pipelined(items, per_tx=10)
        assert len(results) == 96
        refused = {i: r for i, r in enumerate(results) if not hasattr(r, "loan_id")}
        assert sorted(refused) == [42]
        assert refused[42].code == "BorrowerCapExceeded"
        assert refused[42].values["requested"] == 20_000_001
        assert results[7].already_recorded and results[7].loan_id == items[7][0].loan_id
        recorded = [r for i, r in enumerate(results) if hasattr(r, "loan_id") and i != 7]
        assert [r.loan_id for r in recorded] == [
            ln.loan_id for i, (ln, _) in enumerate(items) if i not in (7, 42)
        ]
        # ten loans share each transaction: 10 transactions, each with its own hash and block
        assert len({r.tx_hash for r in recorded}) == 10
        assert all(r.gas_used > 0 and r.block_number >= start_block for r in recorded)
        ids = _originated_ids(plat, start_block - 1)
        assert set(ids) == {ln.loan_id for ln, _ in items} - {over.loan_id}
        assert max(ids.values()) == 1
        assert plat.retried == []


def test_the_node_submitter_learns_gas_and_still_gives_each_loan_its_outcome(
    cx: LocalConsortium,
) -> None:
    """The platform node's submitter (api/service/submitter.py) estimates its first round only,
    then declares gas from what loans used. A lone loan the contract refuses, sent without an
    estimate, still comes back with its own typed refusal and the numbers; a loan with more
    tranches than any seen is estimated again and recorded; nothing is recorded twice."""
    from api.service.submitter import Submitter

    sub = Submitter(cx.plat)
    try:
        start = cx.plat.w3.eth.block_number + 1
        two = [(cx.platform, 120_000), (cx.lenders[0], 180_000)]
        first = [cx.loan(300_000, two) for _ in range(3)]
        assert all(
            hasattr(o, "loan_id") for o in sub.originate_many([(ln, cx.sign(ln)) for ln in first])
        )
        assert sub._gas([(first[0], [])]) is not None  # learned: no estimate from now on
        over = cx.loan(20_000_001)
        with pytest.raises(ContractRevert) as refused:
            sub.originate(over, cx.sign(over))
        assert refused.value.code == "BorrowerCapExceeded"
        assert refused.value.values["requested"] == 20_000_001
        wide = cx.loan(300_000)  # three tranches
        assert sub._gas([(wide, [])]) is None  # more tranches than seen: estimated
        recorded = sub.originate(wide, cx.sign(wide))
        assert recorded.loan_id == wide.loan_id and recorded.gas_used > 0
        ids = _originated_ids(cx.plat, start - 1)
        assert set(ids) == {ln.loan_id for ln in [*first, wide]} and max(ids.values()) == 1
        assert cx.plat.retried == []
    finally:
        sub.close()


def test_the_node_submitter_lingers_for_a_fuller_transaction_but_not_past_a_full_one(
    cx: LocalConsortium,
) -> None:
    """Loans requested a moment apart share one transaction when the submitter lingers (a round
    that would not fill a transaction waits up to `linger_s` for more); a round that fills one
    goes at once, however long the linger."""
    import threading
    import time

    from api.service.submitter import Submitter

    sub = Submitter(cx.plat, per_tx=2, linger_s=30.0)
    try:
        a, b = cx.loan(300_000), cx.loan(300_000)
        outcomes: dict[str, object] = {}
        first = threading.Thread(target=lambda: outcomes.update(a=sub.originate(a, cx.sign(a))))
        first.start()
        time.sleep(0.3)  # `a` is waiting in the submitter, not yet sent
        assert cx.plat.w3.eth.get_transaction_count(cx.platform.address, "pending") == (
            cx.plat.w3.eth.get_transaction_count(cx.platform.address)
        )
        outcomes["b"] = sub.originate(b, cx.sign(b))  # fills the transaction: both go now
        first.join(timeout=20)
        assert not first.is_alive(), "the lone loan waited out the whole linger"
        ra, rb = outcomes["a"], outcomes["b"]
        assert ra.tx_hash == rb.tx_hash  # type: ignore[attr-defined]
        assert {ra.loan_id, rb.loan_id} == {a.loan_id, b.loan_id}  # type: ignore[attr-defined]
    finally:
        sub.close()
