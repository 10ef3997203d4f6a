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
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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

DOC_KEYS_ENV: Final = "LEDGER_DOC_KEYS"

_MAGIC: Final = b"JLD\x00"
_VERSION: Final = 1
_NONCE_BYTES: Final = 12
_DIGEST_BYTES: Final = 32
_KEY_BYTES: Final = 32
_TAG_BYTES: Final = 16
# Key ids appear in file names, in the comma/colon-separated env format and in the envelope's
# one-byte length field, so they are kept to a conservative ASCII set.
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY_SUFFIX: Final = ".key"
_CURRENT_FILE: Final = "CURRENT"
_ENVELOPE_SUFFIX: Final = ".jld"


class DocumentError(Exception):
    """Base class for document errors."""


class DocumentKeyError(DocumentError):
    """A document key or key ring is malformed or misconfigured. Never carries key bytes."""


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
        text = digest.strip()
        if text[:2] in ("0x", "0X"):
            text = text[2:]
        try:
            raw = bytes.fromhex(text)
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


# --- keys ----------------------------------------------------------------------------------


def _check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        raise DocumentKeyError(
            "key id must be 1-64 characters of A-Z a-z 0-9 . _ - and start with a letter or digit"
        )
    return key_id


def _parse_key_hex(key_id: str, text: str) -> bytes:
    text = text.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    try:
        key = bytes.fromhex(text)
    except ValueError:
        # Naming the id, not the value: the value is the secret.
        raise DocumentKeyError(f"key {key_id!r} is not valid hex") from None
    return key


@dataclass(frozen=True, slots=True)
class DocumentKey:
    """One member's AES-256 document key and the id recorded in every envelope it seals."""

    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_key_id(self.key_id)
        if not isinstance(self.key, bytes) or len(self.key) != _KEY_BYTES:
            raise DocumentKeyError(f"key {self.key_id!r} must be {_KEY_BYTES} bytes (AES-256)")

    @classmethod
    def generate(cls, key_id: str) -> DocumentKey:
        """A fresh random AES-256 key."""
        return cls(key_id, AESGCM.generate_key(bit_length=256))


class KeyRing:
    """Keys by id, one of them current. Immutable.

    New documents are sealed with ``current``; any key in the ring can open old ones, which
    is what makes rotation a matter of adding a key rather than re-encrypting everything.
    """

    __slots__ = ("_keys", "_current_id")

    def __init__(self, keys: Iterable[DocumentKey], current_id: str) -> None:
        by_id: dict[str, DocumentKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise DocumentKeyError(f"duplicate key id {key.key_id!r}")
            by_id[key.key_id] = key
        if current_id not in by_id:
            raise DocumentKeyError(f"current key id {current_id!r} is not in the key ring")
        self._keys: Mapping[str, DocumentKey] = by_id
        self._current_id = current_id

    def __repr__(self) -> str:
        return f"KeyRing(ids={list(self._keys)!r}, current_id={self._current_id!r})"

    @property
    def current_id(self) -> str:
        return self._current_id

    @property
    def current(self) -> DocumentKey:
        return self._keys[self._current_id]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def get(self, key_id: str) -> DocumentKey:
        try:
            return self._keys[key_id]
        except KeyError:
            raise DocumentKeyError(f"no document key with id {key_id!r}") from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[DocumentKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def rotate(self, new_key: DocumentKey) -> KeyRing:
        """A new ring with ``new_key`` added and made current; old keys stay for decryption."""
        return KeyRing([*self._keys.values(), new_key], new_key.key_id)

    @classmethod
    def single(cls, key: DocumentKey) -> KeyRing:
        return cls([key], key.key_id)

    @classmethod
    def from_env_value(cls, value: str) -> KeyRing:
        """Parse ``id:hex,id:hex``; the **last** entry is current (append to rotate)."""
        keys: list[DocumentKey] = []
        for entry in value.split(","):
            entry = entry.strip()
            if not entry:
                continue
            key_id, sep, key_hex = entry.partition(":")
            key_id = key_id.strip()
            if not sep:
                raise DocumentKeyError("each key entry must be id:hex")
            keys.append(DocumentKey(_check_key_id(key_id), _parse_key_hex(key_id, key_hex)))
        if not keys:
            raise DocumentKeyError("no document keys given")
        return cls(keys, keys[-1].key_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, var: str = DOC_KEYS_ENV) -> KeyRing:
        """Load from ``$LEDGER_DOC_KEYS`` (``id:hex,id:hex``, last is current)."""
        env = os.environ if environ is None else environ
        value = env.get(var)
        if value is None or not value.strip():
            raise DocumentKeyError(f"{var} is not set: expected id:hex[,id:hex...]")
        try:
            return cls.from_env_value(value)
        except DocumentKeyError as exc:
            raise DocumentKeyError(f"{var}: {exc}") from None

    @classmethod
    def from_directory(cls, directory: Path) -> KeyRing:
        """Load ``<key_id>.key`` files (hex) from ``directory``.

        With several keys, a ``CURRENT`` file must name the current one: file order and
        mtimes are too easy to disturb (copies, backups) to decide which key seals new data.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise DocumentKeyError(f"document key directory {str(directory)!r} does not exist")
        keys = [_read_key_file(path) for path in sorted(directory.glob("*" + _KEY_SUFFIX))]
        if not keys:
            raise DocumentKeyError(f"no *{_KEY_SUFFIX} files in {str(directory)!r}")
        current_file = directory / _CURRENT_FILE
        if current_file.exists():
            current_id = current_file.read_text(encoding="ascii").strip()
        elif len(keys) == 1:
            current_id = keys[0].key_id
        else:
            raise DocumentKeyError(
                f"{len(keys)} keys in {str(directory)!r} but no {_CURRENT_FILE} file naming "
                "the current one"
            )
        return cls(keys, current_id)


def _read_key_file(path: Path) -> DocumentKey:
    key_id = _check_key_id(path.stem)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise DocumentKeyError(f"key {key_id!r} is not valid hex") from None
    return DocumentKey(key_id, _parse_key_hex(key_id, text))


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory and os.replace.

    Readers see the old file or the new one, never a torn write; the fsyncs make the new
    content survive a crash once this returns. mkstemp creates the file 0600.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; the replace is still atomic
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_key_file(directory: Path, key: DocumentKey, *, make_current: bool = True) -> Path:
    """Save ``key`` as ``<key_id>.key`` (hex, mode 0600) and optionally mark it current.

    Refuses to overwrite an existing key file: losing a key loses every document under it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (key.key_id + _KEY_SUFFIX)
    if path.exists():
        raise DocumentKeyError(f"key file for {key.key_id!r} already exists")
    _atomic_write(path, key.key.hex().encode("ascii") + b"\n")
    if make_current:
        _atomic_write(directory / _CURRENT_FILE, key.key_id.encode("ascii") + b"\n")
    return path


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
        _check_key_id(self.key_id)
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
        _atomic_write(self.path_for(envelope.digest), envelope.to_bytes())
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
