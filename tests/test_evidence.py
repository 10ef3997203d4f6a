"""Evidence for one loan, gathered from a real chain and checked offline; tampering is named."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import evidence
from ledger.localnet.consortium import new_id

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def loan_evidence(cx):
    loan = cx.loan(654_321)
    cx.plat.originate(loan, cx.sign(loan))
    more = cx.loan(45_679, borrower_key=loan.borrower_key)
    cx.plat.originate(more, cx.sign(more))
    return cx, loan, evidence.collect(cx.rpc_url, cx.deployment, loan.loan_id)


def test_evidence_holds_offline(loan_evidence):
    cx, loan, ev = loan_evidence
    verdict = evidence.verify(json.loads(json.dumps(ev)))
    assert verdict.ok, verdict.problems
    assert all(verdict.checks.values()) and len(verdict.checks) == 10
    # the proof is of the exposure at the loan's own block, before the second loan
    assert ev["exposure_proof"]["consumer_exposure"] == 654_321
    assert [s["recovered"] for s in ev["signatures"]] == [t.lender for t in loan.tranches]
    # BOOKS_SLOT really is the borrower's word: it matches the contract's view
    word = cx.gov.w3.eth.get_storage_at(
        cx.deployment.ledger, evidence.books_slot(loan.borrower_key)
    )
    assert int.from_bytes(word, "big") & ((1 << 48) - 1) == 654_321 + 45_679


@pytest.mark.parametrize(
    ("tamper", "check"),
    [
        (
            lambda ev: (
                ev["signatures"]
                and ev["log"].update(
                    data=ev["log"]["data"][:-70]
                    + ("0" if ev["log"]["data"][-70] != "0" else "1")
                    + ev["log"]["data"][-69:]
                )
            ),
            "log_in_receipt",
        ),
        (
            lambda ev: ev["block"].update(timestamp=hex(int(ev["block"]["timestamp"], 16) + 1)),
            "block_hash",
        ),
        (
            lambda ev: ev["exposure_proof"].update(
                value=hex(int(ev["exposure_proof"]["value"], 16) + 1)
            ),
            "storage_proof",
        ),
        (
            lambda ev: ev["transaction"].update(raw=ev["transaction"]["raw"][:-2] + "00"),
            "transaction_hash",
        ),
        (lambda ev: ev.update(document_digest="0x" + "11" * 32), "document_digest"),
        (
            lambda ev: ev["exposure_proof"].update(
                account_proof=ev["exposure_proof"]["account_proof"][:-1]
            ),
            "account_proof",
        ),
    ],
    ids=["log", "header", "storage-value", "raw-tx", "document", "account-proof"],
)
def test_tampered_evidence_is_named(loan_evidence, tamper, check):
    _, _, ev = loan_evidence
    bad = copy.deepcopy(ev)
    tamper(bad)
    try:
        verdict = evidence.verify(bad)
    except evidence.EvidenceError:
        assert check == "account_proof"  # a missing proof node cannot be walked at all
        return
    assert not verdict.ok and verdict.checks[check] is False, verdict


def test_cli_evidence_round_trip(loan_evidence, tmp_path):
    cx, loan, _ = loan_evidence
    dep = tmp_path / "deployment.json"
    cx.deployment.save(dep)
    env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}"}
    out = tmp_path / "evidence.json"

    def ledger(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )

    r = ledger(
        "evidence",
        "0x" + loan.loan_id.hex(),
        "--rpc-url",
        cx.rpc_url,
        "--deployment",
        str(dep),
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    ok = ledger("verify-evidence", str(out), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    data = json.loads(out.read_text())
    data["signatures"][0]["signature"] = "0x00"  # cosmetic field: the log is what counts
    data["document_digest"] = "0x" + "22" * 32
    out.write_text(json.dumps(data))
    bad = ledger("verify-evidence", str(out), "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["checks"]["document_digest"] is False
    unknown = ledger(
        "evidence", "0x" + new_id().hex(), "--rpc-url", cx.rpc_url, "--deployment", str(dep)
    )
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no loan 0x")
