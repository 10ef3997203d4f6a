"""EIP-712 provenance in Python: the same digest as eth_account's generic encoder, round trips,
wrong signers, malleable signatures, and documents verified against a record's digest."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import provenance
from ledger.documents import document_digest, verify_document
from ledger.domain import CoLoan, CreditLine, Product, RepaymentType, Tranche, sort_tranches

KEYS = [Account.from_key(bytes([i + 1]) * 32) for i in range(4)]
DOMAIN = provenance.Domain(31337, "0x" + "ab" * 20)
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _loan(principal: int = 1_000_000, doc: bytes = b"contract v1") -> CoLoan:
    p = principal * 4 // 10
    tr = sort_tranches([Tranche(KEYS[0].address, p), Tranche(KEYS[1].address, principal - p)])
    return CoLoan(
        b"\x01" * 32,
        b"\x02" * 32,
        KEYS[0].address,
        Product.CONSUMER,
        principal,
        1200,
        180,
        RepaymentType.INSTALMENT,
        2**40,
        tr,
        document_digest=document_digest(doc),
    )


amounts = st.integers(min_value=1, max_value=2**48 - 1)


@settings(max_examples=40)
@given(
    principal=amounts,
    apr=st.integers(0, 2**32 - 1),
    term=st.integers(0, 2**32 - 1),
    product=st.sampled_from(list(Product)),
    deadline=st.integers(0, 2**64 - 1),
)
def test_loan_digest_equals_eth_account_encoder(principal, apr, term, product, deadline):
    tr = (Tranche(KEYS[0].address, principal),)
    loan = CoLoan(
        b"\x03" * 32,
        b"\x04" * 32,
        KEYS[0].address,
        product,
        principal,
        apr,
        term,
        RepaymentType.BULLET,
        deadline,
        tr,
    )
    expected = _hash_eip191_message(
        encode_typed_data(full_message=provenance.typed_data(DOMAIN, loan))
    )
    assert provenance.digest(DOMAIN, loan) == expected


def test_line_digest_equals_eth_account_encoder():
    line = CreditLine(
        b"\x05" * 32,
        b"\x06" * 32,
        KEYS[0].address,
        Product.BUSINESS,
        5_000_000,
        2**34,
        2**40,
        (Tranche(KEYS[0].address, 5_000_000),),
    )
    expected = _hash_eip191_message(
        encode_typed_data(full_message=provenance.typed_data(DOMAIN, line))
    )
    assert provenance.digest(DOMAIN, line) == expected


def test_round_trip_and_wrong_key():
    loan = _loan()
    sigs = [provenance.sign(k.key, DOMAIN, loan) for k in KEYS[:2]]
    by_address = {k.address: s for k, s in zip(KEYS[:2], sigs, strict=True)}
    ordered = [by_address[a] for a in loan.signers]
    provenance.verify(DOMAIN, loan, ordered)
    assert provenance.recover(provenance.digest(DOMAIN, loan), ordered[0]) == loan.signers[0]
    forged = [provenance.sign(KEYS[2].key, DOMAIN, loan), ordered[1]]
    with pytest.raises(provenance.SignatureError) as exc:
        provenance.verify(DOMAIN, loan, forged)
    assert exc.value.signer == loan.signers[0] and KEYS[2].address in str(exc.value)


def test_signature_binds_chain_contract_and_terms():
    loan = _loan()
    sigs = [
        provenance.sign({k.address: k for k in KEYS}[a].key, DOMAIN, loan) for a in loan.signers
    ]
    for other_domain in (
        provenance.Domain(1, DOMAIN.verifying_contract),
        provenance.Domain(DOMAIN.chain_id, "0x" + "cd" * 20),
    ):
        with pytest.raises(provenance.SignatureError):
            provenance.verify(other_domain, loan, sigs)
    with pytest.raises(provenance.SignatureError):
        provenance.verify(DOMAIN, _loan(principal=1_000_001), sigs)


def test_high_s_signature_is_refused():
    loan = _loan()
    sig = provenance.sign(KEYS[0].key, DOMAIN, loan)
    s = int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + (N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(provenance.SignatureError, match="malleable"):
        provenance.recover(provenance.digest(DOMAIN, loan), flipped)


def test_document_verified_against_the_record():
    loan = _loan(doc=b"signed loan agreement")
    assert verify_document(b"signed loan agreement", loan)
    assert not verify_document(b"signed loan agreement (altered)", loan)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.binary(max_size=200))
def test_fast_keccak_and_checksum_agree_with_eth_utils(address: bytes, data: bytes) -> None:
    from eth_utils import keccak as eth_keccak
    from eth_utils import to_checksum_address

    from ledger.domain import keccak256
    from ledger.provenance import _checksummed

    assert keccak256(data) == eth_keccak(data)
    assert _checksummed(address) == to_checksum_address(address)


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@settings(max_examples=60)
@given(secret=st.integers(1, SECP256K1_N - 1), message=st.binary(min_size=32, max_size=32))
def test_signatures_are_eth_accounts_byte_for_byte(secret: int, message: bytes) -> None:
    # sign_digest goes straight to libsecp256k1; eth_account (through eth_keys) is the reference
    key = secret.to_bytes(32, "big")
    expected = bytes(Account.unsafe_sign_hash(message, key).signature)
    assert provenance.sign_digest(key, message) == expected
    assert provenance.sign_digest("0x" + key.hex(), message) == expected


def test_sign_digest_refuses_a_message_that_is_not_a_digest() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        provenance.sign_digest(KEYS[0].key, b"\x01" * 31)
