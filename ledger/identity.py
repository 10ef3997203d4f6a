"""Borrower identity: resident-ID validation and the keyed borrower key (DESIGN.md §3).

A borrower is never stored or sent by national ID. Every member derives the same
``borrower_key = HMAC-SHA256(pepper, normalised ID)``; the pepper is what stops anyone from
brute-forcing the small 18-digit ID space back out of a key seen on chain.

The raw ID is personal data. Nothing in this module logs it, and ``InvalidResidentId`` says
*which rule* failed without ever carrying the ID or any part of it, so the exception can be
logged, returned as an HTTP 422 or pickled across processes safely.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Final, Literal

from ledger.secretfile import parse_hex

__all__ = [
    "DEV_PEPPER",
    "MIN_PEPPER_BYTES",
    "PEPPER_ENV",
    "PURPOSES",
    "Purpose",
    "GENESIS_HASH",
    "InvalidResidentId",
    "Pepper",
    "PepperError",
    "borrower_key",
    "borrower_key_hex",
    "derivation_hash",
    "derivation_statement",
    "is_valid_id",
    "normalise_id",
]

Rule = Literal["length", "characters", "birth_date", "check_digit"]

#: Why a member asks the key service for a borrower key; every derivation is logged with one.
Purpose = Literal["origination", "enquiry", "servicing", "audit"]
PURPOSES: Final[tuple[str, ...]] = ("origination", "enquiry", "servicing", "audit")
#: The previous-row hash of the key service's first derivation.
GENESIS_HASH: Final = "0x" + "00" * 32

PEPPER_ENV: Final = "LEDGER_PEPPER"
MIN_PEPPER_BYTES: Final = 16

#: DEV-ONLY pepper for the local consortium. It is public (it is in the source), so keys
#: derived with it are as brute-forceable as a plain hash. Never use it with real borrowers.
DEV_PEPPER: Final = b"joint-lending-ledger DEV-ONLY pepper: never use with real borrowers"

_ID_LENGTH: Final = 18
_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS: Final = "10X98765432"
_DIGITS: Final = frozenset("0123456789")
# Birth dates are civil dates in China; judging "not in the future" against the UTC date would
# reject someone born in the first eight hours of a Chinese day. China has had no DST since 1991.
_CHINA_TZ: Final = timezone(timedelta(hours=8), "CST")

_RULE_MESSAGES: Final[dict[Rule, str]] = {
    "length": "must be exactly 18 characters",
    "characters": "must be 17 ASCII digits followed by a digit or X",
    "birth_date": "does not contain a valid birth date",
    "check_digit": "check digit does not match (ISO 7064 MOD 11-2)",
}


class InvalidResidentId(ValueError):
    """A borrower ID failed validation.

    ``field`` and ``rule`` are what an API needs for a 422; the ID itself is deliberately
    absent from every attribute, so this exception is always safe to log.
    """

    field: Final = "borrower_id"

    def __init__(self, rule: Rule) -> None:
        self.rule: Rule = rule
        super().__init__(f"{self.field} is not a valid resident ID: {_RULE_MESSAGES[rule]}")

    def __reduce__(self) -> tuple[type[InvalidResidentId], tuple[Rule]]:
        # The default reduce would replay args (the message) into __init__(rule).
        return (type(self), (self.rule,))


class PepperError(ValueError):
    """The pepper is missing, malformed or too short. Messages never include the pepper."""


def _check_digit(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def _today_in_china() -> date:
    return datetime.now(_CHINA_TZ).date()


def normalise_id(raw: str, *, today: date | None = None) -> str:
    """Return the canonical form of a resident ID (GB 11643-1999), or raise InvalidResidentId.

    Surrounding whitespace is stripped and a trailing ``x`` becomes ``X``; nothing else is
    forgiven. ``today`` (default: the current date in China) bounds the birth date.
    """
    if not isinstance(raw, str):
        # Only the type name: the value might be the ID as bytes or an int.
        raise TypeError(f"borrower_id must be str, not {type(raw).__name__}")
    candidate = raw.strip()
    if len(candidate) != _ID_LENGTH:
        raise InvalidResidentId("length")
    # Explicit ASCII sets, not str.isdigit(), which also accepts full-width and other
    # Unicode digits that int() would then quietly convert.
    body, last = candidate[:17], candidate[17]
    if not _DIGITS.issuperset(body) or (last not in _DIGITS and last not in "xX"):
        raise InvalidResidentId("characters")
    candidate = body + last.upper()

    year, month, day = int(body[6:10]), int(body[10:12]), int(body[12:14])
    try:
        born = date(year, month, day)
    except ValueError:
        born = None
    # `from None` is not needed here because the raise is outside the except block: the
    # ValueError never becomes __context__ and so cannot show up in a traceback.
    if born is None or year < 1900 or born > (today or _today_in_china()):
        raise InvalidResidentId("birth_date")

    if _check_digit(body) != candidate[17]:
        raise InvalidResidentId("check_digit")
    return candidate


def is_valid_id(raw: object, *, today: date | None = None) -> bool:
    """True if ``raw`` is a valid resident ID; never raises."""
    if not isinstance(raw, str):
        return False
    try:
        normalise_id(raw, today=today)
    except InvalidResidentId:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Pepper:
    """The consortium's HMAC pepper for borrower keys.

    The secret is excluded from repr so a Pepper can sit in settings objects that get logged.
    ``is_dev`` marks the public DEV-ONLY pepper so production start-up can refuse it.
    """

    secret: bytes = field(repr=False)
    is_dev: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes):
            raise PepperError("pepper must be bytes")
        if len(self.secret) < MIN_PEPPER_BYTES:
            raise PepperError(
                f"pepper must be at least {MIN_PEPPER_BYTES} bytes, got {len(self.secret)}"
            )

    @classmethod
    def from_hex(cls, value: str) -> Pepper:
        """Parse a hex pepper (an optional ``0x`` prefix and surrounding whitespace allowed)."""
        try:
            secret = parse_hex(value)
        except ValueError:
            secret = None
        if secret is None:  # raised outside the except: no traceback chain near the secret
            raise PepperError("pepper is not valid hex")
        return cls(secret)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, var: str = PEPPER_ENV) -> Pepper:
        """Load the pepper from ``$LEDGER_PEPPER`` (hex).

        There is deliberately no fallback to the dev pepper: a node that silently keyed real
        borrowers with a public pepper would leak them. Use ``Pepper.dev()`` explicitly.
        """
        env = os.environ if environ is None else environ
        value = env.get(var)
        if value is None or not value.strip():
            raise PepperError(
                f"{var} is not set: set it to the consortium pepper as hex "
                f"(at least {MIN_PEPPER_BYTES} bytes), or use Pepper.dev() for a local chain"
            )
        try:
            return cls.from_hex(value)
        except PepperError as exc:
            raise PepperError(f"{var}: {exc}") from None

    @classmethod
    def dev(cls) -> Pepper:
        """The DEV-ONLY pepper for the local consortium; never for real borrowers."""
        return cls(DEV_PEPPER, is_dev=True)


def _pepper_bytes(pepper: bytes | Pepper) -> bytes:
    if isinstance(pepper, Pepper):
        return pepper.secret
    if not isinstance(pepper, bytes):
        raise PepperError("pepper must be bytes or a Pepper")
    return Pepper(pepper).secret  # validates the length


def borrower_key(raw_id: str, pepper: bytes | Pepper) -> bytes:
    """The 32-byte borrower key: HMAC-SHA256(pepper, normalised ID).

    Raises InvalidResidentId for a bad ID, so a typo can never become a silent new borrower.
    """
    secret = _pepper_bytes(pepper)
    normalised = normalise_id(raw_id)
    return hmac.new(secret, normalised.encode("ascii"), hashlib.sha256).digest()


def borrower_key_hex(raw_id: str, pepper: bytes | Pepper) -> str:
    """``borrower_key`` as ``0x`` + 64 lower-case hex digits (the bytes32 form for the chain)."""
    return "0x" + borrower_key(raw_id, pepper).hex()


def derivation_hash(
    prev_hash: str, seq: int, member: str, at: int, purpose: str, key_hex: str
) -> str:
    """The key service's derivation-log chain: each row's hash covers the previous row's, so a
    deleted or altered row breaks every hash after it (the auditor recomputes them). Never
    includes the ID: only what the log holds."""
    text = f"{prev_hash}|{seq}|{member}|{at}|{purpose}|{key_hex}"
    return "0x" + hashlib.sha256(text.encode("ascii")).hexdigest()


def derivation_statement(row_hash: str) -> str:
    """What the key service signs (EIP-191, its own key) for each log row: a chain rewritten
    consistently by someone with the database's rights but not the key fails on these."""
    return f"Key service derivation log row {row_hash}"
