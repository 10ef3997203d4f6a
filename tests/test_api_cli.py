"""`ledger up|status|token|demo|down` as a user runs them: subprocesses, real anvil, six real
node processes (five members and a guarantor); afterwards no process of the consortium may be
left (checked in /proc)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from tests.test_cli import ledger

EXPECTED_STEPS = 54  # 17, R0, economics (13), a policy change (6), a servicing transfer (17)
NODES = {"platform", "bank-a", "bank-b", "bank-c", "auditor", "guarantor"}


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and _alive(int(entry)):
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"  # a zombie is dead, merely not yet reaped


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_up_status_token_demo_down(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    up = ledger("up", "--state-dir", state, "--json")
    try:
        assert up.returncode == 0, up.stderr
        assert "DEV-ONLY" in up.stderr
        summary = json.loads(up.stdout)
        nodes = {n["name"]: n for n in summary["nodes"]}
        assert set(nodes) == NODES
        assert nodes["guarantor"]["role"] == "guarantor"
        assert all(n["ready"] and n["url"].startswith("http://127.0.0.1:") for n in nodes.values())
        keys = summary["key_service"]
        assert keys["name"] == "keyservice" and keys["ready"], keys
        pids = [n["pid"] for n in nodes.values()] + [keys["pid"], summary["chain"]["pid"]]

        again = ledger("up", "--state-dir", state, "--json")  # idempotent: same processes
        assert again.returncode == 0, again.stderr
        again_summary = json.loads(again.stdout)
        assert {n["pid"] for n in again_summary["nodes"]} == set(pids[:-2])
        assert again_summary["key_service"]["pid"] == keys["pid"]

        st = ledger("status", "--state-dir", state, "--json")
        assert st.returncode == 0 and json.loads(st.stdout)["ready"] is True
        assert {n["name"] for n in json.loads(st.stdout)["nodes"]} == NODES
        text = ledger("status", "--state-dir", state)
        assert f"guarantor {nodes['guarantor']['url']}/console/" in " ".join(text.stdout.split())

        tok = ledger("token", "bank-a", "--state-dir", state)
        assert tok.returncode == 0, tok.stderr
        r = httpx.get(
            f"{nodes['bank-a']['url']}/v1/lenders/{nodes['bank-a']['address']}/limits",
            headers={"Authorization": f"Bearer {tok.stdout.strip()}"},
            trust_env=False,
        )
        assert r.status_code == 200, r.text
        bad = ledger("token", "nobody", "--state-dir", state)
        assert bad.returncode != 0 and bad.stderr.startswith("error: no member")

        for _run in range(2):  # the story plays the same way every time
            demo = ledger("demo", "--state-dir", state, "--json")
            assert demo.returncode == 0, demo.stdout + demo.stderr
            story = json.loads(demo.stdout)
            assert story["ok"] is True and len(story["steps"]) == EXPECTED_STEPS
            assert all(s["ok"] for s in story["steps"]), [s for s in story["steps"] if not s["ok"]]
        codes = [s["response"].get("code") for s in story["steps"] if s["status"] >= 400]
        assert {"BorrowerCapExceeded", "TooManyInstitutions", "PlatformShareTooLow",
                "TooFewBankTranches", "AppetiteExceeded",
                "RoleForbidden", "LoanNotFound"} <= set(codes)  # fmt: skip
        assert any(s["action"].startswith("repays the transferred loan") and s["ok"]
                   for s in story["steps"])  # fmt: skip
        _guarantor_acted_through_its_node(Path(state), nodes["guarantor"], story["steps"])
        # after the story, the audit of the whole history passes with every check run: the
        # auditor node's read model and the platform's encrypted document store included
        audit = ledger("audit", "--state-dir", state, "--json")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        report = json.loads(audit.stdout)
        assert report["ok"] is True and report["violation_count"] == 0
        assert all(c["run"] for c in report["checks"].values()), report["checks"]
        assert report["checks"]["documents"]["items"] == 2  # one per demo run
    finally:
        down = ledger("down", "--state-dir", state, "--json")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout) == {
        "nodes_stopped": 6,
        "key_service_stopped": True,
        "chain_stopped": True,
    }
    assert [p for p in pids if _alive(p)] == []
    assert _processes_mentioning(state) == []
    st = ledger("status", "--state-dir", state, "--json")
    assert st.returncode == 1 and json.loads(st.stdout)["nodes"] == []


def _guarantor_acted_through_its_node(state: Path, node: dict, steps: list[dict]) -> None:
    """The guarantor's attestation, offers and payouts were sent by its own node: its node
    counted them, each transaction's sender is the guarantor, and the demo names the node."""
    from ledger.chain.client import LedgerClient
    from ledger.chain.deployment import Deployment
    from ledger.keys import dev_account

    g = node["address"]
    mine = [s for s in steps if s["actor"] == "guarantor"]
    assert [s["status"] for s in mine] == [200, 201, 201, 201], mine
    assert node["url"] in mine[0]["outcome"]
    metrics = httpx.get(f"{node['url']}/metrics", trust_env=False).text
    for kind in ("attestation", "guarantee_offer", "compensation"):
        # two demo runs, each once through the guarantor's node
        assert f'ledger_records_submitted_total{{kind="{kind}"}} 2' in metrics, metrics
    dep = Deployment.load(state / "deployment.json")
    rpc = json.loads(ledger("status", "--state-dir", str(state), "--json").stdout)["rpc_url"]
    reader = LedgerClient(rpc, dep, dev_account("auditor", 0))
    try:
        start = dep.deployment_block
        offered = reader.events("GuaranteeOffered", from_block=start, guarantor=g)
        paid = reader.events("Compensated", from_block=start, guarantor=g)
        attested = reader.events("CapitalAttested", from_block=start, lender=g)
        assert len(offered) == len(paid) == 2 and len(attested) == 3  # bootstrap + 2 runs
        for e in [*offered, *paid, *attested]:
            assert reader.w3.eth.get_transaction(e.tx_hash)["from"] == g
    finally:
        reader.close()


def test_token_refuses_without_a_dev_consortium(tmp_path: Path) -> None:
    r = ledger("token", "bank-a", "--state-dir", str(tmp_path))
    assert r.returncode != 0 and "no local consortium" in r.stderr
