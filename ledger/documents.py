"""Loan documents: off chain, encrypted at rest, proven by digest (DESIGN.md §3).

The chain carries only ``SHA-256(document)``. Each member keeps its copies encrypted with
AES-256-GCM under its own keys; the key id travels in the envelope so keys can be rotated
without re-encrypting old documents.

Envelope format, version 1 (all integers big-endian)::

    magic    4 bytes  b"JLD\\x00"
    version  1 byte   0x01
    id_len   1 byte   length of key_id
    key_id   id_len   ASCII
    nonce    12 bytes
    digest   32 bytes SHA-256 of the plaintext
    ct       rest     AES-256-GCM ciphertext with its 16-byte tag

Everything before ``ct`` is the GCM associated data. Binding the digest means an envelope
cannot be relabelled as another document; binding the key id and version means those fields
cannot be edited to steer decryption either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.keyring import (
    DOC_KEYS_ENV,
    DocumentError,
    DocumentKey,
    DocumentKeyError,
    KeyRing,
    check_key_id,
    write_key_file,
)
from ledger.secretfile import atomic_write, parse_hex

# The key ring lives in ledger.keyring; its names are part of this module's surface too.
__all__ = [
    "DOC_KEYS_ENV",
    "DocumentDecryptError",
    "DocumentError",
    "DocumentKey",
    "DocumentKeyError",
    "DocumentMismatch",
    "DocumentNotFound",
    "DocumentStore",
    "EncryptedDocument",
    "EnvelopeFormatError",
    "KeyRing",
    "check_document",
    "decrypt_document",
    "document_digest",
    "document_digest_hex",
    "encrypt_document",
    "parse_digest",
    "verify_document",
    "write_key_file",
]

_MAGIC: Final = b"JLD\x00"
_VERSION: Final = 1
_NONCE_BYTES: Final = 12
_DIGEST_BYTES: Final = 32
_TAG_BYTES: Final = 16
_ENVELOPE_SUFFIX: Final = ".jld"


class EnvelopeFormatError(DocumentError):
    """Bytes that are not a well-formed envelope of a supported version."""


class DocumentDecryptError(DocumentError):
    """An envelope could not be opened: unknown key id, wrong key, or tampered bytes."""


class DocumentMismatch(DocumentError):
    """A document does not hash to the digest recorded on chain."""

    def __init__(self, expected: bytes, actual: bytes) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"document digest 0x{actual.hex()} does not match the on-chain digest "
            f"0x{expected.hex()}"
        )


class DocumentNotFound(DocumentError, KeyError):
    """No envelope for this digest in the store."""

    def __str__(self) -> str:
        # KeyError would otherwise repr() the message, quotes and all.
        return str(self.args[0]) if self.args else ""


# --- digests -------------------------------------------------------------------------------


def document_digest(data: bytes) -> bytes:
    """SHA-256 of the document: the 32 bytes recorded on chain."""
    return hashlib.sha256(data).digest()


def document_digest_hex(data: bytes) -> str:
    """``document_digest`` as ``0x`` + 64 lower-case hex digits."""
    return "0x" + document_digest(data).hex()


def parse_digest(digest: bytes | str) -> bytes:
    """Accept a digest as 32 bytes (including HexBytes from web3) or hex, ``0x`` optional."""
    if isinstance(digest, bytes | bytearray | memoryview):
        raw = bytes(digest)
    elif isinstance(digest, str):
        try:
            raw = parse_hex(digest)
        except ValueError:
            raise ValueError("digest is not valid hex") from None
    else:
        raise TypeError(f"digest must be bytes or str, not {type(digest).__name__}")
    if len(raw) != _DIGEST_BYTES:
        raise ValueError(f"digest must be {_DIGEST_BYTES} bytes, got {len(raw)}")
    return raw


def verify_document(doc: bytes, onchain_digest: bytes | str | object) -> bool:
    """True if ``doc`` is the document whose digest was recorded on chain.

    ``onchain_digest`` is the digest itself, or a record (a CoLoan or CreditLine, as read back
    from the chain) whose ``document_digest`` it is. A malformed digest raises ValueError rather
    than returning False: that is a caller bug, not evidence that the document was altered.
    """
    return hmac.compare_digest(document_digest(doc), parse_digest(_digest_of(onchain_digest)))


def _digest_of(value: bytes | str | object) -> bytes | str:
    if isinstance(value, bytes | bytearray | memoryview | str):
        return value  # type: ignore[return-value]
    digest = getattr(value, "document_digest", None)
    if digest is None:
        raise TypeError("expected a digest or a record with a document_digest")
    return digest


def check_document(doc: bytes, onchain_digest: bytes | str | object) -> None:
    """Like ``verify_document`` but raises DocumentMismatch carrying both digests."""
    expected = parse_digest(_digest_of(onchain_digest))
    actual = document_digest(doc)
    if not hmac.compare_digest(actual, expected):
        raise DocumentMismatch(expected, actual)


# --- envelopes -----------------------------------------------------------------------------


def _header(key_id: str, nonce: bytes, digest: bytes) -> bytes:
    key_id_bytes = key_id.encode("ascii")
    return _MAGIC + bytes([_VERSION, len(key_id_bytes)]) + key_id_bytes + nonce + digest


@dataclass(frozen=True, slots=True)
class EncryptedDocument:
    """A sealed document: which key, the nonce, the ciphertext+tag, the plaintext's digest."""

    key_id: str
    nonce: bytes
    ciphertext: bytes = field(repr=False)
    digest: bytes

    def __post_init__(self) -> None:
        check_key_id(self.key_id)
        if len(self.nonce) != _NONCE_BYTES:
            raise EnvelopeFormatError(f"nonce must be {_NONCE_BYTES} bytes")
        if len(self.digest) != _DIGEST_BYTES:
            raise EnvelopeFormatError(f"digest must be {_DIGEST_BYTES} bytes")
        if len(self.ciphertext) < _TAG_BYTES:
            raise EnvelopeFormatError("ciphertext is shorter than the GCM tag")

    def header(self) -> bytes:
        """The envelope up to the ciphertext; also the GCM associated data."""
        return _header(self.key_id, self.nonce, self.digest)

    def to_bytes(self) -> bytes:
        return self.header() + self.ciphertext

    @classmethod
    def from_bytes(cls, data: bytes) -> EncryptedDocument:
        data = bytes(data)
        fixed = len(_MAGIC) + 2
        if len(data) < fixed or not data.startswith(_MAGIC):
            raise EnvelopeFormatError("not a document envelope (bad magic)")
        version, id_len = data[len(_MAGIC)], data[len(_MAGIC) + 1]
        if version != _VERSION:
            raise EnvelopeFormatError(f"unsupported envelope version {version}")
        pos = fixed
        key_id_bytes = data[pos : pos + id_len]
        pos += id_len
        nonce = data[pos : pos + _NONCE_BYTES]
        pos += _NONCE_BYTES
        digest = data[pos : pos + _DIGEST_BYTES]
        pos += _DIGEST_BYTES
        if len(data) < pos + _TAG_BYTES:
            raise EnvelopeFormatError("envelope is truncated")
        try:
            key_id = key_id_bytes.decode("ascii")
            return cls(key_id, nonce, data[pos:], digest)
        except (UnicodeDecodeError, DocumentKeyError):
            raise EnvelopeFormatError("envelope has a malformed key id") from None


def encrypt_document(data: bytes, keyring: KeyRing) -> EncryptedDocument:
    """Seal ``data`` with the ring's current key and a fresh random 96-bit nonce.

    Random nonces are safe here: at 2^32 messages per key the collision risk is about 2^-33,
    far beyond any one member's document volume between rotations.
    """
    key = keyring.current
    digest = document_digest(data)
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(key.key).encrypt(nonce, data, _header(key.key_id, nonce, digest))
    return EncryptedDocument(key.key_id, nonce, ciphertext, digest)


def decrypt_document(envelope: EncryptedDocument, keyring: KeyRing) -> bytes:
    """Open an envelope; raises DocumentDecryptError if it is not authentic under the ring."""
    if envelope.key_id not in keyring:
        raise DocumentDecryptError(
            f"no document key with id {envelope.key_id!r} in the key ring "
            f"(have: {', '.join(keyring.ids)})"
        )
    key = keyring.get(envelope.key_id)
    try:
        data = AESGCM(key.key).decrypt(envelope.nonce, envelope.ciphertext, envelope.header())
    except InvalidTag:
        # InvalidTag has an empty message; say what it means for the operator.
        raise DocumentDecryptError(
            f"document 0x{envelope.digest.hex()} failed authentication under key "
            f"{envelope.key_id!r}: the envelope was altered or sealed with a different key"
        ) from None
    # Cannot differ if GCM verified (the digest is in the AAD and we computed it when
    # sealing), but it is one hash and guards against an envelope built by other software.
    if not hmac.compare_digest(document_digest(data), envelope.digest):
        raise DocumentDecryptError(
            f"document 0x{envelope.digest.hex()} decrypted to data with a different digest"
        )
    return data


# --- store ---------------------------------------------------------------------------------


class DocumentStore:
    """Envelopes on disk, one file per document named ``<digest hex>.jld``.

    Content-addressed, so ``put`` is idempotent in effect; re-putting a document reseals it
    under the current key, which is also how an operator migrates old documents after a
    rotation.
    """

    def __init__(self, directory: Path, keyring: KeyRing) -> None:
        self.directory = Path(directory)
        self.keyring = keyring
        self.directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, digest: bytes | str) -> Path:
        return self.directory / (parse_digest(digest).hex() + _ENVELOPE_SUFFIX)

    def put(self, data: bytes) -> bytes:
        """Encrypt and store ``data``; return its digest (what goes on chain)."""
        envelope = encrypt_document(data, self.keyring)
        atomic_write(self.path_for(envelope.digest), envelope.to_bytes())
        return envelope.digest

    def get(self, digest: bytes | str) -> bytes:
        """Read, decrypt and verify the document with this digest."""
        expected = parse_digest(digest)
        path = self.path_for(expected)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DocumentNotFound(f"no document 0x{expected.hex()} in the store") from None
        envelope = EncryptedDocument.from_bytes(raw)
        # The file name is not authenticated; the envelope's digest is. A file swapped in
        # under another name decrypts fine but is the wrong document.
        if envelope.digest != expected:
            raise DocumentDecryptError(
                f"file for 0x{expected.hex()} holds the envelope of 0x{envelope.digest.hex()}"
            )
        return decrypt_document(envelope, self.keyring)

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, bytes | str):
            return False
        try:
            return self.path_for(digest).is_file()
        except ValueError:
            return False

    def digests(self) -> Iterator[bytes]:
        """Digests of stored documents (from file names; ``get`` authenticates each)."""
        for path in sorted(self.directory.glob("*" + _ENVELOPE_SUFFIX)):
            try:
                yield parse_digest(path.stem)
            except ValueError:
                continue
