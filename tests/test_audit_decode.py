"""The audit's fast paths against the general ones they stand in for.

LoanOriginated and the ledger's views are read by hand from their fixed layout, the views are
called in bulk through a state-override batch caller, and signers are recovered straight through
coincurve: each must give exactly what eth_abi, plain eth_calls and `ledger.provenance.recover`
give, on a real recorded history and on Hypothesis' encodings, and must hand anything it does
not recognise back to the general path instead of reading it wrongly.
"""

from __future__ import annotations

import dataclasses

import eth_abi
import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.audit import load_history
from ledger.audit.events import (
    LOAN_ORIGINATED_TOPIC,
    EventDecoder,
    Rpc,
    RpcError,
    decode_loan_originated,
    fetch_logs,
)
from ledger.audit.views import (
    VIEWS,
    _batched_views,
    _through_caller,
    calldata,
    decode_view,
    view_keys,
)
from ledger.chain.artifacts import load_artifacts
from ledger.documents import document_digest
from ledger.domain import Product, Repayment
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import bootstrap
from ledger.provenance import (
    _HALF_N,
    _SECP256K1_N,
    pack_signatures,
    recover,
    recover_address,
    sign_digest,
)

_LOAN_TUPLE = (
    "(bytes32,bytes32,address,uint8,uint128,uint32,uint32,uint8,bytes32,bytes32,uint64,"
    "(address,uint128)[])"
)


def _decoder() -> EventDecoder:
    art = load_artifacts()
    return EventDecoder(art["ConsortiumRegistry"].abi, art["CoLendingLedger"].abi)


def _topics(log: dict) -> list[bytes]:
    return [bytes.fromhex(t[2:]) for t in log["topics"]]


# ---------------------------------------------------------------------- a real history


@pytest.fixture(scope="module")
def recorded():
    """Loans of both products and repayment kinds, with and without a document, two- and
    three-party, one drawn on a credit line; a repayment and a line (eth_abi's events)."""
    with LocalChain("anvil") as chain:
        cx = bootstrap(chain.url)
        plat = cx.plat
        line = cx.line(3_000_000)
        plat.grant_line(line, cx.sign(line))
        loans = [
            cx.loan(100_000 + i, product=Product(i % 2), repayment=Repayment(i % 2))
            for i in range(6)
        ]
        loans[1] = dataclasses.replace(loans[1], document_digest=document_digest(b"agreement"))
        loans.append(cx.loan(800_000, [(cx.platform, 400_000), (cx.lenders[1], 400_000)]))
        loans.append(cx.loan(900_000, borrower_key=line.borrower_key, line_id=line.line_id))
        for loan in loans:
            plat.originate(loan, cx.sign(loan))
        plat.repay(loans[0], b"\x07" * 32, 50_000, 1_000)
        yield chain, cx, loans


def test_hand_decoder_reads_real_logs_as_eth_abi_does(recorded):
    chain, cx, loans = recorded
    decoder = _decoder()
    rpc = Rpc(chain.url)
    try:
        head = int(rpc.call("eth_blockNumber", []), 16)
        by_hand = 0
        names = set()
        for contract, log in fetch_logs(rpc, cx.deployment, head):
            fast = decoder.decode(contract, log)
            assert fast == decoder.decode(contract, log, by_hand=False)
            if fast is not None:
                names.add(fast.name)
            if _topics(log)[0] == LOAN_ORIGINATED_TOPIC:
                # the contract's own layout never falls back to eth_abi
                assert decode_loan_originated(_topics(log), bytes.fromhex(log["data"][2:]))
                by_hand += 1
        assert by_hand == len(loans)
        assert {"LineGranted", "Repaid", "MemberAdmitted", "PolicyUpdated"} <= names
    finally:
        rpc.close()


def test_views_through_the_batch_caller_equal_plain_calls(recorded):
    """Every view the state check reads, for keys on and off the chain, gives the same answer
    through the state-override batch caller as with one eth_call each; a view that reverts makes
    the batch caller step aside, and the plain path reports the failure."""
    chain, cx, loans = recorded
    rpc = Rpc(chain.url)
    try:
        head = int(rpc.call("eth_blockNumber", []), 16)
        events = load_history(rpc, cx.deployment, head)
        borrowers, pairs, loan_ids = view_keys(events)
        assert len(loan_ids) == len(loans) and pairs
        calls = [("borrowerExposure", (k,)) for k in [*borrowers, b"\x01" * 32]]
        calls += [("lenderUsage", p) for p in [*pairs, (cx.platform.address, cx.auditor.address)]]
        calls += [("loanState", (lid,)) for lid in [*loan_ids, b"\x02" * 32]]
        led = cx.deployment.ledger
        for block in (head, head - 3):
            fast = _batched_views(rpc, led, block, calls)
            assert fast == _batched_views(rpc, led, block, calls, override=False)
        inputs = [calldata(fn, args) for fn, args in calls]
        assert _through_caller(rpc, led, hex(head), inputs) is not None  # the node took it
        # the registry has no loanState: the call reverts inside the batch caller
        assert _through_caller(rpc, cx.deployment.registry, hex(head), inputs[-1:]) is None
        with pytest.raises(RpcError):
            _batched_views(rpc, cx.deployment.registry, head, calls[-1:])
    finally:
        rpc.close()


# ---------------------------------------------------------------------- Hypothesis: events

_word = st.binary(min_size=32, max_size=32)
_addr = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
_tranche = st.tuples(_addr, st.integers(0, 2**128 - 1))
_sig = st.binary(max_size=140)
_loan = st.tuples(
    _word,
    _word,
    _addr,
    st.integers(0, 255),
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    _word,
    _word,
    st.integers(0, 2**64 - 1),
    st.lists(_tranche, max_size=5),
)


def _encoded(version: int, loan: tuple, sigs: list[bytes]) -> tuple[list[bytes], bytes]:
    data = eth_abi.encode(["uint32", _LOAN_TUPLE, "bytes"], [version, loan, pack_signatures(sigs)])
    topics = [LOAN_ORIGINATED_TOPIC, loan[0], loan[1], bytes(12) + bytes.fromhex(loan[2][2:])]
    return topics, data


def _by_eth_abi(topics: list[bytes], data: bytes) -> dict | None:
    abi = load_artifacts()["CoLendingLedger"].abi
    item = next(i for i in abi if i.get("name") == "LoanOriginated")
    try:
        return EventDecoder._decode_abi(item, topics, data)
    except Exception:  # noqa: BLE001 - eth_abi (or the signature list) refuses it
        return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), _loan, st.lists(_sig, max_size=4))
def test_hand_decoder_equals_eth_abi_on_any_loan(version, loan, sigs):
    topics, data = _encoded(version, loan, sigs)
    fast = decode_loan_originated(topics, data)
    assert fast is not None
    assert fast == _by_eth_abi(topics, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**32 - 1),
    _loan,
    st.lists(_sig, max_size=3),
    st.data(),
)
def test_hand_decoder_never_reads_what_eth_abi_would_not(version, loan, sigs, data):
    """Altered bytes: the hand decoder either gives eth_abi's answer or leaves it to eth_abi."""
    topics, raw = _encoded(version, loan, sigs)
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([0, 0, 0, 1, 31, 32]))
    raw = bytes(raw[: len(raw) - cut])
    if data.draw(st.booleans()):
        topics[3] = data.draw(_word)
    fast = decode_loan_originated(topics, raw)
    if fast is not None:
        assert fast == _by_eth_abi(topics, raw)


# ---------------------------------------------------------------------- Hypothesis: views

_u16s = st.lists(st.integers(0, 2**16 - 1), max_size=6)
_view_values = {
    "borrowerExposure": st.tuples(
        st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1), _u16s, _u16s
    ),
    "lenderUsage": st.tuples(*[st.integers(0, 2**256 - 1)] * 5),
    "loanState": st.tuples(
        st.binary(min_size=24, max_size=24), st.integers(0, 2**256 - 1), st.integers(0, 255)
    ),
}


def _view_by_eth_abi(fn: str, raw: bytes) -> tuple | None:
    try:
        return decode_view(fn, raw, by_hand=False)
    except Exception:  # noqa: BLE001 - eth_abi refuses it
        return None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(VIEWS)), st.data())
def test_view_answers_read_by_hand_as_eth_abi_reads_them(fn, data):
    values = data.draw(_view_values[fn])
    raw = bytearray(eth_abi.encode(list(VIEWS[fn][1]), values))
    assert decode_view(fn, bytes(raw)) == _view_by_eth_abi(fn, bytes(raw))
    if data.draw(st.booleans()):
        for _ in range(data.draw(st.integers(1, 3))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        raw = raw[: len(raw) - data.draw(st.sampled_from([0, 0, 1, 32]))]
        expected = _view_by_eth_abi(fn, bytes(raw))
        if expected is None:
            with pytest.raises(Exception):  # noqa: B017 - refused, as eth_abi refuses it
                decode_view(fn, bytes(raw))
        else:
            assert decode_view(fn, bytes(raw)) == expected


# ---------------------------------------------------------------------- Hypothesis: signers


def _recover_or_none(d: bytes, sig: bytes) -> bytes | None:
    try:
        return bytes.fromhex(recover(d, sig)[2:])
    except Exception:  # noqa: BLE001 - any refusal counts as "not a valid signature"
        return None


@settings(max_examples=150, deadline=None)
@given(st.integers(1, _SECP256K1_N - 1), _word, st.data())
def test_recover_address_agrees_with_recover(key, d, data):
    account = Account.from_key(key.to_bytes(32, "big"))
    sig = sign_digest(account.key, d)
    assert recover_address(d, sig) == bytes.fromhex(account.address[2:])
    assert recover_address(d, sig) == _recover_or_none(d, sig)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    twin = r + (_SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - v,))  # the malleable twin
    assert _SECP256K1_N - s > _HALF_N
    v27 = [27, 28]
    variants = [
        twin,
        sig[:64] + bytes((55 - v,)),  # the other recovery id: another key
        sig[:64] + bytes((v - 27,)),  # v as 0/1: OpenZeppelin refuses it
        sig[:64],
        sig + b"\0",
        data.draw(st.binary(min_size=65, max_size=65)),
        data.draw(st.binary(min_size=64, max_size=64)) + bytes((data.draw(st.sampled_from(v27)),)),
        bytes(32) + sig[32:],  # r = 0
        _SECP256K1_N.to_bytes(32, "big") + sig[32:],  # r = n
    ]
    for bad in variants:
        assert recover_address(d, bad) == _recover_or_none(d, bad)
    assert recover_address(d, twin) is None
