"""A strict ABI decoder compiled once per event, for the indexer's hot path.

eth_abi builds a stream, a stack of frames and a decoder call per value, which made decoding
about a third of the indexer's catch-up. Here each type is compiled once into a closure over
(data, offset) that returns the value in the form `raw_events.args` stores (see
`ledger.chain.events`), with eth_abi's strict checks or stricter ones:

* every word read must be in the data;
* uintN, intN, address, bool and bytesN words carry no bits outside their type (padding);
* bytes and strings are padded to a word boundary with zeros, inside the data;
* a pointer (a dynamic value's offset) lands after the head of its tuple or array and inside
  the data (eth_abi counts a static tuple in a head as one word; here it is its real size);
* a dynamic array's items fit in the data before any is read.

tests/test_indexer.py checks it against eth_abi with Hypothesis, on valid and corrupted data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Read = Callable[[bytes, int], Any]


class AbiDecodeError(ValueError):
    """Data that is not a strict ABI encoding of the expected types."""


@dataclass(frozen=True, slots=True)
class Coder:
    dynamic: bool
    size: int  # bytes the value takes in its container's head (32 for a pointer)
    # The value whose encoding starts at the offset. A static value's container has checked
    # that its `size` bytes are in the data; a dynamic value checks its own extent.
    read: Read


def _uint256(data: bytes, at: int) -> int:
    """A length or a pointer: the only words a dynamic value reads before checking its extent."""
    w = data[at : at + 32]
    if len(w) != 32:
        raise AbiDecodeError(f"word at {at} is past the end ({len(data)} bytes)")
    return int.from_bytes(w, "big")


def _uint(bits: int) -> Read:
    def read(data: bytes, at: int) -> int:
        v = int.from_bytes(data[at : at + 32], "big")
        if v >> bits:
            raise AbiDecodeError(f"uint{bits} at {at} out of range")
        return v

    return read


def _int(bits: int) -> Read:
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)

    def read(data: bytes, at: int) -> int:
        v = int.from_bytes(data[at : at + 32], "big", signed=True)
        if not lo <= v < hi:
            raise AbiDecodeError(f"int{bits} at {at} out of range")
        return v

    return read


_FALSE, _TRUE = bytes(32), bytes(31) + b"\x01"


def _bool(data: bytes, at: int) -> bool:
    w = data[at : at + 32]
    if w == _FALSE:
        return False
    if w == _TRUE:
        return True
    raise AbiDecodeError(f"bool at {at} is neither 0 nor 1")


def _address(convert: Callable[[str], Any]) -> Read:
    def read(data: bytes, at: int) -> Any:
        w = data[at : at + 32]
        if any(w[:12]):
            raise AbiDecodeError(f"address at {at} has non-zero padding")
        return convert("0x" + w[12:].hex())

    return read


def _fixed_bytes(n: int, convert: Callable[[bytes], Any]) -> Read:
    def read(data: bytes, at: int) -> Any:
        w = data[at : at + 32]
        if any(w[n:]):
            raise AbiDecodeError(f"bytes{n} at {at} has non-zero padding")
        return convert(w[:n])

    return read


def _dynamic_bytes(convert: Callable[[bytes], Any]) -> Read:
    def read(data: bytes, at: int) -> Any:
        size = _uint256(data, at)
        start = at + 32
        end = start + size
        padded = end + (-size % 32)
        if padded > len(data):
            raise AbiDecodeError(f"bytes at {at} run past the end")
        if any(data[end:padded]):
            raise AbiDecodeError(f"bytes at {at} have non-zero padding")
        return convert(data[start:end])

    return read


def _items(data: bytes, frame: int, coders: list[Coder], head: int) -> list[Any]:
    """Values laid out as a head of `head` bytes (and tails) starting at `frame`."""
    head_end = frame + head
    if head_end > len(data):
        raise AbiDecodeError(f"head at {frame} runs past the end")
    out = []
    pos = frame
    for c in coders:
        if c.dynamic:
            target = frame + _uint256(data, pos)
            if not head_end <= target < len(data):
                raise AbiDecodeError(f"pointer at {pos} points outside its tail")
            out.append(c.read(data, target))
        else:
            out.append(c.read(data, pos))
        pos += c.size
    return out


def tuple_coder(coders: list[Coder], build: Callable[[list[Any]], Any]) -> Coder:
    head = sum(c.size for c in coders)
    if any(c.dynamic for c in coders):
        return Coder(True, 32, lambda data, at: build(_items(data, at, coders, head)))
    if all(c.size == 32 for c in coders):
        # the common case: one word each, no pointers
        reads = [(c.read, 32 * i) for i, c in enumerate(coders)]

        def read(data: bytes, at: int) -> Any:
            return build([r(data, at + i) for r, i in reads])

        return Coder(False, head, read)
    return Coder(False, head, lambda data, at: build(_items(data, at, coders, head)))


def _dynamic_array(item: Coder, convert: Callable[[list[Any]], Any]) -> Coder:
    size = item.size

    def read(data: bytes, at: int) -> Any:
        n = _uint256(data, at)
        frame = at + 32
        if frame + n * size > len(data):
            raise AbiDecodeError(f"array at {at} of {n} items runs past the end")
        if item.dynamic:
            return convert(_items(data, frame, [item] * n, n * size))
        return convert([item.read(data, frame + size * i) for i in range(n)])

    return Coder(True, 32, read)


@dataclass(frozen=True, slots=True)
class Leaves:
    """How leaf values are turned into the stored form."""

    address: Callable[[str], Any]  # from lowercase 0x-hex
    fixed_bytes: Callable[[bytes], Any]
    dynamic_bytes: Callable[[dict[str, Any]], Callable[[bytes], Any]]  # by the ABI input
    string: Callable[[bytes], Any]
    array: Callable[[list[Any]], Any] = list  # a fixed or dynamic array's container


def compile_input(inp: dict[str, Any], leaves: Leaves) -> Coder:
    """The coder of one ABI input or component (a dict with `type`, `name`, `components`)."""
    t: str = inp["type"]
    if t.endswith("]"):
        inner = compile_input({**inp, "type": t[: t.rindex("[")]}, leaves)
        dim = t[t.rindex("[") + 1 : -1]
        if not dim:
            return _dynamic_array(inner, leaves.array)
        return tuple_coder([inner] * int(dim), leaves.array)
    if t == "tuple":
        comps = inp["components"]
        names = [c["name"] for c in comps]
        coders = [compile_input(c, leaves) for c in comps]
        return tuple_coder(coders, lambda vs: dict(zip(names, vs, strict=True)))
    if t == "address":
        return Coder(False, 32, _address(leaves.address))
    if t == "bool":
        return Coder(False, 32, _bool)
    if t == "bytes":
        return Coder(True, 32, _dynamic_bytes(leaves.dynamic_bytes(inp)))
    if t == "string":
        return Coder(True, 32, _dynamic_bytes(leaves.string))
    if t.startswith("bytes"):
        n = int(t[5:])
        if not 1 <= n <= 32:
            raise ValueError(f"unsupported ABI type {t}")
        return Coder(False, 32, _fixed_bytes(n, leaves.fixed_bytes))
    for prefix, make in (("uint", _uint), ("int", _int)):
        if t.startswith(prefix):
            bits = int(t[len(prefix) :] or 256)
            if bits % 8 or not 8 <= bits <= 256:
                raise ValueError(f"unsupported ABI type {t}")
            return Coder(False, 32, make(bits))
    raise ValueError(f"unsupported ABI type {t}")


def compile_inputs(inputs: list[dict[str, Any]], leaves: Leaves) -> Callable[[bytes], dict]:
    """A function from event data to {name: value} for the non-indexed `inputs`."""
    names = [i["name"] for i in inputs]
    coders = [compile_input(i, leaves) for i in inputs]
    head = sum(c.size for c in coders)
    return lambda data: dict(zip(names, _items(data, 0, coders, head), strict=True))


def compile_outputs(types: list[str], leaves: Leaves) -> Callable[[bytes], tuple]:
    """A function from a call's return data to its values as a tuple (tuples' components are
    not named here: `types` are plain ABI types such as `uint16[]`, without structs)."""
    coders = [compile_input({"type": t, "name": ""}, leaves) for t in types]
    head = sum(c.size for c in coders)
    return lambda data: tuple(_items(data, 0, coders, head))
