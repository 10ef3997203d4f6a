"""Issue 14 items 1, 10, 11, tried by insiders with real member keys against the contracts
directly: a platform alone (R0), a bank's attestation from a permissive policy (R8 at use time),
a bank's contract wallet that burns gas in a non-atomic batch (ERC-1271 gas cap)."""

from __future__ import annotations

import dataclasses

from eth_utils import to_checksum_address

from ledger import rules
from ledger.book import MemberState
from ledger.chain.artifacts import load_artifacts
from ledger.chain.errors import ContractRevert
from ledger.domain import DEFAULT_POLICY, MemberInfo, Role
from ledger.provenance import sign
from tests.contract_lifecycle_support import events
from tests.contract_rules_support import (
    MAX_AGE,
    exposure,
    mine_at,
    originate,
    refused,
    set_next_timestamp,
)

DAY = 86_400


# ------------------------------------------------------------------ R0: joint means joint


def test_r0_a_platform_alone_cannot_fill_a_borrowers_cap(cx):
    """The platform signs and submits records with only its own tranche, straight to the ledger:
    each is refused, so the borrower's R1 headroom and R3 slots stay for bank-funded loans."""
    key = cx.loan(1).borrower_key
    p = cx.platform
    alone = cx.loan(20_000_000, [(p, 20_000_000)], borrower_key=key)
    with refused("TooFewBankTranches", id=alone.loan_id, banks=0, min=1):
        cx.plat.originate(alone, cx.sign(alone))
    line = cx.line(20_000_000, [(p, 20_000_000)], borrower_key=key)
    with refused("TooFewBankTranches", id=line.line_id, banks=0, min=1):
        cx.plat.grant_line(line, cx.sign(line))

    # through a batch: atomic reverts, non-atomic records only the joint loan
    joint = cx.loan(20_000_000, borrower_key=key)
    with refused("TooFewBankTranches", id=alone.loan_id, banks=0, min=1):
        cx.plat.originate_batch([alone, joint], [cx.sign(alone), cx.sign(joint)], atomic=True)
    receipt = cx.plat.originate_batch(
        [alone, joint], [cx.sign(alone), cx.sign(joint)], atomic=False
    )
    assert [e["loanId"] for e in events(cx.plat, "LoanOriginated", receipt)] == [joint.loan_id]
    (rejected,) = events(cx.plat, "LoanRejected", receipt)
    assert cx.plat.errors.decode(rejected["reason"]).code == "TooFewBankTranches"
    assert exposure(cx, key)["consumer"] == 20_000_000

    # ledger.rules gives the same verdict before anything is sent
    book = rules.Book(policy=DEFAULT_POLICY)
    book.members[p.address] = MemberState.from_info(
        MemberInfo.from_abi(p.address, cx.plat.call(cx.plat.registry, "member", p.address))
    )
    other = cx.loan(1_000_000, [(p, 1_000_000)])
    assert rules.check_loan(book, other, cx.now()) == rules.Violation(
        "TooFewBankTranches", {"id": other.loan_id, "banks": 0, "min": 1}
    )


def test_r0_is_governed_and_never_below_one(cx):
    """minBankTranches is a policy field: 0 is refused, and so is a value that leaves no room for
    the platform within R3; a raised value binds at once."""
    for bad in (0, DEFAULT_POLICY.max_institutions):
        with refused("InvalidPolicy", field="minBankTranches"):
            cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, min_bank_tranches=bad))
    two = dataclasses.replace(DEFAULT_POLICY, min_bank_tranches=2)
    cx.gov.set_policy(two)
    assert cx.plat.current_policy() == (two, 2)
    # the ledger's one-word read carries it in the slot's top byte, beside the version
    word, version_and_pause, _ = cx.plat.registry.functions.partyWords([]).call()
    assert (word >> 248, (word >> 200) & (2**33 - 1), version_and_pause) == (2, 0, 2)
    assert (word >> 233) & 0x7FFF == two.max_all_in_apr_bps  # R9, above version and pause
    assert (word >> 168) & (2**32 - 1) == two.max_attestation_age
    p, l0, l1 = cx.platform, cx.lenders[0], cx.lenders[1]
    one_bank = cx.loan(1_000_000, [(p, 400_000), (l0, 600_000)])
    with refused("TooFewBankTranches", id=one_bank.loan_id, banks=1, min=2):
        cx.plat.originate(one_bank, cx.sign(one_bank))
    originate(cx, cx.loan(1_000_000, [(p, 400_000), (l0, 300_000), (l1, 300_000)]))


# ------------------------------------------------------------------ R8 at use time


def test_r8_an_attestation_from_a_permissive_policy_ages_by_the_policy_in_force(cx):
    """A bank attests for 300 days while a governor's permissive policy allows a year; once the
    90-day policy is back, its figures stop counting 90 days after it attested."""
    bank, p = cx.lenders[0], cx.platform
    cx.gov.set_policy(dataclasses.replace(DEFAULT_POLICY, max_attestation_age=365 * DAY))
    cx.client(bank).attest_capital(10**12, 10**13, cx.now() + 300 * DAY)
    cx.gov.set_policy(DEFAULT_POLICY)
    record = cx.plat.member(bank.address)
    at, until = record["attested_at"], record["attested_until"]
    assert until > at + MAX_AGE
    # the ledger's view shows both dates: the attested period and the one R8 judges at use
    usage = cx.plat.lender_usage(bank.address, p.address)
    assert (usage["attested_until"], usage["valid_until"]) == (until, at + MAX_AGE)

    last = cx.loan(1_000_000, [(p, 400_000), (bank, 600_000)], deadline=at + MAX_AGE + DAY)
    set_next_timestamp(cx, at + MAX_AGE)  # the last second the figures may be used
    originate(cx, last)

    mine_at(cx, at + MAX_AGE + 1)
    late = cx.loan(1_000_000, [(p, 400_000), (bank, 600_000)])
    with refused(
        "StaleAttestation", lender=bank.address, attestedUntil=at + MAX_AGE, nowTs=cx.now()
    ):
        cx.plat.originate(late, cx.sign(late))
    line = cx.line(1_000_000, [(p, 400_000), (bank, 600_000)])
    with refused(
        "StaleAttestation", lender=bank.address, attestedUntil=at + MAX_AGE, nowTs=cx.now()
    ):
        cx.plat.grant_line(line, cx.sign(line))

    # ledger.rules judges it the same way
    m = MemberState.from_info(
        MemberInfo.from_abi(bank.address, cx.plat.call(cx.plat.registry, "member", bank.address))
    )
    assert m.attestation_valid_until(DEFAULT_POLICY) == at + MAX_AGE

    # a fresh attestation under the policy in force restores it
    cx.client(bank).attest_capital(10**12, 10**13, cx.now() + DAY)
    originate(cx, cx.loan(1_000_000, [(p, 400_000), (bank, 600_000)]))


# ------------------------------------------------------------------ ERC-1271 gas cap


def _burner(cx, owner):
    art = load_artifacts()["TestGasBurner1271"]
    client = cx.client(owner)
    factory = client.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx = {
        "from": owner.address,
        "data": factory.constructor(owner.address).data_in_transaction,
        "nonce": client.nonces.take(),
        "chainId": cx.deployment.chain_id,
        "gas": 1_000_000,
        **client.fees(),
    }
    receipt = client.wait(client.send_raw(client.sign(tx)))
    address = to_checksum_address(receipt.raw["contractAddress"])
    return client.w3.eth.contract(address=address, abi=art.abi)


def test_a_gas_burning_wallet_cannot_sink_a_non_atomic_batch(cx):
    """A bank whose ERC-1271 wallet spins until its gas runs out co-signs one loan of a batch:
    that loan is refused as an invalid signature and the others land, within a gas limit that
    covers the batch's honest loans with room to spare."""
    owner = cx.auditor  # any key; it only owns the wallet
    wallet = _burner(cx, owner)
    cx.gov.admit_member(wallet.address, Role.LENDER, "Bank X (gas-burning wallet)")
    data = cx.plat.registry.encode_abi("attestCapital", args=[10**12, 10**13, cx.now() + DAY])
    cx.client(owner).transact(wallet, "execute", cx.deployment.registry, data)

    p = cx.platform
    honest = [cx.loan(1_000_000), cx.loan(2_000_000)]
    hostile = cx.loan(1_000_000, [(p, 400_000), (wallet.address, 600_000)])
    loans = [honest[0], hostile, honest[1]]
    sigs = [cx.sign(honest[0])]
    sigs.append(
        [
            sign(p.key if t.lender == p.address else owner.key, cx.plat.domain, hostile)
            for t in hostile.tranches
        ]
    )
    sigs.append(cx.sign(honest[1]))

    receipt = cx.plat.originate_batch(loans, sigs, atomic=False, gas=1_500_000)
    landed = [e["loanId"] for e in events(cx.plat, "LoanOriginated", receipt)]
    assert landed == [honest[0].loan_id, honest[1].loan_id]
    (rejected,) = events(cx.plat, "LoanRejected", receipt)
    err = cx.plat.errors.decode(rejected["reason"])
    assert (rejected["loanId"], err.code) == (hostile.loan_id, "InvalidSignature")
    assert err.values["signer"] == wallet.address
    assert receipt.gas_used < 600_000  # the wallet got 50,000, not the batch's gas
    # alone, its loan is refused the same way and costs no more than the cap
    try:
        cx.plat.originate(hostile, sigs[1], gas=400_000)
    except ContractRevert as exc:
        assert exc.code == "InvalidSignature"
    else:
        raise AssertionError("a wallet that never answers was taken as a signature")
