"""Audit check 5: the replayed state against the ledger's own views at the audited block.

Every borrower, lender-partner pair and loan the history touches is read with eth_call, in
JSON-RPC batches, on a thread of its own while the replay runs. The calls are few kinds of fixed
shape, so they are encoded by hand, and the answers are read by hand when they are laid out as
the contract returns them (anything else goes to eth_abi, which decodes or refuses it): with
eth_abi for all of them this thread held the GIL long enough to slow the replay's signature
recovery beside it.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import keccak

from ledger.audit.events import ChainEvent, Rpc
from ledger.audit.report import AuditReport, CheckResult
from ledger.chain.deployment import Deployment
from ledger.domain import Product

# name -> (argument types, output types), as in CoLendingLedger's ABI
VIEWS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "borrowerExposure": (("bytes32",), ("uint256", "uint256", "uint16[]", "uint16[]")),
    "lenderUsage": (("address", "address"), ("uint256",) * 5),
    "loanState": (("bytes32",), ("bytes24", "uint256", "uint8")),
}
_SELECTORS = {fn: keccak(text=f"{fn}({','.join(args)})")[:4] for fn, (args, _) in VIEWS.items()}

Keys = tuple[list[bytes], list[tuple[str, str]], list[bytes]]


def _arg(value: bytes | str) -> bytes:
    # bytes32 as it is; an address left-padded to a word
    return value if isinstance(value, bytes) else bytes(12) + bytes.fromhex(value[2:])


def calldata(fn: str, args: tuple) -> bytes:
    return _SELECTORS[fn] + b"".join(_arg(a) for a in args)


def _int(raw: bytes, at: int) -> int:
    return int.from_bytes(raw[at : at + 32], "big")


def _uint16s(raw: bytes, at: int) -> tuple[tuple[int, ...], int] | None:
    """A uint16[] at `at`: the values and where the next item would start."""
    n = _int(raw, at)
    end = at + 32 + 32 * n
    if len(raw) < end or n > 0xFFFF:
        return None
    values = tuple(_int(raw, w) for w in range(at + 32, end, 32))
    if any(v >> 16 for v in values):
        return None
    return values, end


def _exposure(raw: bytes) -> tuple | None:
    if len(raw) < 6 * 32 or _int(raw, 64) != 128:
        return None
    first = _uint16s(raw, 128)
    if first is None or _int(raw, 96) != first[1]:
        return None
    second = _uint16s(raw, first[1])
    if second is None or second[1] != len(raw):
        return None
    return _int(raw, 0), _int(raw, 32), first[0], second[0]


def _usage(raw: bytes) -> tuple | None:
    return tuple(_int(raw, at) for at in range(0, 160, 32)) if len(raw) == 160 else None


def _loan_state(raw: bytes) -> tuple | None:
    if len(raw) != 96 or raw[24:32] != bytes(8) or raw[64:95] != bytes(31):
        return None
    return raw[:24], _int(raw, 32), raw[95]


_BY_HAND = {"borrowerExposure": _exposure, "lenderUsage": _usage, "loanState": _loan_state}


def decode_view(fn: str, raw: bytes, *, by_hand: bool = True) -> tuple:
    """A view's return values as eth_abi decodes them (`by_hand=False` forces eth_abi)."""
    values = _BY_HAND[fn](raw) if by_hand else None
    return values if values is not None else decode(list(VIEWS[fn][1]), raw)


def _batched_views(rpc: Rpc, to: str, block: int, calls: list[tuple[str, tuple]]) -> list[tuple]:
    """eth_call many views in JSON-RPC batches (one HTTP round trip per 500 calls)."""
    results: list[tuple] = []
    tag = hex(block)
    for i in range(0, len(calls), 500):
        part = calls[i : i + 500]
        raw = rpc.batch(
            [
                ("eth_call", [{"to": to, "data": "0x" + calldata(fn, args).hex()}, tag])
                for fn, args in part
            ]
        )
        results += [
            decode_view(fn, bytes.fromhex(r[2:])) for (fn, _), r in zip(part, raw, strict=True)
        ]
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
    rpc = Rpc(rpc_url)  # its own connection: this runs beside the replay
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
                record="0x" + key.hex(),
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
                record="0x" + lid.hex(),
                where=f"block {block}",
            )
    report.checks["state"] = CheckResult(
        "state", True, len(views), f"contract views at block {block}"
    )
