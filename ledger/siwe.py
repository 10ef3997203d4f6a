"""Sign-In with Ethereum (EIP-4361): a small, strict message formatter, parser and verifier.

The `siwe` package on PyPI pins web3 < 8 and eth-account < 0.14, so it cannot sit beside ours.
This module covers the part of EIP-4361 a node needs: the message lines in their fixed order
(domain, address, statement, URI, Version 1, Chain ID, Nonce, Issued At, Expiration Time, and the
optional Not Before, Request ID and Resources), signed as an EIP-191 `personal_sign` message.

It lives in `ledger/` rather than `api/` because both sides use it: the node verifies, and the
CLI (`ledger token`), the demo and the platform node's peer client sign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address, to_checksum_address

__all__ = ["SiweError", "SiweMessage", "parse", "recover", "sign", "utc"]

_HEADER = " wants you to sign in with your Ethereum account:"
_NONCE_RE = re.compile(r"[A-Za-z0-9]{8,}")
_DOMAIN_RE = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


class SiweError(ValueError):
    """A message that does not follow EIP-4361, or a signature that does not match it."""


def utc(ts: datetime) -> str:
    """RFC 3339 in UTC with a Z, to the second: the form every field here uses."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: str, name: str) -> datetime:
    if not _TIME_RE.fullmatch(value):
        raise SiweError(f"{name} is not an RFC 3339 date-time")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SiweError(f"{name} is not an RFC 3339 date-time") from None


@dataclass(frozen=True, slots=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime | None = None
    statement: str | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default=())
    version: str = "1"

    def __post_init__(self) -> None:
        if not _DOMAIN_RE.fullmatch(self.domain):
            raise SiweError("domain must be an RFC 3986 authority (host[:port])")
        if not _ADDRESS_RE.fullmatch(self.address) or not is_checksum_address(self.address):
            raise SiweError("address must be an EIP-55 checksummed address")
        if not _NONCE_RE.fullmatch(self.nonce):
            raise SiweError("nonce must be at least 8 alphanumeric characters")
        if self.version != "1":
            raise SiweError("version must be 1")
        if self.statement is not None and ("\n" in self.statement or not self.statement):
            raise SiweError("statement must be one non-empty line")
        if not self.uri or any(c.isspace() for c in self.uri):
            raise SiweError("uri must be a URI without spaces")

    def text(self) -> str:
        """The exact text that is signed."""
        lines = [f"{self.domain}{_HEADER}", self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines += [""]
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {utc(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {utc(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {utc(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)


_OPTIONAL = ("Expiration Time", "Not Before", "Request ID")


def parse(text: str) -> SiweMessage:
    """Parse a message; anything out of order, unknown or malformed raises SiweError."""
    if not isinstance(text, str) or "\r" in text:
        raise SiweError("message must be text with LF line endings")
    lines = text.split("\n")
    if len(lines) < 9 or not lines[0].endswith(_HEADER):
        raise SiweError("first line must be '<domain> wants you to sign in with ...'")
    domain = lines[0][: -len(_HEADER)]
    address = lines[1]
    if lines[2] != "":
        raise SiweError("the address must be followed by an empty line")
    # With a statement: statement, "", URI. Without one: "", URI.
    if lines[3] == "":
        statement, i = None, 4
    else:
        if lines[4] != "":
            raise SiweError("the statement must be one line followed by an empty line")
        statement, i = lines[3], 5
    values: dict[str, str] = {}
    for name in ("URI", "Version", "Chain ID", "Nonce", "Issued At"):
        if i >= len(lines) or not lines[i].startswith(f"{name}: "):
            raise SiweError(f"expected '{name}: ' at line {i + 1}")
        values[name] = lines[i][len(name) + 2 :]
        i += 1
    for name in _OPTIONAL:
        if i < len(lines) and lines[i].startswith(f"{name}: "):
            values[name] = lines[i][len(name) + 2 :]
            i += 1
    resources: list[str] = []
    if i < len(lines) and lines[i] == "Resources:":
        i += 1
        while i < len(lines) and lines[i].startswith("- "):
            resources.append(lines[i][2:])
            i += 1
    if i != len(lines):
        raise SiweError(f"unexpected content at line {i + 1}")
    if not values["Chain ID"].isdigit():
        raise SiweError("Chain ID must be a decimal integer")
    return SiweMessage(
        domain=domain,
        address=address,
        statement=statement,
        uri=values["URI"],
        version=values["Version"],
        chain_id=int(values["Chain ID"]),
        nonce=values["Nonce"],
        issued_at=_time(values["Issued At"], "Issued At"),
        expiration_time=(
            _time(values["Expiration Time"], "Expiration Time")
            if "Expiration Time" in values
            else None
        ),
        not_before=_time(values["Not Before"], "Not Before") if "Not Before" in values else None,
        request_id=values.get("Request ID"),
        resources=tuple(resources),
    )


def sign(text: str, private_key: bytes | str) -> str:
    """An EIP-191 personal_sign signature over the message text, as 0x-hex."""
    signed = Account.sign_message(encode_defunct(text=text), private_key)
    return "0x" + bytes(signed.signature).hex()


def recover(text: str, signature: str) -> str:
    """The checksummed address that signed `text`; SiweError for a malformed signature."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError:
        raise SiweError("signature is not hex") from None
    if len(raw) != 65:
        raise SiweError(f"signature is {len(raw)} bytes, expected 65")
    try:
        return to_checksum_address(
            Account.recover_message(encode_defunct(text=text), signature=raw)
        )
    except Exception:  # noqa: BLE001 - eth-keys raises several types for a bad signature
        raise SiweError("signature cannot be recovered") from None
