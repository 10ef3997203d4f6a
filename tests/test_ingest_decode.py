"""The indexer's compiled ABI decoder against eth_abi (strict mode), with Hypothesis: the same
values for every valid encoding of random types, and never a value where eth_abi refuses."""

from __future__ import annotations

from typing import Any

import eth_abi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain.abi import canonical
from ledger.chain.abidecode import AbiDecodeError, Leaves, compile_inputs

_LEAF_TYPES = ["uint8", "uint32", "uint128", "uint256", "int8", "int64", "int256", "address",
               "bool", "bytes1", "bytes20", "bytes32", "bytes", "string"]  # fmt: skip

# raw leaves, to compare with eth_abi's own output
_RAW = Leaves(address=str, fixed_bytes=bytes, dynamic_bytes=lambda _inp: bytes, string=bytes)


def _named(types: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**t, "name": f"f{i}"} for i, t in enumerate(types)]


_types = st.recursive(
    st.sampled_from(_LEAF_TYPES).map(lambda t: {"type": t}),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4).map(
            lambda cs: {"type": "tuple", "components": _named(cs)}
        ),
        st.tuples(inner, st.sampled_from(["[]", "[1]", "[2]", "[3]"])).map(
            lambda x: {**x[0], "type": x[0]["type"] + x[1]}
        ),
    ),
    max_leaves=8,
)


def _values(t: dict[str, Any]) -> st.SearchStrategy[Any]:
    typ: str = t["type"]
    if typ.endswith("]"):
        inner = _values({**t, "type": typ[: typ.rindex("[")]})
        dim = typ[typ.rindex("[") + 1 : -1]
        if dim:
            return st.lists(inner, min_size=int(dim), max_size=int(dim))
        return st.lists(inner, max_size=3)
    if typ == "tuple":
        return st.tuples(*(_values(c) for c in t["components"]))
    if typ.startswith("uint"):
        return st.integers(0, 2 ** int(typ[4:]) - 1)
    if typ.startswith("int"):
        bits = int(typ[3:])
        return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if typ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if typ == "bool":
        return st.booleans()
    if typ in ("bytes", "string"):
        return st.binary(max_size=70)
    n = int(typ[5:])
    return st.binary(min_size=n, max_size=n)


def _oracle_type(t: dict[str, Any]) -> str:
    # strings as bytes: the indexer decodes names leniently, eth_abi strictly
    return canonical(t).replace("string", "bytes")


def _normalise(value: Any, t: dict[str, Any]) -> Any:
    """eth_abi's output in the shape the compiled decoder builds (dicts, lists)."""
    typ: str = t["type"]
    if typ.endswith("]"):
        inner = {**t, "type": typ[: typ.rindex("[")]}
        return [_normalise(v, inner) for v in value]
    if typ == "tuple":
        return {c["name"]: _normalise(v, c) for c, v in zip(t["components"], value, strict=True)}
    return value


def _both(inputs: list[dict[str, Any]], data: bytes) -> tuple[Any, Any]:
    try:
        mine = compile_inputs(inputs, _RAW)(data)
    except AbiDecodeError:
        mine = None
    try:
        values = eth_abi.decode([_oracle_type(i) for i in inputs], data)
        ref = {i["name"]: _normalise(v, i) for i, v in zip(inputs, values, strict=True)}
    except Exception:  # noqa: BLE001 - eth_abi raises several types
        ref = None
    return mine, ref


@st.composite
def _encoded(draw: st.DrawFn) -> tuple[list[dict[str, Any]], bytes]:
    inputs = _named(draw(st.lists(_types, min_size=1, max_size=4)))
    values = [draw(_values(i)) for i in inputs]
    types = [canonical(i).replace("string", "bytes") for i in inputs]
    return inputs, eth_abi.encode(types, values)


_FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(_encoded())
def test_valid_encodings_decode_as_eth_abi_does(case: tuple[list[dict[str, Any]], bytes]) -> None:
    inputs, data = case
    mine, ref = _both(inputs, data)
    assert ref is not None and mine == ref


def _dynamic(t: dict[str, Any]) -> bool:
    typ: str = t["type"]
    if typ.endswith("[]") or typ in ("bytes", "string"):
        return True
    if typ.endswith("]"):
        return _dynamic({**t, "type": typ[: typ.rindex("[")]})
    return typ == "tuple" and any(_dynamic(c) for c in t["components"])


def _words(t: dict[str, Any]) -> int:
    """Head words of a static value."""
    typ: str = t["type"]
    if typ.endswith("]"):
        return int(typ[typ.rindex("[") + 1 : -1]) * _words({**t, "type": typ[: typ.rindex("[")]})
    return sum(_words(c) for c in t["components"]) if typ == "tuple" else 1


def _undercounted(comps: list[dict[str, Any]]) -> bool:
    """Whether eth_abi, checking pointers, takes a head among these (or nested) components to be
    shorter than it is: it counts a static tuple as one word and a static T[k] as k words. The
    compiled decoder counts real sizes, so it may refuse a pointer into such a head."""
    for c in comps:
        typ: str = c["type"]
        inner = [{**c, "type": typ[: typ.rindex("[")]}] if typ.endswith("]") else []
        nested = c["components"] if typ == "tuple" else inner
        if not _dynamic(c) and typ != "tuple" and not typ.endswith("]"):
            continue
        counted = int(typ[typ.rindex("[") + 1 : -1] or 1) if typ.endswith("]") else 1
        if (not _dynamic(c) and counted != _words(c)) or _undercounted(nested):
            return True
    return False


# A change to one word: one byte set (padding sits at either end of a word), or the whole word
# set to a small number (lengths and pointers).
_edits = st.tuples(
    st.integers(0, 400),
    st.one_of(
        st.tuples(st.sampled_from([0, 1, 11, 12, 30, 31]), st.integers(1, 255)),
        st.tuples(st.none(), st.integers(0, 2_000)),
    ),
)


@_FUZZ
@given(_encoded(), st.lists(_edits, min_size=1, max_size=3), st.integers(0, 40))
def test_corrupted_encodings_are_never_accepted_where_eth_abi_refuses(
    case: tuple[list[dict[str, Any]], bytes],
    edits: list[tuple[int, tuple[int | None, int]]],
    cut: int,
) -> None:
    inputs, data = case
    raw = bytearray(data)
    words = len(raw) // 32
    for word, (byte, value) in edits:
        at = 32 * (word % words) if words else 0
        if byte is not None and raw:
            raw[(at + byte) % len(raw)] ^= value
        elif words:
            raw[at : at + 32] = value.to_bytes(32, "big")
    if cut < 8:  # now and then short by a few bytes, or by words
        del raw[len(raw) - (cut if cut < 4 else 32 * cut) :]
    mine, ref = _both(inputs, bytes(raw))
    if mine is not None:
        assert mine == ref
    elif ref is not None:  # stricter only where the pointer check counts a head right
        assert _undercounted(inputs)


@pytest.mark.parametrize("typ", ["fixed128x18", "ufixed", "function", "bytes33", "uint7"])
def test_unsupported_types_fail_when_compiled(typ: str) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        compile_inputs([{"type": typ, "name": "x"}], _RAW)


_TOPIC_TYPES = ["uint8", "uint32", "uint256", "int8", "int64", "int256", "bool", "address",
                "bytes1", "bytes4", "bytes32"]  # fmt: skip
_topic_words = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.tuples(st.integers(0, 32), st.binary(min_size=32, max_size=32)).map(
        lambda x: bytes(x[0]) + x[1][x[0] :]  # high bytes clear: often valid
    ),
    st.tuples(st.integers(0, 32), st.binary(min_size=32, max_size=32)).map(
        lambda x: x[1][: 32 - x[0]] + bytes(x[0])  # low bytes clear: valid bytesN
    ),
    st.tuples(st.integers(0, 32), st.binary(min_size=32, max_size=32)).map(
        lambda x: b"\xff" * x[0] + x[1][x[0] :]  # negative ints
    ),
)


@_FUZZ
@given(st.sampled_from(_TOPIC_TYPES), _topic_words, st.booleans())
def test_indexed_topics_decode_as_eth_abi_does(typ: str, word: bytes, native: bool) -> None:
    """An indexed argument is read from its topic as eth_abi reads the word, or refused."""
    from eth_utils import to_checksum_address

    from ledger.chain.events import DecodeError, _topic_converter

    try:
        (want,) = eth_abi.decode([typ], word)
    except Exception:  # noqa: BLE001 - eth_abi refuses it
        want = None
    if typ == "address" and want is not None:
        want = to_checksum_address(want)
    if typ.startswith("bytes") and want is not None and not native:
        want = "0x" + want.hex()
    try:
        got = _topic_converter({"type": typ}, native)("0x" + word.hex())
    except DecodeError:
        got = None
    assert got == want
