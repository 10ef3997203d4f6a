"""Audit check 5: the replayed state against the ledger's own views at the audited block.

Every borrower, lender-partner pair and loan the history touches is read on a thread of its own
while the replay runs. The views are called in bulk through eth_call's state override: a small
read-only program placed (for that call only) at an unused address STATICCALLs the ledger once
per view and returns every answer, so a node runs one call per 500 views instead of 500 calls;
a node that refuses the override, or any answer that does not come back whole, is read again
with one plain eth_call per view in a JSON-RPC batch. The calls are few kinds of fixed shape, so
they are encoded by hand, and the answers are read by the compiled ABI decoder
(`ledger.chain.abidecode`).
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

from ledger.audit.report import AuditReport, CheckResult
from ledger.chain.abidecode import Leaves, compile_outputs
from ledger.chain.deployment import Deployment
from ledger.chain.events import ChainEvent
from ledger.chain.rpc import Rpc, RpcError
from ledger.domain import Product, to_checksum_address, to_hex

# name -> (argument types, output types), as in CoLendingLedger's ABI
VIEWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "borrowerExposure": (("bytes32",), ("uint256", "uint256", "uint16[]", "uint16[]")),
    "lenderUsage": (("address", "address"), ("uint256",) * 6),
    "loanState": (("bytes32",), ("bytes24", "uint256", "uint8")),
}
_SELECTORS = {fn: keccak(text=f"{fn}({','.join(args)})")[:4] for fn, (args, _) in VIEWS.items()}

Keys = tuple[list[bytes], list[tuple[str, str]], list[bytes]]


def _arg(value: bytes | str) -> bytes:
    # bytes32 as it is; an address left-padded to a word
    return value if isinstance(value, bytes) else bytes(12) + bytes.fromhex(value[2:])


def calldata(fn: str, args: tuple) -> bytes:
    return _SELECTORS[fn] + b"".join(_arg(a) for a in args)


_VIEW_LEAVES = Leaves(
    address=to_checksum_address,
    fixed_bytes=bytes,
    dynamic_bytes=lambda _inp: bytes,
    string=bytes.decode,
    array=tuple,  # as eth_abi gives arrays
)
_DECODERS = {fn: compile_outputs(list(out), _VIEW_LEAVES) for fn, (_, out) in VIEWS.items()}


def decode_view(fn: str, raw: bytes) -> tuple:
    """A view's return values as eth_abi decodes them, by the one compiled ABI decoder (which
    refuses what eth_abi refuses: `AbiDecodeError`)."""
    return _DECODERS[fn](raw)


# The batch caller, as deployed code (93 bytes; the ledger's address goes after the prefix).
# Input: per view call, a 2-byte length and the call's input. Output: per call, a word
# (success << 128 | answer size) and the answer. Stack [i, o]: calldata read and output written.
#   00 PUSH1 0  02 PUSH1 0               o = 0, i = 0
#   04 JUMPDEST  05 CALLDATASIZE DUP2 LT ISZERO  09 PUSH1 58 JUMPI        done when i >= size
#   0c DUP1 CALLDATALOAD  0e PUSH1 f0 SHR                                L = length at i
#   11 DUP1 DUP3 PUSH1 2 ADD DUP5 PUSH1 20 ADD CALLDATACOPY              input to memory[o+32]
#   1b PUSH1 0 PUSH1 0 DUP3 DUP6 PUSH1 20 ADD PUSH20 ledger GAS STATICCALL
#   3b PUSH1 80 SHL RETURNDATASIZE ADD DUP4 MSTORE                       memory[o] = header
#   42 RETURNDATASIZE PUSH1 0 DUP5 PUSH1 20 ADD RETURNDATACOPY           answer to memory[o+32]
#   4a PUSH1 2 ADD ADD  4e SWAP1 RETURNDATASIZE ADD PUSH1 20 ADD SWAP1   i += 2 + L, o += 32 + n
#   55 PUSH1 4 JUMP  58 JUMPDEST POP PUSH1 0 RETURN                      return memory[0:o]
_CALLER_PREFIX = bytes.fromhex(
    "600060005b36811015605857803560f01c8082600201846020013760006000828560200173"
)
_CALLER_SUFFIX = bytes.fromhex(
    "5afa60801b3d0183523d6000846020013e60020101903d01602001906004565b506000f3"
)
# where the batch caller is placed for the call; nothing is ever deployed there
BATCH_CALLER = "0x" + keccak(text="ledger.audit.views batch caller")[12:].hex()
_SIZE_MASK = (1 << 128) - 1


def _through_caller(rpc: Rpc, to: str, tag: str, inputs: list[bytes]) -> list[bytes] | None:
    """The answers of `inputs` called on `to` in one eth_call, or None if the node refused the
    override or any call failed (the plain path then asks again, and reports a real failure)."""
    code = _CALLER_PREFIX + bytes.fromhex(to[2:]) + _CALLER_SUFFIX
    data = b"".join(len(i).to_bytes(2, "big") + i for i in inputs)
    try:
        out = rpc.call(
            "eth_call",
            [
                {"to": BATCH_CALLER, "data": "0x" + data.hex()},
                tag,
                {BATCH_CALLER: {"code": "0x" + code.hex()}},
            ],
        )
    except RpcError:
        return None
    raw = bytes.fromhex(out[2:])
    answers, at = [], 0
    while at + 32 <= len(raw):
        header = int.from_bytes(raw[at : at + 32], "big")
        end = at + 32 + (header & _SIZE_MASK)
        if header >> 128 != 1 or end > len(raw):
            return None
        answers.append(raw[at + 32 : end])
        at = end
    # a node that ignores the override runs no code at the address and answers nothing
    return answers if at == len(raw) and len(answers) == len(inputs) else None


def _batched_views(
    rpc: Rpc, to: str, block: int, calls: list[tuple[str, tuple]], *, override: bool = True
) -> list[tuple]:
    """The views' answers, 500 calls at a time: through the batch caller, else one JSON-RPC batch
    of plain eth_calls (`override=False` forces the plain path)."""
    results: list[tuple] = []
    tag = hex(block)
    for i in range(0, len(calls), 500):
        part = calls[i : i + 500]
        inputs = [calldata(fn, args) for fn, args in part]
        answers = _through_caller(rpc, to, tag, inputs) if override else None
        if answers is None:
            answers = [
                bytes.fromhex(r[2:])
                for r in rpc.batch(
                    [("eth_call", [{"to": to, "data": "0x" + d.hex()}, tag]) for d in inputs]
                )
            ]
        results += [decode_view(fn, a) for (fn, _), a in zip(part, answers, strict=True)]
    return results


def view_keys(events: list[ChainEvent]) -> Keys:
    """Which borrowers, lender-partner pairs and loans the history touches, known before the
    replay, so the contract's views can be read while the replay runs."""
    borrowers: dict[bytes, None] = {}
    pairs: dict[tuple[str, str], None] = {}
    loans: dict[bytes, None] = {}
    for e in events:
        if e.name in ("LoanOriginated", "LineGranted"):
            rec = e.args["loan"] if e.name == "LoanOriginated" else e.args["line"]
            borrowers[bytes(rec["borrowerKey"])] = None
            if e.name == "LoanOriginated":
                loans[bytes(rec["loanId"])] = None
                for t in rec["tranches"]:
                    if t["lender"] != rec["platform"]:
                        pairs[(t["lender"], rec["platform"])] = None
    return list(borrowers), list(pairs), list(loans)


def fetch_views(rpc_url: str, deployment: Deployment, block: int, keys: Keys) -> dict:
    borrowers, pairs, loans = keys
    calls: list[tuple[str, tuple]] = [("borrowerExposure", (k,)) for k in borrowers]
    calls += [("lenderUsage", pair) for pair in pairs]
    calls += [("loanState", (lid,)) for lid in loans]
    rpc = Rpc(rpc_url, timeout=120)  # its own connection: this runs beside the replay
    try:
        results = iter(_batched_views(rpc, deployment.ledger, block, calls))
    finally:
        rpc.close()
    views: dict[Any, tuple] = {}
    for k in borrowers:
        views["b", k] = next(results)
    for pair in pairs:
        views["u", pair] = next(results)
    for lid in loans:
        views["l", lid] = next(results)
    return views


def check_state(report: AuditReport, views: dict, book, block: int) -> None:
    """The replayed exposures, lender usage and loan states equal the contract's views."""
    for key, b in book.borrowers.items():
        consumer, business, idx, counts = views["b", key]
        got = (consumer, business, dict(zip(idx, counts, strict=True)))
        want = (b.exposure[Product.CONSUMER], b.exposure[Product.BUSINESS], dict(b.open_records))
        if got != want:
            report.add(
                "state",
                "ExposureMismatch",
                f"contract consumer/business/institutions {got}, replay {want}",
                record=to_hex(key),
                where=f"block {block}",
            )
    for (lender, partner), amount in book.lender_partner.items():
        total, with_partner, *_ = views["u", (lender, partner)]
        want_total = book.lender_total.get(lender, 0)
        if (total, with_partner) != (want_total, amount):
            report.add(
                "state",
                "LenderUsageMismatch",
                f"contract total/with partner {total}/{with_partner}, replay {want_total}/{amount}",
                details={"lender": lender, "partner": partner},
                where=f"block {block}",
            )
    for lid, rec in book.loans.items():
        _, outstanding, status = views["l", lid]
        if (outstanding, status) != (rec.outstanding, int(rec.status)):
            report.add(
                "state",
                "LoanStateMismatch",
                f"contract {outstanding}/{status}, replay {rec.outstanding}/{int(rec.status)}",
                record=to_hex(lid),
                where=f"block {block}",
            )
    report.checks["state"] = CheckResult(
        "state", True, len(views), f"contract views at block {block}"
    )
