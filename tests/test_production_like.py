"""The production-like chain (ledger.localnet.prodlike): interval mining (1 s blocks), chain id
1515, zero gas, accounts funded only in the genesis, keystores only, and every anvil_*,
hardhat_* and evm_* method refused by the JSON-RPC filter in front. One consortium for the whole
module, with its five nodes and key service: the end-to-end story, the audit with evidence, a
node restart and an indexer with confirmations all run on it, and nothing may use a dev method
(the filter's record is checked last). This is the suite's one slow path: a block a second.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ExtraDataLengthError

from ledger.chain.connect import ChainIdMismatch, check_chain_id, web3_for
from ledger.chain.deployment import Deployment
from ledger.chain.rpc import Rpc
from ledger.keys import KEY_PASSWORD_ENV, DevConsortium
from ledger.localnet import nodes
from ledger.localnet.chains import ChainError, LocalChain, rpc_call
from ledger.localnet.consortium import LocalConsortium, bootstrap
from ledger.localnet.demo import run_story
from ledger.localnet.processes import kill_group, start_ticks
from ledger.localnet.prodlike import (
    PRODUCTION_LIKE_CHAIN_ID,
    PRODUCTION_LIKE_DELAY,
    ProductionLikeChain,
)
from ledger.localnet.rpcfilter import RpcFilter
from ledger.nodeclient import NodeSession

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Consortium:
    chain: ProductionLikeChain
    cx: LocalConsortium
    accounts: dict[str, LocalAccount]
    state_dir: Path
    urls: dict[str, str]
    configs: dict[str, Path]


@pytest.fixture(scope="module")
def pl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    state_dir = tmp_path_factory.mktemp("production-like")
    before = os.environ.get(KEY_PASSWORD_ENV)
    with ProductionLikeChain(state_dir / "chain", block_time=1.0) as chain:
        accounts = chain.keys.accounts()  # also exports the password for the nodes
        keys = DevConsortium(
            governor=accounts["governor"],
            platform=accounts["platform"],
            lenders=[accounts["bank-a"], accounts["bank-b"], accounts["bank-c"]],
            auditor=accounts["auditor"],
            guarantor=accounts["guarantor"],  # admitted at bootstrap, as `ledger up` does
        )
        cx = bootstrap(chain.url, keys=keys, delay=PRODUCTION_LIKE_DELAY)
        cx.deployment.save(state_dir / "deployment.json")
        addresses = {n: a.address for n, a in accounts.items()}
        configs = nodes.write_configs(
            state_dir,
            chain.url,
            keystores={n: chain.keys.path(n) for n in accounts},
            addresses=addresses,
            members=nodes.UP_MEMBERS,
        )
        infos = nodes.start(state_dir, configs, addresses=addresses)
        try:
            yield Consortium(
                chain, cx, accounts, state_dir, {i.name: i.url for i in infos}, configs
            )
        finally:
            nodes.down(state_dir)
            cx.reset_clients()
            # the password was exported for the nodes; no later test may inherit it
            if before is None:
                os.environ.pop(KEY_PASSWORD_ENV, None)
            else:
                os.environ[KEY_PASSWORD_ENV] = before


def test_the_chain_is_what_a_consortium_chain_looks_like(pl: Consortium) -> None:
    w3 = web3_for(pl.chain.url)
    assert w3.eth.chain_id == PRODUCTION_LIKE_CHAIN_ID != 31337
    head = w3.eth.get_block("latest")
    assert head["baseFeePerGas"] == 0 and w3.eth.gas_price == 0
    assert rpc_call(pl.chain.url, "eth_accounts") == []  # no dev accounts on the node
    # every member was funded by the genesis alone, nothing was topped up since
    genesis = json.loads((pl.chain.workdir / "genesis.json").read_text())
    for name, account in pl.accounts.items():
        assert account.address in genesis["alloc"], name
    # interval mining: blocks keep coming with nothing sent
    first = w3.eth.block_number
    time.sleep(2.2)
    assert w3.eth.block_number >= first + 2


@pytest.mark.parametrize("method", ["evm_mine", "evm_increaseTime", "anvil_setBalance",
                                    "hardhat_setBalance", "evm_snapshot"])  # fmt: skip
def test_dev_methods_are_refused(method: str) -> None:
    # a filter of its own on the same kind of upstream, so this test's refusals do not count
    # against the module's consortium (whose record must stay empty)
    with LocalChain("anvil", chain_id=4242) as chain, RpcFilter(chain.url) as flt:
        with pytest.raises(ChainError, match="does not exist/is not available"):
            rpc_call(flt.url, method, [])
        # also inside a batch, where the rest of the batch is still answered
        with Rpc(flt.url, trust_env=False) as rpc:
            answers = rpc.post(
                [
                    {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                    {"jsonrpc": "2.0", "id": 2, "method": method, "params": []},
                ]
            )
        assert answers[0]["result"] == hex(4242)
        assert answers[1]["error"]["code"] == -32601
        assert flt.refused == [method, method]


def test_the_whole_story_passes_with_the_members_keystores(pl: Consortium) -> None:
    steps = run_story(
        pl.urls,
        pl.state_dir,
        # the members with nodes, the guarantor's included
        accounts={n: a for n, a in pl.accounts.items() if n not in ("governor", "keyservice")},
        rpc_url=pl.chain.url,
        delay_s=PRODUCTION_LIKE_DELAY,
    )
    failed = [f"{s['actor']} {s['action']}: {s['outcome']}" for s in steps if not s["ok"]]
    assert not failed, failed
    # the council's change went through the timelock by waiting, not by moving the clock
    assert any("executed" in s["outcome"] for s in steps)
    # the guarantor acted through its own node, signing with its keystore's key
    assert [s["status"] for s in steps if s["actor"] == "guarantor"] == [200, 201, 201, 201]


def test_pipelined_batches_then_the_audit_with_evidence(pl: Consortium) -> None:
    from ledger.audit import run_audit
    from ledger.evidence import collect, verify

    cx = pl.cx
    items = [(ln, cx.sign(ln)) for ln in (cx.loan(100_000 + i) for i in range(60))]
    results = cx.plat.originate_pipelined(items, per_tx=20)
    assert all(hasattr(r, "gas_used") for r in results), results[:3]
    blocks = {r.block_number for r in results}
    assert len(blocks) <= 3  # batched: many loans a block, not a block per loan
    report = run_audit(pl.chain.url, cx.deployment)
    assert report.ok, [f.message for f in report.findings][:5]
    evidence = collect(pl.chain.url, cx.deployment, items[7][0].loan_id)
    assert verify(evidence).ok


def test_an_indexer_with_confirmations_stays_behind_the_head(
    pl: Consortium, tmp_path: Path
) -> None:
    from sqlmodel import Session

    from ledger.indexer import Indexer
    from ledger.store import make_engine
    from ledger.store.models import LoanRow

    engine = make_engine(f"sqlite:///{tmp_path / 'index.db'}", writer=True)
    idx = Indexer(engine, pl.chain.url, pl.cx.deployment, confirmations=3)
    try:
        loan = pl.cx.loan(123_456)
        landed = pl.cx.plat.originate(loan, pl.cx.sign(loan)).block_number
        idx.catch_up()
        assert idx.last_block <= Rpc(pl.chain.url).block_number() - 3
        with Session(engine) as db:
            indexed = db.get(LoanRow, loan.loan_id) is not None
        assert indexed == (idx.last_block >= landed)  # nothing past the confirmed head
        deadline = time.monotonic() + 30
        while idx.last_block < landed and time.monotonic() < deadline:
            time.sleep(0.5)  # blocks keep coming; 3 more confirm it
            idx.catch_up()
        with Session(engine) as db:
            row = db.get(LoanRow, loan.loan_id)
        assert row is not None and row.principal == 123_456
    finally:
        idx.close()
        engine.dispose()


def test_a_node_restart_resumes_on_the_same_chain(pl: Consortium) -> None:
    infos = nodes.recorded(pl.state_dir)
    info = next(i for i in infos if i.name == "bank-a")
    kill_group(info.pgid, nodes._STARTED.pop(info.pid, None), 10.0)
    proc = nodes._spawn(pl.configs["bank-a"])
    again = replace(info, pid=proc.pid, pgid=proc.pid, start_ticks=start_ticks(proc.pid))
    # recorded at once, so the module's teardown stops the new process
    nodes._STARTED[proc.pid] = proc
    nodes._record(pl.state_dir, [again if i.name == "bank-a" else i for i in infos])
    nodes._wait_ready(again, proc, time.monotonic() + 60)
    with NodeSession.signed_in(pl.urls["bank-a"], pl.accounts["bank-a"]) as s:
        r = s.get(f"/v1/lenders/{pl.accounts['bank-a'].address}/limits")
    assert r.status_code == 200, r.text
    # and it serves what was recorded while it was down
    loan = pl.cx.loan(222_222)
    pl.cx.plat.originate(loan, pl.cx.sign(loan))
    with NodeSession.signed_in(pl.urls["bank-a"], pl.accounts["bank-a"]) as s:
        deadline = time.monotonic() + 30
        while (r := s.get(f"/v1/loans/0x{loan.loan_id.hex()}")).status_code == 404:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.5)
    assert r.status_code == 200 and r.json()["principal"] == 222_222, r.text


def test_a_chain_reporting_another_id_than_its_evm_is_refused(
    pl: Consortium, tmp_path: Path
) -> None:
    # FISCO BCOS's web3 endpoint reports one chain id and, unless configured, its EVM sees 0:
    # the filter's report_chain_id imitates such a node in front of the same chain
    assert pl.chain.chain is not None
    with RpcFilter(pl.chain.chain.url, report_chain_id=999) as lying:
        w3 = web3_for(lying.url)
        ledger = w3.eth.contract(address=pl.cx.deployment.ledger, abi=pl.cx.plat.ledger.abi)
        with pytest.raises(ChainIdMismatch) as exc:
            check_chain_id(w3, ledger, 999)
        assert "999" in str(exc.value) and str(PRODUCTION_LIKE_CHAIN_ID) in str(exc.value)
        # a node configured for it refuses to start, with one line naming both values
        dep = replace(pl.cx.deployment, chain_id=999)
        dep.save(tmp_path / "deployment.json")
        cfg = json.loads(pl.configs["bank-b"].read_text())
        cfg.update(rpc_url=lying.url, deployment_file=str(tmp_path / "deployment.json"),
                   database_url=f"sqlite:///{tmp_path / 'node.db'}", port=1)  # fmt: skip
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        run = subprocess.run(
            [sys.executable, "-m", "api", "--config", str(tmp_path / "config.json")],
            cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert run.returncode == 2, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert "eth_chainId reports 999" in last and f"is {PRODUCTION_LIKE_CHAIN_ID}" in last
    assert "Traceback" not in run.stderr


def test_nothing_called_a_dev_method(pl: Consortium) -> None:
    """Last in the module: the story, the batches, the council's wait, the audit, the indexer
    and the restarted node never tried an anvil_*, hardhat_* or evm_* method."""
    assert pl.chain.refused == []


# --------------------------------------------------------------------------------------------
# proof-of-authority blocks


def test_a_block_with_97_bytes_of_extra_data_is_read(tmp_path: Path) -> None:
    """Clique, IBFT and QBFT carry signer data in extraData (97 bytes here: 32 of vanity, a
    65-byte seal). Anvil drops a genesis extraData, but serves the headers of a state file it
    loads as they are written, so block 2 is given such extraData there."""
    state = tmp_path / "state.json"
    with LocalChain("anvil", chain_id=4242, state_path=state) as chain:
        rpc_call(chain.url, "anvil_mine", ["0x3"])  # a dev chain of its own, not the module's
    dumped = json.loads(state.read_text())
    extra = "0x" + "00" * 32 + "ab" * 65
    for block in dumped["blocks"]:
        if block["header"]["number"] == "0x2":
            block["header"]["extraData"] = extra
    state.write_text(json.dumps(dumped))
    with LocalChain("anvil", chain_id=4242, state_path=state) as chain:
        with pytest.raises(ExtraDataLengthError):  # what every web3 instance did before
            Web3(Web3.HTTPProvider(chain.url)).eth.get_block(2)
        block = web3_for(chain.url).eth.get_block(2)
        assert block["number"] == 2 and len(block["proofOfAuthorityData"]) == 97
        # and through the client every node builds
        from ledger.chain.client import LedgerClient

        dep = Deployment(
            4242, "0x" + "11" * 20, "0x" + "22" * 20, 0, "0x", "0x", "0x" + "33" * 20, 0
        )
        client = LedgerClient(chain.url, dep)
        try:
            assert client.w3.eth.get_block(2)["proofOfAuthorityData"].hex() == extra[2:]
        finally:
            client.close()


def test_ledger_up_with_the_production_like_profile(tmp_path: Path) -> None:
    """`ledger up --profile production-like` (its chain in a process of its own, the members'
    keystores, six nodes with the guarantor's and the key service), `ledger status` and
    `ledger down`."""

    def ledger(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args, "--state-dir", str(tmp_path / "st")],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
            env={k: v for k, v in os.environ.items() if k != KEY_PASSWORD_ENV},
        )  # fmt: skip

    up = ledger("up", "--profile", "production-like", "--json")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        summary = json.loads(up.stdout)
        assert summary["profile"] == "production-like"
        assert summary["chain"]["chain_id"] == PRODUCTION_LIKE_CHAIN_ID
        keys = (tmp_path / "st" / "chain" / "keys").glob("*.json")
        on_disk = {json.loads(p.read_text())["address"].lower() for p in keys}
        assert {n["address"].lower() for n in summary["nodes"]} <= {"0x" + a for a in on_disk}
        # the filtered endpoint is the only one recorded, and it refuses dev methods
        with pytest.raises(ChainError, match="not available"):
            rpc_call(summary["rpc_url"], "evm_mine")
        assert {n["name"]: n["role"] for n in summary["nodes"]}["guarantor"] == "guarantor"
        status = ledger("status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["ready"] is True
    finally:
        down = ledger("down", "--json")
    assert down.returncode == 0 and json.loads(down.stdout)["chain_stopped"] is True
    assert json.loads(down.stdout)["nodes_stopped"] == 6


def test_ledger_up_on_an_outside_chain_with_its_keystores(pl: Consortium, tmp_path: Path) -> None:
    """`ledger up --profile production-like --rpc-url URL --keystores DIR` against a chain it
    did not start (the module's, behind its filter, with the deployment already on it): the
    members' nodes come up from the keystores on the chain's own id, demo sign-in works, and
    `ledger down` stops the nodes but leaves the outside chain running."""
    state = tmp_path / "outside"
    state.mkdir()
    (state / "deployment.json").write_text((pl.state_dir / "deployment.json").read_text())
    refused_before = len(pl.chain.refused)

    def ledger(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args, "--state-dir", str(state)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
            env={k: v for k, v in os.environ.items() if k != KEY_PASSWORD_ENV},
        )  # fmt: skip

    # both or neither: an outside chain needs the members' keys
    half = ledger("up", "--profile", "production-like", "--rpc-url", pl.chain.url)
    assert half.returncode != 0 and "--keystores" in half.stderr
    up = ledger(
        "up", "--profile", "production-like", "--rpc-url", pl.chain.url,
        "--keystores", str(pl.chain.keys.directory), "--json",
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        summary = json.loads(up.stdout)
        assert summary["chain"] is None  # it started none
        assert summary["rpc_url"] == pl.chain.url and summary["profile"] == "production-like"
        # the deployment already on the chain is served, not a second one
        assert summary["deployment"] == Deployment.load(pl.state_dir / "deployment.json").to_json()
        by_name = {n["name"]: n for n in summary["nodes"]}
        assert by_name["platform"]["address"].lower() == pl.accounts["platform"].address.lower()
        ready = NodeSession(by_name["bank-a"]["url"])
        try:
            assert ready.http.get(f"{ready.base}/readyz").json()["status"] == "ready"
        finally:
            ready.close()
        signed = NodeSession.signed_in(by_name["bank-a"]["url"], pl.accounts["bank-a"])
        signed.close()
        status = ledger("status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["ready"] is True
    finally:
        down = ledger("down", "--json")
    assert down.returncode == 0, down.stderr[-2000:]
    result = json.loads(down.stdout)
    assert result["chain_stopped"] is False and result["nodes_stopped"] == 6
    assert rpc_call(pl.chain.url, "eth_chainId") == hex(PRODUCTION_LIKE_CHAIN_ID)
    assert pl.chain.refused[refused_before:] == []


def test_a_key_directory_without_a_guarantor_runs_the_other_members(tmp_path: Path) -> None:
    """A key directory made before `ledger up` ran a guarantor: the others load, no guarantor;
    any other member missing is still an error."""
    from ledger.keys import KeystoreError
    from ledger.localnet.prodlike import MemberKeys

    before = os.environ.get(KEY_PASSWORD_ENV)
    try:
        keys = MemberKeys.create(tmp_path / "keys")
        assert "guarantor" in keys.accounts()
        keys.path("guarantor").unlink()
        assert set(keys.accounts()) == {"governor", "platform", "bank-a", "bank-b", "bank-c",
                                        "auditor", "keyservice"}  # fmt: skip
        assert "guarantor" not in keys.addresses()
        keys.path("bank-c").unlink()
        with pytest.raises(KeystoreError, match="bank-c.json does not exist"):
            keys.accounts()
    finally:
        if before is None:
            os.environ.pop(KEY_PASSWORD_ENV, None)
        else:
            os.environ[KEY_PASSWORD_ENV] = before
