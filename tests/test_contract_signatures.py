"""EIP-712 provenance as the contracts judge it, on a real chain (anvil and Hardhat node).

A record is accepted only with one valid signature per tranche, by that tranche's lender, over this
record, this contract and this chain, before the deadline, from active unfrozen members in the
right roles, submitted by the record's platform. Python's digest and the contract's agree.

Not covered here: ERC-1271 contract-wallet signers. They need a test wallet contract under
contracts/test/, which this suite does not add.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys import keys
from eth_utils import is_address, keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import provenance
from ledger.chain.deployment import fund
from ledger.chain.errors import ContractRevert
from ledger.domain import CoLoan, CreditLine, LoanStatus, Product, RepaymentType, Role, Tranche
from ledger.keys import dev_account
from ledger.localnet.consortium import LocalConsortium, bootstrap, new_id
from ledger.provenance import Domain, SignatureError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


# ---------------------------------------------------------------------------------- helpers


def _norm(v: Any) -> Any:
    if isinstance(v, str) and is_address(v):
        return to_checksum_address(v)
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    return v


@contextlib.contextmanager
def refused(code: str, **expected: Any) -> Iterator[None]:
    """Expect the contracts to refuse with error `code` carrying exactly `expected`."""
    with pytest.raises(ContractRevert) as info:
        yield
    exc = info.value
    assert exc.code == code, f"expected {code}, got {exc}"
    got = {k: _norm(v) for k, v in exc.values.items()}
    want = {k: _norm(v) for k, v in expected.items()}
    assert got == want, f"{code}: got {got}, expected {want}"


def set_next_timestamp(cx: LocalConsortium, ts: int) -> None:
    cx.gov.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])


def accepted(cx: LocalConsortium, loan: CoLoan, signatures: list[bytes] | None = None) -> int:
    res = cx.plat.originate(loan, cx.sign(loan) if signatures is None else signatures)
    assert not res.already_recorded
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.ACTIVE
    return res.block_number


def sign_as(
    cx: LocalConsortium,
    record: CoLoan | CreditLine,
    *extra: LocalAccount,
    domain: Domain | None = None,
) -> list[bytes]:
    accounts = cx.accounts() | {a.address: a for a in extra}
    dom = domain or cx.plat.domain
    return [provenance.sign(accounts[s].key, dom, record) for s in record.signers]


def slot(record: CoLoan | CreditLine, account: LocalAccount) -> int:
    return list(record.signers).index(account.address)


def admitted(cx: LocalConsortium, role_name: str, index: int, role: Role) -> LocalAccount:
    account = dev_account(role_name, index)
    fund(cx.rpc_url, [account.address])
    cx.gov.admit_member(account.address, role, f"{role_name} {index} (test)")
    return account


# ---------------------------------------------------------------------------------- missing / wrong


@pytest.mark.parametrize("given_count", [2, 4])
def test_one_signature_per_tranche(cx, given_count):
    loan = cx.loan(1_000_000)
    sigs = cx.sign(loan)
    sigs = sigs[:given_count] if given_count < 3 else [*sigs, sigs[0]]
    with refused("SignatureCountMismatch", expected=3, given=given_count):
        cx.plat.originate(loan, sigs)
    line = cx.line(1_000_000)
    with refused("SignatureCountMismatch", expected=3, given=2):
        cx.plat.grant_line(line, cx.sign(line)[:2])


@pytest.mark.parametrize(
    ("cut", "given"),
    [(1, 3), (66, 3), (-1, 4)],
    ids=["last-signature-short", "last-length-cut", "trailing-byte"],
)
def test_a_malformed_signature_list_is_refused(cx, cut, given):
    # the ledger takes the signatures packed (2-byte length, then the signature); a list that
    # does not end exactly after its last entry is refused before any signature is checked
    loan = cx.loan(1_000_000)
    packed = provenance.pack_signatures(cx.sign(loan))
    packed = packed + b"\x00" if cut == -1 else packed[:-cut]
    with refused("SignatureCountMismatch", expected=3, given=given):
        cx.plat.transact(cx.plat.ledger, "originate", loan.as_abi(), packed, [])
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.NONE


@pytest.mark.parametrize(
    "bad",
    [b"", b"\0" * 65, keccak(b"garbage") + keccak(b"more garbage") + b"\x1b", b"\x01" * 64],
    ids=["empty", "zeros", "random", "64-bytes"],
)
def test_missing_or_garbage_signature(cx, bad):
    lender = cx.lenders[0]
    loan = cx.loan(1_000_000)
    sigs = cx.sign(loan)
    sigs[slot(loan, lender)] = bad
    with refused("InvalidSignature", signer=lender.address):
        cx.plat.originate(loan, sigs)
    with pytest.raises(SignatureError):
        provenance.verify(cx.plat.domain, loan, sigs)


def test_wrong_signer(cx):
    l0, l1 = cx.lenders[0], cx.lenders[1]
    loan = cx.loan(1_000_000)
    sigs = cx.sign(loan)
    sigs[slot(loan, l0)] = provenance.sign(l1.key, cx.plat.domain, loan)
    with refused("InvalidSignature", signer=l0.address):
        cx.plat.originate(loan, sigs)
    with pytest.raises(SignatureError, match="signed by"):
        provenance.verify(cx.plat.domain, loan, sigs)

    line = cx.line(1_000_000)
    line_sigs = cx.sign(line)
    line_sigs[slot(line, l0)] = provenance.sign(l1.key, cx.plat.domain, line)
    with refused("InvalidSignature", signer=l0.address):
        cx.plat.grant_line(line, line_sigs)


def test_signatures_in_the_wrong_order(cx):
    loan = cx.loan(1_000_000)
    sigs = cx.sign(loan)
    with refused("InvalidSignature", signer=loan.tranches[0].lender):
        cx.plat.originate(loan, [sigs[1], sigs[0], sigs[2]])
    accepted(cx, loan, sigs)


# ---------------------------------------------------------------------------------- members, roles


@pytest.mark.parametrize("action", ["suspend", "remove"])
def test_inactive_lender(cx, action):
    lender = cx.lenders[0]
    loan = cx.loan(1_000_000)
    getattr(cx.gov, f"{action}_member")(lender.address)
    with refused("NotActiveMember", account=lender.address):
        cx.plat.originate(loan, cx.sign(loan))
    if action == "suspend":
        cx.gov.reinstate_member(lender.address)
        accepted(cx, loan)


def test_suspended_platform(cx):
    loan = cx.loan(1_000_000)
    cx.gov.suspend_member(cx.platform.address)
    with refused("NotActiveMember", account=cx.platform.address):
        cx.plat.originate(loan, cx.sign(loan))


def test_frozen_member(cx):
    lender = cx.lenders[1]
    loan = cx.loan(1_000_000)
    cx.gov.set_frozen(lender.address, True)
    with refused("MemberIsFrozen", account=lender.address):
        cx.plat.originate(loan, cx.sign(loan))
    line = cx.line(1_000_000)
    with refused("MemberIsFrozen", account=lender.address):
        cx.plat.grant_line(line, cx.sign(line))
    cx.gov.set_frozen(lender.address, False)
    accepted(cx, loan)


def test_non_member_as_tranche_lender(cx):
    stranger = dev_account("lender", 9)
    loan = cx.loan(1_000_000, [(cx.platform, 500_000), (stranger.address, 500_000)])
    with refused("NotActiveMember", account=stranger.address):
        cx.plat.originate(loan, sign_as(cx, loan, stranger))


def test_lender_in_the_platform_slot(cx):
    l0, l1 = cx.lenders[0], cx.lenders[1]
    loan = cx.loan(1_000_000, [(l0, 500_000), (l1, 500_000)], platform=l0)
    with refused("WrongRole", account=l0.address, role=int(Role.LENDER)):
        cx.client(l0).originate(loan, cx.sign(loan))


# (no key holds the governor role: since hand-over it is the council's timelock contract)
@pytest.mark.parametrize("who", ["auditor", "second platform"])
def test_non_lender_as_tranche_lender(cx, who):
    if who == "second platform":
        account, role = admitted(cx, "platform", 1, Role.PLATFORM), Role.PLATFORM
    else:
        account = getattr(cx, who)
        role = Role.AUDITOR if who == "auditor" else Role.GOVERNOR
    loan = cx.loan(1_000_000, [(cx.platform, 500_000), (account, 500_000)])
    with refused("WrongRole", account=account.address, role=int(role)):
        cx.plat.originate(loan, sign_as(cx, loan, account))


@pytest.mark.parametrize("who", ["lender", "auditor"])
def test_submitter_must_be_the_platform(cx, who):
    account = cx.lenders[0] if who == "lender" else cx.auditor
    loan = cx.loan(1_000_000)
    with refused("SubmitterNotPlatform", submitter=account.address, platform=cx.platform.address):
        cx.client(account).originate(loan, cx.sign(loan))
    line = cx.line(1_000_000)
    with refused("SubmitterNotPlatform", submitter=account.address, platform=cx.platform.address):
        cx.client(account).grant_line(line, cx.sign(line))
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.NONE


# ---------------------------------------------------------------------------------- replay


def test_signature_for_another_loan(cx):
    a = cx.loan(1_000_000)
    b = dataclasses.replace(a, loan_id=new_id("loan", cx.platform.address))
    sigs_a = cx.sign(a)
    with refused("InvalidSignature", signer=b.tranches[0].lender):
        cx.plat.originate(b, sigs_a)
    with pytest.raises(SignatureError):
        provenance.verify(cx.plat.domain, b, sigs_a)
    accepted(cx, a, sigs_a)
    # and once recorded, the same signed loan cannot land again under its id
    with refused("IdAlreadyUsed", id=a.loan_id):
        packed = provenance.pack_signatures(sigs_a)
        cx.plat.transact(cx.plat.ledger, "originate", a.as_abi(), packed, [])


def test_signature_over_a_line_is_not_a_loan_signature(cx):
    line = cx.line(1_000_000)
    loan = cx.loan(1_000_000, borrower_key=line.borrower_key)
    assert loan.signers == line.signers
    with refused("InvalidSignature", signer=loan.tranches[0].lender):
        cx.plat.originate(loan, cx.sign(line))


def test_signature_for_another_chain(cx):
    loan = cx.loan(1_000_000)
    other = Domain(cx.deployment.chain_id + 1, cx.deployment.ledger)
    sigs = sign_as(cx, loan, domain=other)
    with refused("InvalidSignature", signer=loan.tranches[0].lender):
        cx.plat.originate(loan, sigs)
    provenance.verify(other, loan, sigs)  # the signatures are good, for that chain
    with pytest.raises(SignatureError):
        provenance.verify(cx.plat.domain, loan, sigs)


def test_signature_for_another_deployment_on_the_same_chain(cx):
    cx2 = bootstrap(cx.rpc_url)
    try:
        assert cx2.deployment.ledger != cx.deployment.ledger
        assert cx2.deployment.chain_id == cx.deployment.chain_id
        loan = cx.loan(1_000_000)
        sigs = cx2.sign(loan)  # signed for the second ledger's domain
        with refused("InvalidSignature", signer=loan.tranches[0].lender):
            cx.plat.originate(loan, sigs)
        # the very same signatures are accepted where they belong
        cx2.plat.originate(loan, sigs)
        assert cx2.plat.loan_state(loan.loan_id)[2] == LoanStatus.ACTIVE
        assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.NONE
    finally:
        cx2.reset_clients()


# ---------------------------------------------------------------------------------- deadline


def test_expired_deadline(cx):
    now = cx.now()
    loan = cx.loan(1_000_000, deadline=now - 1)
    with refused("SignatureExpired", deadline=now - 1, nowTs=now):
        cx.plat.originate(loan, cx.sign(loan))
    line = cx.line(1_000_000, deadline=now - 1)
    with refused("SignatureExpired", deadline=now - 1, nowTs=now):
        cx.plat.grant_line(line, cx.sign(line))


def test_deadline_is_inclusive(cx):
    at = cx.now() + 10
    loan = cx.loan(1_000_000, deadline=at)
    set_next_timestamp(cx, at)
    block = accepted(cx, loan)
    assert cx.gov.w3.eth.get_block(block)["timestamp"] == at


def test_deadline_passing_between_estimate_and_mining_is_reported_as_signature_expired(cx):
    now = cx.now()
    loan = cx.loan(1_000_000, deadline=now)
    set_next_timestamp(cx, now + 1)
    with refused("SignatureExpired", deadline=now, nowTs=now + 1):
        cx.plat.originate(loan, cx.sign(loan))


# ---------------------------------------------------------------------------------- malleability


def test_high_s_signature_refused(cx):
    lender = cx.lenders[0]
    loan = cx.loan(1_000_000)
    sigs = cx.sign(loan)
    i = slot(loan, lender)
    good = sigs[i]
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    assert v in (27, 28) and s <= SECP256K1_N // 2
    flipped = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])

    d = provenance.digest(cx.plat.domain, loan)
    # the twin is a real signature by the same key: raw ecrecover accepts it
    twin = keys.Signature(vrs=(55 - v - 27, int.from_bytes(r, "big"), SECP256K1_N - s))
    assert twin.recover_public_key_from_msg_hash(d).to_checksum_address() == lender.address
    assert provenance.recover(d, good) == lender.address
    with pytest.raises(SignatureError, match="malleable"):
        provenance.recover(d, flipped)

    sigs[i] = flipped
    with refused("InvalidSignature", signer=lender.address):
        cx.plat.originate(loan, sigs)
    sigs[i] = good
    accepted(cx, loan, sigs)


# ---------------------------------------------------------------------------------- digests agree


_bytes32 = st.binary(min_size=32, max_size=32)
_address = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address("0x" + b.hex()))
_tranches = st.lists(
    st.builds(Tranche, _address, st.integers(0, 2**128 - 1)), min_size=0, max_size=5
).map(tuple)
_loans = st.builds(
    CoLoan,
    loan_id=_bytes32,
    borrower_key=_bytes32,
    platform=_address,
    product=st.sampled_from(Product),
    principal=st.integers(0, 2**128 - 1),
    apr_bps=st.integers(0, 2**32 - 1),
    term_days=st.integers(0, 2**32 - 1),
    repayment=st.sampled_from(RepaymentType),
    deadline=st.integers(0, 2**64 - 1),
    tranches=_tranches,
    line_id=_bytes32,
    document_digest=_bytes32,
    schedule_digest=_bytes32,
)
_lines = st.builds(
    CreditLine,
    line_id=_bytes32,
    borrower_key=_bytes32,
    platform=_address,
    product=st.sampled_from(Product),
    limit=st.integers(0, 2**128 - 1),
    expires_at=st.integers(0, 2**64 - 1),
    deadline=st.integers(0, 2**64 - 1),
    shares=_tranches,
    document_digest=_bytes32,
)
_few = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _eth_account_digest(domain: Domain, record: CoLoan | CreditLine) -> bytes:
    msg = encode_typed_data(full_message=provenance.typed_data(domain, record))
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


@_few
@given(loan=_loans)
def test_loan_digest_matches_contract(cx, loan):
    d = provenance.digest(cx.plat.domain, loan)
    assert cx.plat.loan_digest(loan) == d
    assert _eth_account_digest(cx.plat.domain, loan) == d


@_few
@given(line=_lines)
def test_line_digest_matches_contract(cx, line):
    d = provenance.digest(cx.plat.domain, line)
    assert cx.plat.line_digest(line) == d
    assert _eth_account_digest(cx.plat.domain, line) == d


def test_recorded_commitment_matches_python(cx):
    loan = cx.loan(1_234_567)
    accepted(cx, loan)
    assert cx.plat.loan_state(loan.loan_id)[0] == provenance.commitment(loan)
