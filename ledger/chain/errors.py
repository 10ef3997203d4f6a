"""Contract reverts decoded into typed Python exceptions that carry the rule's numbers.

Every custom error of the registry and the ledger maps to a subclass of `ContractRevert` with the
same name (`BorrowerCapExceeded`, `TooManyInstitutions`, ...). Its `.code` is the error name, the
stable code shared with ledger.rules and the HTTP problem documents; `.values` holds the decoded
arguments by name.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from ledger.chain.rpcutil import abi_type

RULE_CODES = {
    "BorrowerCapExceeded": "R1/R2",
    "TooManyInstitutions": "R3",
    "PlatformShareTooLow": "R4",
    "PartnerConcentrationExceeded": "R5",
    "JointLoanShareExceeded": "R6",
    "BulletTermTooLong": "R7",
    "StaleAttestation": "R8",
    "TooFewBankTranches": "R0",
    "AllInAprTooHigh": "R9",
    "AprMismatch": "R9",  # the declared APR is not the committed schedule's (ScheduleCheck)
    "GuaranteeCapExceeded": "R10",
    "StaleNetAssets": "R10",
}


class LedgerError(Exception):
    """Base of every error raised by ledger.chain."""


class ContractRevert(LedgerError):
    """A transaction or call that the contracts refused."""

    code: str = "ContractRevert"

    def __init__(self, values: dict[str, Any] | None = None, raw: bytes = b"") -> None:
        self.values = values or {}
        self.raw = raw
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.values.items())
        super().__init__(f"{self.code}({shown})")

    @property
    def rule(self) -> str | None:
        return RULE_CODES.get(self.code)


class UnknownRevert(ContractRevert):
    code = "UnknownRevert"


class PanicRevert(ContractRevert):
    code = "Panic"


class TransactionFailed(LedgerError):
    """A transaction that was mined but failed without decodable revert data."""


class ChainUnreachable(ConnectionError, LedgerError):
    """The node's JSON-RPC endpoint does not answer (a ConnectionError first, so callers that
    retry connection failures, and HTTP layers that answer them with 503, treat it as one)."""


class ReceiptTimeout(LedgerError):
    """No receipt within the configured time."""


def _show(v: Any) -> str:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    return str(v)


_CLASSES: dict[str, type[ContractRevert]] = {}


def error_class(name: str) -> type[ContractRevert]:
    """The exception class for a contract error name, created once and shared."""
    cls = _CLASSES.get(name)
    if cls is None:
        cls = type(name, (ContractRevert,), {"code": name, "__module__": __name__})
        _CLASSES[name] = cls
        globals()[name] = cls
    return cls


for _name in list(RULE_CODES) + [
    "IdAlreadyUsed",
    "IdOutsideNamespace",
    "NotServicer",
    "InvalidSignature",
    "SignatureExpired",
    "NotActiveMember",
    "MemberIsFrozen",
    "WrongRole",
    "LedgerPaused",
    "SubmitterNotPlatform",
    "TrancheSumMismatch",
    "TranchesNotSorted",
    "LineLimitExceeded",
    "LineNotActive",
    "LineFrozen",
    "RepaymentExceedsOutstanding",
    "IllegalTransition",
    "TermsMismatch",
    "UnknownLoan",
    "ScheduleDigestMismatch",
    "ScheduleLengthOutOfRange",
    "InvalidSchedule",
    "ScheduleNotPrincipal",
]:
    error_class(_name)


class ErrorDecoder:
    """Decodes revert data using the custom errors of the given ABIs."""

    def __init__(self, *abis: list[dict]) -> None:
        self._by_selector: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [abi_type(i) for i in item["inputs"]]
                names = [i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"])]
                sig = f"{item['name']}({','.join(types)})"
                self._by_selector[function_signature_to_4byte_selector(sig)] = (
                    item["name"],
                    types,
                    names,
                )

    def decode(self, data: bytes | str | None) -> ContractRevert:
        raw = _to_bytes(data)
        if len(raw) < 4:
            return UnknownRevert({}, raw)
        sel = raw[:4]
        if sel == bytes.fromhex("4e487b71"):
            (code,) = decode(["uint256"], raw[4:])
            return PanicRevert({"code": code}, raw)
        if sel == bytes.fromhex("08c379a0"):
            (msg,) = decode(["string"], raw[4:])
            return UnknownRevert({"reason": msg}, raw)
        found = self._by_selector.get(sel)
        if found is None:
            return UnknownRevert({"selector": sel}, raw)
        name, types, names = found
        values = [
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(types, decode(types, raw[4:]), strict=True)
        ]
        return error_class(name)(dict(zip(names, values, strict=True)), raw)


def _to_bytes(data: bytes | str | dict | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, dict):
        data = data.get("data") or data.get("result") or ""
    if isinstance(data, str):
        return bytes.fromhex(data.removeprefix("0x"))
    return bytes(data)
