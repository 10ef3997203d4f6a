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

from ledger.audit import Violation, load_history, record_timestamps, replay_events, run_audit
from ledger.audit.events import ChainEvent, Rpc
from ledger.audit.report import AuditReport
from ledger.documents import document_digest
from ledger.domain import (
    DEFAULT_POLICY,
    CoLoan,
    LoanStatus,
    MemberStatus,
    Product,
    Role,
    Tranche,
)
from ledger.indexer import Indexer
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import bootstrap, new_id
from ledger.provenance import _SECP256K1_N, Domain, sign
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
            plat.repay(ln, new_id("repayment", cx.platform.address), ln.principal // 3, 1_234)
        for ln in loans[150:200]:
            plat.repay(ln, new_id("repayment", cx.platform.address), ln.principal, 99)
        for ln in loans[200:220]:
            plat.set_status(ln, LoanStatus.OVERDUE)
            plat.set_status(ln, LoanStatus.WRITTEN_OFF)
        line = cx.line(3_000_000)
        plat.grant_line(line, cx.sign(line))
        drawn = cx.loan(1_000_000, borrower_key=line.borrower_key, line_id=line.line_id)
        plat.originate(drawn, cx.sign(drawn))
        plat.close_line(line.line_id)
        plat.repay(drawn, new_id("repayment", cx.platform.address), 400_000)
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
    # an earlier block once set-up is over: the registry has been handed to the council
    (handed,) = cx.plat.events("GovernorChanged", from_block=cx.deployment.deployment_block)
    block = handed.block_number + 12
    report = run_audit(chain.url, cx.deployment, block=block)
    assert report.ok, report.violations
    assert report.to_block == block


def test_audit_before_the_hand_over_says_one_key_governs(history):
    cx, chain, _ = history
    report = run_audit(chain.url, cx.deployment, block=cx.deployment.deployment_block + 1)
    assert {v.code for v in report.violations} >= {"GovernorNotCouncil", "NoHandOver"}


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
        name="MemberStatusChanged",
        contract="registry",
        block_number=target.block_number,
        block_hash=target.block_hash,
        tx_hash=target.tx_hash,
        tx_index=target.tx_index,
        log_index=target.log_index - 1,
        args={"account": bank, "from": int(MemberStatus.ACTIVE), "to": int(MemberStatus.SUSPENDED)},
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


def _altered(events: list[ChainEvent], i: int, signatures: list[bytes]) -> None:
    events[i] = dataclasses.replace(events[i], args={**events[i].args, "signatures": signatures})


def _replay(cx, rpc: Rpc, events: list[ChainEvent], head: int) -> AuditReport:
    dep = cx.deployment
    report = AuditReport(dep.chain_id, dep.registry, dep.ledger, dep.deployment_block, head)
    replay_events(
        report, events, Domain(dep.chain_id, dep.ledger), record_timestamps(rpc, events), rpc
    )
    return report


def test_forged_signatures_are_named_in_record_order(history):
    """Signatures altered in the recorded history: one lifted from another record (by the right
    member, over other terms), the malleable twin of a valid one, a truncated one, and a missing
    one. Each record is named once, for the member whose signature fails, in chain order, and the
    records around them stay clean (signers are recovered off the judging thread)."""
    cx, chain, _ = history
    rpc = Rpc(chain.url)
    head = int(rpc.call("eth_blockNumber", []), 16)
    events = load_history(rpc, cx.deployment, head)
    loans = [i for i, e in enumerate(events) if e.name == "LoanOriginated"]
    a, b, c, d = loans[10], loans[700], loans[1400], loans[1990]
    sigs = {i: events[i].args["signatures"] for i in (a, b, c, d, loans[11])}
    _altered(events, a, [sigs[a][0], sigs[loans[11]][1], sigs[a][2]])
    r, s_, v = sigs[b][2][:32], int.from_bytes(sigs[b][2][32:64], "big"), sigs[b][2][64]
    twin = r + (_SECP256K1_N - s_).to_bytes(32, "big") + bytes((55 - v,))
    _altered(events, b, [sigs[b][0], sigs[b][1], twin])
    _altered(events, c, [sigs[c][0][:64], sigs[c][1], sigs[c][2]])
    _altered(events, d, sigs[d][:2])
    report = _replay(cx, rpc, events, head)

    def signer(i: int, k: int) -> str:
        return events[i].args["loan"]["tranches"][k]["lender"]

    def rid(i: int) -> str:
        return "0x" + events[i].args["loanId"].hex()

    got = [(v.check, v.code, v.record, v.where, v.details) for v in report.violations]
    assert got == [
        ("provenance", "InvalidSignature", rid(a), events[a].where, {"signer": signer(a, 1)}),
        ("provenance", "InvalidSignature", rid(b), events[b].where, {"signer": signer(b, 2)}),
        ("provenance", "InvalidSignature", rid(c), events[c].where, {"signer": signer(c, 0)}),
        ("provenance", "SignatureCountMismatch", rid(d), events[d].where, {}),
    ]


def test_contract_wallet_signature_is_asked_of_the_wallet(cx):
    """An ERC-1271 lender's signature does not recover to its address: the replay asks the wallet
    at the record's block. Its own owner's signature passes; a stranger's, put in the history in
    its place, is named for the wallet."""
    from tests.test_contract_erc1271 import _wallet

    owner = cx.auditor
    wallet = _wallet(cx, owner)
    cx.gov.admit_member(wallet.address, Role.LENDER, "Bank W (contract wallet)")
    data = cx.plat.registry.encode_abi("attestCapital", args=[10**12, 10**13, cx.now() + 86_400])
    cx.client(owner).transact(wallet, "execute", cx.deployment.registry, data)
    loan = cx.loan(1_000_000, [(cx.platform, 400_000), (wallet.address, 600_000)])
    keys = {cx.platform.address: cx.platform.key, wallet.address: owner.key}
    cx.plat.originate(loan, [sign(keys[t.lender], cx.plat.domain, loan) for t in loan.tranches])

    report = run_audit(cx.rpc_url, cx.deployment)
    assert report.ok, report.violations
    rpc = Rpc(cx.rpc_url)
    head = int(rpc.call("eth_blockNumber", []), 16)
    events = load_history(rpc, cx.deployment, head)
    i = next(k for k, e in enumerate(events) if e.args.get("loanId") == loan.loan_id)
    at = [t.lender for t in loan.tranches].index(wallet.address)
    forged = list(events[i].args["signatures"])
    forged[at] = sign(cx.lenders[0].key, cx.plat.domain, loan)
    _altered(events, i, forged)
    report = _replay(cx, rpc, events, head)
    assert [(v.code, v.record, v.details) for v in report.violations] == [
        ("InvalidSignature", "0x" + loan.loan_id.hex(), {"signer": wallet.address})
    ]


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
        # R0's field of a policy version (the consistency check used to skip it)
        conn.execute(sa.text("UPDATE policy_versions SET min_bank_tranches = 2 WHERE version = 1"))
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
    assert ("RowAltered", "policy_versions") in found
    extra = next(v for v in report.violations if v.code == "RowExtra")
    assert extra.record == "0x" + "ee" * 32
    assert not report.ok


def test_a_platform_only_loan_in_the_history_is_flagged_r0(history):
    """A record a lax ledger would have taken: one of the history's loans, re-made with the
    platform's tranche alone and validly signed by the platform. The replay names it (R0)."""
    cx, chain, _ = history
    rpc = Rpc(chain.url)
    head = int(rpc.call("eth_blockNumber", []), 16)
    events = load_history(rpc, cx.deployment, head)
    i = [k for k, e in enumerate(events) if e.name == "LoanOriginated"][500]
    loan = CoLoan.from_abi(events[i].args["loan"])
    alone = dataclasses.replace(loan, tranches=(Tranche(cx.platform.address, loan.principal),))
    sig = sign(cx.platform.key, cx.plat.domain, alone)
    events[i] = dataclasses.replace(
        events[i], args={**events[i].args, "loan": alone.as_abi(), "signatures": [sig]}
    )
    report = _replay(cx, rpc, events, head)
    rid = "0x" + loan.loan_id.hex()
    got = [(v.check, v.code, v.record, v.details) for v in report.violations]
    assert got == [("rules", "TooFewBankTranches", rid, {"id": rid, "banks": 0, "min": 1})]


def test_an_attestation_is_aged_by_the_policy_in_force_when_used(history):
    """A policy version with a 1-second maxAttestationAge inserted before a loan: the banks'
    attestations, made when the consortium was set up, are judged by it (R8 at use time)."""
    cx, chain, _ = history
    rpc = Rpc(chain.url)
    head = int(rpc.call("eth_blockNumber", []), 16)
    events = load_history(rpc, cx.deployment, head)
    k = [n for n, e in enumerate(events) if e.name == "LoanOriginated"][1000]
    target = events[k]
    strict = dataclasses.replace(DEFAULT_POLICY, max_attestation_age=1)
    forged = dataclasses.replace(
        target,
        name="PolicyUpdated",
        contract="registry",
        log_index=target.log_index - 1,
        args={"version": 2, "effectiveBlock": target.block_number, "policy": strict.as_abi()},
    )
    report = _replay(cx, rpc, [*events[:k], forged, *events[k:]], head)
    rid = "0x" + bytes(target.args["loanId"]).hex()
    hit = next(
        v for v in report.violations if v.record == rid and v.code != "PolicyVersionMismatch"
    )
    first_bank = next(
        t["lender"] for t in target.args["loan"]["tranches"] if t["lender"] != cx.platform.address
    )
    attested_at = cx.plat.member(first_bank)["attested_at"]
    assert (hit.check, hit.code, hit.details["lender"], hit.details["attestedUntil"]) == (
        "rules",
        "StaleAttestation",
        first_bank,
        attested_at + 1,
    )
