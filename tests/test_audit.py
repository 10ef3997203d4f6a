"""The audit, from the chain alone: a clean history passes, and every kind of tampering is named."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from eth_utils import keccak

from ledger.audit import Violation, load_history, record_timestamps, replay_events, run_audit
from ledger.audit.events import ChainEvent, Rpc
from ledger.audit.report import AuditReport
from ledger.chain.consortium import bootstrap, new_id
from ledger.chain.node import LocalChain
from ledger.documents import document_digest
from ledger.domain import LoanStatus, MemberStatus, Product
from ledger.indexer import Indexer
from ledger.provenance import Domain
from tests.dbs import DB_KINDS, Databases

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A chain with more than 2,000 records: loans, a credit line with drawings, repayments,
    status changes and write-offs, some loans carrying a document."""
    archive = tmp_path_factory.mktemp("documents")
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        plat = cx.plat
        items = []
        for i in range(2_000):
            loan = cx.loan(100_000 + i, product=Product(i % 2))
            if i % 400 == 0:
                doc = f"loan agreement {i}".encode()
                loan = dataclasses.replace(loan, document_digest=document_digest(doc))
                (archive / f"0x{loan.loan_id.hex()}.txt").write_bytes(doc)
            items.append((loan, cx.sign(loan)))
        results = plat.originate_pipelined(items)
        failed = [r for r in results if not hasattr(r, "loan_id")]
        assert failed == [], failed[:3]
        loans = [ln for ln, _ in items]
        for ln in loans[:150]:
            plat.repay(ln, new_id("repayment"), ln.principal // 3, 1_234)
        for ln in loans[150:200]:
            plat.repay(ln, new_id("repayment"), ln.principal, 99)
        for ln in loans[200:220]:
            plat.set_status(ln, LoanStatus.OVERDUE)
            plat.set_status(ln, LoanStatus.WRITTEN_OFF)
        line = cx.line(3_000_000)
        plat.grant_line(line, cx.sign(line))
        drawn = cx.loan(1_000_000, borrower_key=line.borrower_key, line_id=line.line_id)
        plat.originate(drawn, cx.sign(drawn))
        plat.close_line(line.line_id)
        plat.repay(drawn, new_id("repayment"), 400_000)
        yield cx, chain, archive


def test_clean_history_of_2000_records_has_no_violation(history):
    cx, chain, archive = history
    report = run_audit(chain.url, cx.deployment, documents_dir=archive)
    assert report.violations == []
    assert report.ok
    assert report.records["loans"] == 2_001 and report.records["lines"] == 1
    assert report.records["repayments"] == 201
    assert report.checks["provenance"].items == 3 * 2_002  # every signature verified
    assert report.checks["documents"].items == 5
    for name in ("bytecode", "provenance", "rules", "state", "arithmetic", "documents"):
        assert report.checks[name].run, name
    print(
        f"\naudit replay: {report.to_json()['records_per_second']} records/s "
        f"({sum(report.records.values())} records in {report.seconds:.2f}s)"
    )


def test_audit_at_an_earlier_block(history):
    cx, chain, _ = history
    report = run_audit(chain.url, cx.deployment, block=cx.deployment.deployment_block + 12)
    assert report.ok, report.violations
    assert report.to_block == cx.deployment.deployment_block + 12


def test_altered_document_is_named(history, tmp_path):
    cx, chain, archive = history
    copy = tmp_path / "docs"
    copy.mkdir()
    files = sorted(archive.iterdir())
    for f in files:
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / files[0].name).write_bytes(b"loan agreement 0, with a changed rate")
    (copy / files[1].name).unlink()
    report = run_audit(chain.url, cx.deployment, documents_dir=copy)
    codes = {(v.check, v.code, v.record) for v in report.violations}
    assert ("documents", "DocumentMismatch", files[0].name.split(".")[0]) in codes
    assert ("documents", "DocumentMissing", files[1].name.split(".")[0]) in codes
    assert len(report.violations) == 2


def test_suspended_signer_reconstructed_in_the_replay(history):
    """The contract refuses a suspended signer, so the record is made in the replay: a suspension
    of the bank is inserted just before a loan it signed, and the audit must name that loan."""
    cx, chain, _ = history
    rpc = Rpc(chain.url)
    head = int(rpc.call("eth_blockNumber", []), 16)
    events = load_history(rpc, cx.deployment, head)
    target = next(e for e in events if e.name == "LoanOriginated" and e.block_number > 20)
    bank = cx.lenders[0].address
    forged = ChainEvent(
        "MemberStatusChanged",
        "registry",
        target.block_number,
        target.block_hash,
        target.tx_hash,
        target.log_index - 1,
        {"account": bank, "from": int(MemberStatus.ACTIVE), "to": int(MemberStatus.SUSPENDED)},
    )
    altered = events[: events.index(target)] + [forged] + events[events.index(target) :]
    report = AuditReport(
        cx.deployment.chain_id,
        cx.deployment.registry,
        cx.deployment.ledger,
        cx.deployment.deployment_block,
        head,
    )
    stamps = record_timestamps(rpc, events)
    replay_events(report, altered, Domain(cx.deployment.chain_id, cx.deployment.ledger), stamps)
    loan_id = "0x" + bytes(target.args["loanId"]).hex()
    hits = [v for v in report.violations if v.record == loan_id]
    assert hits and hits[0] == Violation(
        "provenance", "NotActiveMember", hits[0].message, loan_id, target.where, {"account": bank}
    )
    # only records the suspended bank signed after its suspension are flagged
    assert all(v.code == "NotActiveMember" for v in report.violations)


def _tampered_chain():
    chain = LocalChain("anvil")
    chain.start()
    cx = bootstrap(chain.url)
    for _ in range(3):
        loan = cx.loan(500_000)
        cx.plat.originate(loan, cx.sign(loan))
    return chain, cx


def test_contract_from_different_source_at_registered_address():
    chain, cx = _tampered_chain()
    try:
        w3 = cx.gov.w3
        other = w3.eth.get_code(cx.deployment.registry)
        w3.provider.make_request("anvil_setCode", [cx.deployment.ledger, "0x" + bytes(other).hex()])
        report = run_audit(chain.url, cx.deployment)
        codes = {(v.check, v.code) for v in report.violations}
        assert ("bytecode", "BytecodeMismatch") in codes
        assert ("bytecode", "CodeHashMismatch") in codes
        assert any(cx.deployment.ledger in v.message for v in report.violations)
    finally:
        chain.stop()


def test_state_altered_behind_the_contracts_back():
    chain, cx = _tampered_chain()
    try:
        w3 = cx.gov.w3
        loan = cx.loan(700_000)
        cx.plat.originate(loan, cx.sign(loan))
        # find the borrower's packed exposure word in the ledger's storage, then raise it
        for slot in range(16):
            where = keccak(loan.borrower_key + slot.to_bytes(32, "big"))
            word = int.from_bytes(w3.eth.get_storage_at(cx.deployment.ledger, where), "big")
            if word & ((1 << 48) - 1) == 700_000:
                break
        else:
            raise AssertionError("borrower slot not found")
        tampered = (word + 1).to_bytes(32, "big")
        w3.provider.make_request(
            "anvil_setStorageAt", [cx.deployment.ledger, "0x" + where.hex(), "0x" + tampered.hex()]
        )
        report = run_audit(chain.url, cx.deployment)
        hits = [v for v in report.violations if v.code == "ExposureMismatch"]
        assert len(hits) == 1 and hits[0].record == "0x" + loan.borrower_key.hex()
        assert hits[0].check == "state"
    finally:
        chain.stop()


def test_cli_exit_code_and_json(history, tmp_path):
    cx, chain, archive = history
    dep = tmp_path / "deployment.json"
    cx.deployment.save(dep)
    env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}"}

    def audit(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "ledger.cli",
                "audit",
                "--rpc-url",
                chain.url,
                "--deployment",
                str(dep),
                "--json",
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )

    clean = audit("--documents", str(archive), "--html", str(tmp_path / "report.html"))
    assert clean.returncode == 0, clean.stderr
    data = json.loads(clean.stdout)
    assert data["ok"] is True and data["violation_count"] == 0
    page = (tmp_path / "report.html").read_text()
    assert "PASS: no violations" in page and "Exposure by product" in page
    bad = tmp_path / "bad-docs"
    bad.mkdir()
    first = sorted(archive.iterdir())[0]
    (bad / first.name).write_bytes(b"forged")
    tampered = audit("--documents", str(bad))
    assert tampered.returncode == 1
    names = {v["code"] for v in json.loads(tampered.stdout)["violations"]}
    assert "DocumentMismatch" in names


# ---------------------------------------------------------------------- read model (check 6)


@pytest.fixture(params=DB_KINDS)
def indexed(request, history, tmp_path):
    """The history indexed into a fresh node database (SQLite; PostgreSQL when configured)."""
    cx, chain, _ = history
    dbs = Databases(request.param, tmp_path)
    try:
        url = dbs.new()
        engine = dbs.engine(url)
        ix = Indexer(engine, chain.url, cx.deployment)
        ix.prepare()
        ix.catch_up()
        yield cx, chain, url, engine
    finally:
        dbs.close()


def _codes(report) -> set[tuple[str, str]]:
    return {(v.code, v.details.get("table", "")) for v in report.violations}


def test_read_model_matches_the_chain(indexed):
    cx, chain, url, _ = indexed
    report = run_audit(chain.url, cx.deployment, database_url=url)
    assert report.violations == []
    assert report.checks["read_model"].run and report.checks["read_model"].items > 4_000


def test_read_model_tampering_is_listed(indexed):
    cx, chain, url, engine = indexed
    key = cx.lenders[0].address
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE lender_usage SET total = total + 1 WHERE lender = :l"), {"l": key}
        )
        victim = conn.execute(
            sa.text("SELECT repayment_id FROM repayments ORDER BY repayment_id LIMIT 1")
        ).scalar()
        conn.execute(
            sa.text("DELETE FROM repayment_allocations WHERE repayment_id = :r"), {"r": victim}
        )
        conn.execute(sa.text("DELETE FROM repayments WHERE repayment_id = :r"), {"r": victim})
        conn.execute(
            sa.text(
                "UPDATE borrower_exposure SET consumer = consumer + 5 WHERE borrower_key = "
                "(SELECT borrower_key FROM borrower_exposure ORDER BY borrower_key LIMIT 1)"
            )
        )
        row = conn.execute(sa.text("SELECT * FROM loans ORDER BY loan_id LIMIT 1")).mappings().one()
        fake = {**row, "loan_id": b"\xee" * 32}
        cols = ", ".join(fake)
        conn.execute(
            sa.text(f"INSERT INTO loans ({cols}) VALUES ({', '.join(':' + c for c in fake)})"), fake
        )
    report = run_audit(chain.url, cx.deployment, database_url=url)
    found = _codes(report)
    assert ("RowAltered", "lender_usage") in found
    assert ("RowMissing", "repayments") in found
    assert ("RowAltered", "borrower_exposure") in found
    assert ("RowExtra", "loans") in found
    extra = next(v for v in report.violations if v.code == "RowExtra")
    assert extra.record == "0x" + "ee" * 32
    assert not report.ok
