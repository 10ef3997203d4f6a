"""The audit against code it did not expect: other source at a registered address, a ledger
wired to a shadow registry, every immutable against the deployment, state altered behind the
contracts' back."""

from __future__ import annotations

import dataclasses

from eth_utils import keccak

from ledger.audit import run_audit
from ledger.audit.report import AuditReport
from ledger.chain.deployment import Deployment, deploy, fund
from ledger.domain import (
    Role,
)
from ledger.keys import dev_account
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import LocalConsortium, bootstrap


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


def shadow_wired(cx) -> tuple[Deployment, Deployment]:
    """Issue 14, item 6: one member (the platform) deploys a real second registry it owns and a
    ledger wired to it, admits two banks of its own making there and records a loan that the
    real consortium never approved. Returns (the shadow deployment, the deployment file it hands
    out: the shadow ledger with the real registry's address and code hash)."""
    insider = cx.platform  # owns the shadow registry (its deployer, never handed over)
    shadow = deploy(cx.rpc_url, insider)
    front = dev_account("shadow-platform")
    banks = [dev_account("shadow-bank", i) for i in range(2)]
    fund(cx.rpc_url, [a.address for a in (front, *banks)])
    scx = LocalConsortium(cx.rpc_url, shadow, insider, front, banks, cx.auditor)
    scx.deployer.admit_member(front.address, Role.PLATFORM, "Platform (shadow)")
    for i, bank in enumerate(banks):
        scx.deployer.admit_member(bank.address, Role.LENDER, f"Shadow bank {i}")
        scx.client(bank).attest_capital(10**12, 10**13, scx.now() + 86_400)
    loan = scx.loan(5_000_000)
    scx.plat.originate(loan, scx.sign(loan))
    forged = dataclasses.replace(
        shadow,
        registry=cx.deployment.registry,
        registry_code_hash=cx.deployment.registry_code_hash,
        deployment_block=cx.deployment.deployment_block,
    )
    return shadow, forged


def test_ledger_wired_to_a_shadow_registry_is_reported_not_crashed_on():
    chain, cx = _tampered_chain()
    try:
        shadow, forged = shadow_wired(cx)
        report = run_audit(chain.url, forged)  # must not raise
        # the ledger, and the shadow's council and loan servicing the forged file hands out
        # too, point elsewhere
        hits = [v for v in report.violations if v.code == "ImmutableMismatch"]
        assert {v.details["immutable"] for v in hits} == {
            "CoLendingLedger.registry",
            "ConsortiumCouncil._registry",
            "LoanServicing.registry",
        }, hits
        hits = [v for v in hits if v.details["immutable"] == "CoLendingLedger.registry"]
        assert shadow.registry.lower()[2:] in hits[0].details["onchain"]
        assert cx.deployment.registry.lower()[2:] in hits[0].details["expected"]
        assert not report.ok
        # the honest deployment files, the real one and the shadow's own, still pass the check
        for dep in (cx.deployment, shadow):
            clean = run_audit(chain.url, dep)
            assert not [v for v in clean.violations if v.check == "bytecode"], clean.violations
    finally:
        chain.stop()


def test_every_immutable_is_compared_with_the_deployment():
    """Each immutable of the ledger has an expected value; a changed chain id or address in the
    deployment file is named by the immutable it contradicts, not masked."""
    from ledger.audit.bytecode import compare_code, expected_immutables
    from ledger.chain.artifacts import load_artifacts

    art = load_artifacts()["CoLendingLedger"]
    dep = Deployment(31337, "0x" + "11" * 20, "0x" + "22" * 20, 1, "", "", "0x" + "33" * 20, 0)
    values = expected_immutables("CoLendingLedger", dep)
    assert set(art.immutable_names.values()) == set(values)
    code = bytearray(bytes.fromhex(art.deployed_bytecode[2:]))
    for ident, refs in art.immutable_references.items():
        for r in refs:
            code[r["start"] : r["start"] + r["length"]] = values[art.immutable_names[ident]]
    report = AuditReport(31337, dep.registry, dep.ledger, 1, 1)
    compare_code(report, "CoLendingLedger", dep.ledger, bytes(code), art, values)
    assert report.violations == []
    other = dataclasses.replace(dep, chain_id=1, ledger="0x" + "44" * 20)
    report = AuditReport(31337, dep.registry, dep.ledger, 1, 1)
    compare_code(
        report, "CoLendingLedger", dep.ledger, bytes(code), art,
        expected_immutables("CoLendingLedger", other),
    )  # fmt: skip
    named = {v.details["immutable"] for v in report.violations if v.code == "ImmutableMismatch"}
    assert named == {"EIP712._cachedChainId", "EIP712._cachedThis", "EIP712._cachedDomainSeparator"}
    # an immutable without an expected value is a violation, not a free pass
    report = AuditReport(31337, dep.registry, dep.ledger, 1, 1)
    partial = {k: v for k, v in values.items() if k != "CoLendingLedger.registry"}
    compare_code(report, "CoLendingLedger", dep.ledger, bytes(code), art, partial)
    assert [v.code for v in report.violations] == ["UnverifiedImmutable"]


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
