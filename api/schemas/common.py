"""Field types shared by the request and response models: ids, addresses, amounts in fen."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, model_validator

from ledger.domain import MAX_AMOUNT, record_id, to_checksum_address

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    return to_checksum_address(value)


def _api_id(value: str) -> str:
    if _HEX32.fullmatch(value):
        return value.lower()
    return value


def _hex32(value: str) -> str:
    if not _HEX32.fullmatch(value):
        raise ValueError("must be 0x followed by 64 hex digits")
    return value.lower()


Address = Annotated[
    str, Field(examples=["0x99427C5eCD7200c06cfa34817657bd2FB118a897"]), AfterValidator(_address)
]
Hex32 = Annotated[str, AfterValidator(_hex32)]
# Any string up to 80 characters, or a 0x-64-hex bytes32. A string becomes an id in the platform's
# namespace on chain (ledger.domain.record_id), so clients use their own ids ("loan-2024-000123")
# and still get a bytes32; 0x hex is the on-chain id itself (how another platform's record, or a
# transferred one, is named).
ApiId = Annotated[
    str,
    Field(min_length=1, max_length=80, pattern=r"^[\x21-\x7e]+$", examples=["loan-2024-000123"]),
    AfterValidator(_api_id),
]
# Money is integer fen; Strict refuses 1.5, "100" and 100.0 alike.
Fen = Annotated[int, Strict(), Field(gt=0, le=MAX_AMOUNT, examples=[5_000_000])]
FenOrZero = Annotated[int, Strict(), Field(ge=0, le=MAX_AMOUNT, examples=[0])]
NationalId = Annotated[str, Field(min_length=1, max_length=32, examples=["11010519491231002X"])]

MAX_DOCUMENT_BYTES = 1 << 20


def chain_id_of(api_id: str, owner: str) -> bytes:
    """The bytes32 on chain for an API id: the hex itself, or the string's id in platform
    `owner`'s namespace (ledger.domain.record_id)."""
    if _HEX32.fullmatch(api_id):
        return bytes.fromhex(api_id[2:])
    return record_id(owner, api_id)


def decode_document(value: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("document must be base64") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
    return data


def _document(value: str | None) -> str | None:
    if value is not None:
        decode_document(value)
    return value


Document = Annotated[
    str | None,
    Field(
        None, description="base64 of the signed loan document; stored encrypted, digest on chain"
    ),
    AfterValidator(_document),
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def examples(*values: Any) -> ConfigDict:
    """A model's config: unknown fields refused, and the examples its OpenAPI schema shows."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(values)})


class Share(Model):
    lender: Address
    amount: Fen


class BorrowerRef(Model):
    """Either the national ID (keyed on this node, never stored) or the borrower key."""

    borrower_id: NationalId | None = None
    borrower_key: Hex32 | None = None

    @model_validator(mode="after")
    def _one_of(self) -> BorrowerRef:
        if (self.borrower_id is None) == (self.borrower_key is None):
            raise ValueError("give exactly one of borrower_id and borrower_key")
        return self


def unique_lenders(shares: list[Share]) -> list[Share]:
    seen: set[str] = set()
    for s in shares:
        if s.lender in seen:
            raise ValueError(f"lender {s.lender} appears twice")
        seen.add(s.lender)
    return shares
