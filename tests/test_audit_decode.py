"""The audit's fast paths against the general ones they stand in for.

Events and the ledger's views are read by the one compiled ABI decoder (`ledger.chain.events`
in its native form, `ledger.chain.abidecode`), the views are called in bulk through a
state-override batch caller, and signers are recovered straight through coincurve: each must
give exactly what eth_abi, plain eth_calls and `ledger.provenance.recover` give, on a real
recorded history and on Hypothesis' encodings, and must refuse what eth_abi refuses.
"""

from __future__ import annotations

import dataclasses

import eth_abi
import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.audit import load_history
from ledger.audit.events import Rpc, RpcError, decoder, fetch_logs
from ledger.audit.views import (
    VIEWS,
    _batched_views,
    _through_caller,
    calldata,
    decode_view,
    view_keys,
)
from ledger.chain.abi import canonical
from ledger.chain.artifacts import load_artifacts
from ledger.chain.deployment import Deployment
from ledger.chain.events import DecodeError, EventDecoder
from ledger.documents import document_digest
from ledger.domain import Product, RepaymentType, record_id, to_checksum_address
from ledger.localnet.chains import LocalChain
from ledger.localnet.consortium import bootstrap
from ledger.provenance import (
    _HALF_N,
    _SECP256K1_N,
    pack_signatures,
    recover,
    recover_address,
    sign_digest,
    unpack_signatures,
)

_LOAN_TUPLE = (
    "(bytes32,bytes32,address,uint8,uint128,uint32,uint32,uint8,bytes32,bytes32,bytes32,uint64,"
    "(address,uint128)[])"
)


_LEDGER = "0x" + "11" * 20  # where the Hypothesis logs say they come from


def _decoder() -> EventDecoder:
    return EventDecoder("0x" + "22" * 20, _LEDGER, native=True)


def _topics(log: dict) -> list[bytes]:
    return [bytes.fromhex(t[2:]) for t in log["topics"]]


def _normalise(value, item: dict):
    """eth_abi's values in the audit's form: addresses checksummed, structs as dicts by name,
    arrays as lists."""
    t = item["type"]
    if t == "address":
        return to_checksum_address(value)
    if t.endswith("]"):
        inner = {**item, "type": t[: t.rindex("[")]}
        return [_normalise(v, inner) for v in value]
    if t == "tuple":
        comps = item["components"]
        return {c["name"]: _normalise(v, c) for c, v in zip(comps, value, strict=True)}
    return value


def _event_by_eth_abi(item: dict, topics: list[bytes], data: bytes) -> dict:
    """An event's arguments as eth_abi decodes them (the reference for the compiled decoder)."""
    indexed = [i for i in item["inputs"] if i.get("indexed")]
    plain = [i for i in item["inputs"] if not i.get("indexed")]
    args = {}
    for inp, topic in zip(indexed, topics[1:], strict=True):
        (value,) = eth_abi.decode([canonical(inp)], topic)
        args[inp["name"]] = _normalise(value, inp)
    values = eth_abi.decode([canonical(i) for i in plain], data) if plain else ()
    for inp, v in zip(plain, values, strict=True):
        args[inp["name"]] = _normalise(v, inp)
    if isinstance(args.get("signatures"), bytes):
        args["signatures"] = unpack_signatures(args["signatures"])
    return args


def _abi_events(dep: Deployment) -> dict[tuple[str, bytes], dict]:
    art = load_artifacts()
    out = {}
    for address, name in ((dep.registry, "ConsortiumRegistry"), (dep.ledger, "CoLendingLedger")):
        for item in art[name].abi:
            if item.get("type") == "event":
                sig = f"{item['name']}({','.join(canonical(i) for i in item['inputs'])})"
                out[address.lower(), keccak(text=sig)] = item
    return out


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
            cx.loan(100_000 + i, product=Product(i % 2), repayment=RepaymentType(i % 2))
            for i in range(6)
        ]
        loans[1] = dataclasses.replace(loans[1], document_digest=document_digest(b"agreement"))
        loans.append(cx.loan(800_000, [(cx.platform, 400_000), (cx.lenders[1], 400_000)]))
        loans.append(cx.loan(900_000, borrower_key=line.borrower_key, line_id=line.line_id))
        for loan in loans:
            plat.originate(loan, cx.sign(loan))
        plat.repay(loans[0], record_id(cx.platform.address, "r-7"), 50_000, 1_000)
        yield chain, cx, loans


def test_decoder_reads_real_logs_as_eth_abi_does(recorded):
    chain, cx, loans = recorded
    decode = decoder(cx.deployment).decode
    items = _abi_events(cx.deployment)
    rpc = Rpc(chain.url)
    try:
        head = int(rpc.call("eth_blockNumber", []), 16)
        names: list[str] = []
        for log in fetch_logs(rpc, cx.deployment, head):
            ev = decode(log)
            topics = _topics(log)
            item = items[log["address"].lower(), topics[0]]
            assert ev is not None and ev.name == item["name"]
            assert ev.args == _event_by_eth_abi(item, topics, bytes.fromhex(log["data"][2:]))
            assert ev.tx_hash == bytes.fromhex(log["transactionHash"][2:])
            names.append(ev.name)
        assert names.count("LoanOriginated") == len(loans)
        assert {"LineGranted", "Repaid", "MemberAdmitted", "PolicyUpdated"} <= set(names)
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
    _word,  # lineId
    _word,  # documentDigest
    _word,  # scheduleDigest
    st.integers(0, 2**64 - 1),
    st.lists(_tranche, max_size=5),
)


_LOAN_ORIGINATED = next(
    i for i in load_artifacts()["CoLendingLedger"].abi if i.get("name") == "LoanOriginated"
)
LOAN_ORIGINATED_TOPIC = keccak(
    text=f"LoanOriginated({','.join(canonical(i) for i in _LOAN_ORIGINATED['inputs'])})"
)


def _encoded(version: int, loan: tuple, sigs: list[bytes]) -> tuple[list[bytes], bytes]:
    data = eth_abi.encode(["uint32", _LOAN_TUPLE, "bytes"], [version, loan, pack_signatures(sigs)])
    topics = [LOAN_ORIGINATED_TOPIC, loan[0], loan[1], bytes(12) + bytes.fromhex(loan[2][2:])]
    return topics, data


def _log(topics: list[bytes], data: bytes) -> dict:
    return {
        "address": _LEDGER,
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x" + data.hex(),
        "blockNumber": "0x1",
        "logIndex": "0x0",
        "blockHash": "0x" + "00" * 32,
        "transactionHash": "0x" + "00" * 32,
        "transactionIndex": "0x0",
    }


def _by_eth_abi(topics: list[bytes], data: bytes) -> dict | None:
    try:
        return _event_by_eth_abi(_LOAN_ORIGINATED, topics, data)
    except Exception:  # noqa: BLE001 - eth_abi (or the signature list) refuses it
        return None


def _by_decoder(topics: list[bytes], data: bytes) -> dict | None:
    try:
        ev = _decoder().decode(_log(topics, data))
    except DecodeError:
        return None
    assert ev is not None
    return ev.args


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), _loan, st.lists(_sig, max_size=4))
def test_decoder_equals_eth_abi_on_any_loan(version, loan, sigs):
    topics, data = _encoded(version, loan, sigs)
    fast = _by_decoder(topics, data)
    assert fast is not None
    assert fast == _by_eth_abi(topics, data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**32 - 1),
    _loan,
    st.lists(_sig, max_size=3),
    st.data(),
)
def test_decoder_never_reads_what_eth_abi_would_not(version, loan, sigs, data):
    """Altered bytes: the decoder either gives eth_abi's answer or refuses the log."""
    topics, raw = _encoded(version, loan, sigs)
    raw = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.sampled_from([0, 0, 0, 1, 31, 32]))
    raw = bytes(raw[: len(raw) - cut])
    if data.draw(st.booleans()):
        topics[3] = data.draw(_word)
    fast = _by_decoder(topics, raw)
    if fast is not None:
        assert fast == _by_eth_abi(topics, raw)


# ---------------------------------------------------------------------- Hypothesis: views

_u16s = st.lists(st.integers(0, 2**16 - 1), max_size=6)
_view_values = {
    "borrowerExposure": st.tuples(
        st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1), _u16s, _u16s
    ),
    "lenderUsage": st.tuples(*[st.integers(0, 2**256 - 1)] * 6),
    "loanState": st.tuples(
        st.binary(min_size=24, max_size=24), st.integers(0, 2**256 - 1), st.integers(0, 255)
    ),
}


def _view_by_eth_abi(fn: str, raw: bytes) -> tuple | None:
    try:
        return eth_abi.decode(list(VIEWS[fn][1]), raw)
    except Exception:  # noqa: BLE001 - eth_abi refuses it
        return None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(VIEWS)), st.data())
def test_view_answers_read_as_eth_abi_reads_them(fn, data):
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
