"""Document keys: one member's AES-256 keys by id, one of them current (DESIGN.md §3).

New documents are sealed with the current key; any key in the ring opens old ones, so rotation
is adding a key. Keys come from ``$LEDGER_DOC_KEYS`` (``id:hex,id:hex``, the last is current) or
from a directory of ``<key_id>.key`` files with a ``CURRENT`` file. ledger.documents seals and
opens the envelopes with them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.secretfile import atomic_write, parse_hex

__all__ = [
    "DOC_KEYS_ENV",
    "DocumentError",
    "DocumentKey",
    "DocumentKeyError",
    "KeyRing",
    "check_key_id",
    "write_key_file",
]

DOC_KEYS_ENV: Final = "LEDGER_DOC_KEYS"

_KEY_BYTES: Final = 32
# Key ids appear in file names, in the comma/colon-separated env format and in the envelope's
# one-byte length field, so they are kept to a conservative ASCII set.
_KEY_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY_SUFFIX: Final = ".key"
_CURRENT_FILE: Final = "CURRENT"


class DocumentError(Exception):
    """Base class for document errors."""


class DocumentKeyError(DocumentError):
    """A document key or key ring is malformed or misconfigured. Never carries key bytes."""


def check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not _KEY_ID_RE.fullmatch(key_id):
        raise DocumentKeyError(
            "key id must be 1-64 characters of A-Z a-z 0-9 . _ - and start with a letter or digit"
        )
    return key_id


def _parse_key_hex(key_id: str, text: str) -> bytes:
    try:
        return parse_hex(text)
    except ValueError:
        # Naming the id, not the value: the value is the secret.
        raise DocumentKeyError(f"key {key_id!r} is not valid hex") from None


@dataclass(frozen=True, slots=True)
class DocumentKey:
    """One member's AES-256 document key and the id recorded in every envelope it seals."""

    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        check_key_id(self.key_id)
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
            keys.append(DocumentKey(check_key_id(key_id), _parse_key_hex(key_id, key_hex)))
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
    key_id = check_key_id(path.stem)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise DocumentKeyError(f"key {key_id!r} is not valid hex") from None
    return DocumentKey(key_id, _parse_key_hex(key_id, text))


def write_key_file(directory: Path, key: DocumentKey, *, make_current: bool = True) -> Path:
    """Save ``key`` as ``<key_id>.key`` (hex, mode 0600) and optionally mark it current.

    Refuses to overwrite an existing key file: losing a key loses every document under it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (key.key_id + _KEY_SUFFIX)
    if path.exists():
        raise DocumentKeyError(f"key file for {key.key_id!r} already exists")
    atomic_write(path, key.key.hex().encode("ascii") + b"\n")
    if make_current:
        atomic_write(directory / _CURRENT_FILE, key.key_id.encode("ascii") + b"\n")
    return path
