"""Signing keys: the secp256k1 backend check, DEV-ONLY consortium keys, and keystore files.

Dev keys are derived from public strings, so anyone can recompute them: they exist only so a
local chain comes up with the same addresses every time. Real members load an encrypted
keystore (the geth / eth-account V3 format) whose password comes from the environment.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Final, Literal, NotRequired, TypedDict

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.backends import get_backend_class
from eth_keys.backends.coincurve import CoinCurveECCBackend
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.secretfile import atomic_write

__all__ = [
    "DEV_KEYS_WARNING",
    "DEV_KEY_DOMAIN",
    "KEY_PASSWORD_ENV",
    "CryptoBackendError",
    "DevConsortium",
    "KeystoreError",
    "dev_account",
    "dev_consortium",
    "ensure_coincurve_backend",
    "load_keystore",
    "write_keystore",
]

KEY_PASSWORD_ENV: Final = "LEDGER_KEY_PASSWORD"
DEV_KEY_DOMAIN: Final = b"joint-lending-ledger DEV-ONLY key|"
DEV_KEYS_WARNING: Final = (
    "DEV-ONLY keys: derived from public strings in the source code, so anyone can sign as "
    "these accounts. Use them only on a local development chain, never for real funds."
)

_COINCURVE_MISSING: Final = (
    "coincurve is not installed: eth-keys would fall back to pure-Python secp256k1, "
    "~10x slower; pip install coincurve==21.0.0"
)
_ROLE_RE: Final = re.compile(r"[a-z][a-z0-9_-]*")


class CryptoBackendError(RuntimeError):
    """eth-keys is not using coincurve, so signing and recovery would be ~10x slower."""


class KeystoreError(RuntimeError):
    """A keystore could not be loaded or written. Messages never contain the password."""


# --- backend check -------------------------------------------------------------------------


def _coincurve_importable() -> bool:
    try:
        import coincurve  # noqa: F401
    except ImportError:
        return False
    return True


def ensure_coincurve_backend() -> None:
    """Fail fast at start-up unless eth-keys signs and recovers through coincurve.

    eth-keys picks its backend lazily on every call (``ECC_BACKEND_CLASS`` if set, else
    coincurve if importable, else its pure-Python one) and never warns about the fallback,
    so the only symptom would be a node that is mysteriously ~10x slower. eth-account's
    ``Account`` also holds its own reference, which ``Account.set_key_backend`` can replace,
    so both are checked.
    """
    if not _coincurve_importable():
        raise CryptoBackendError(_COINCURVE_MISSING)
    try:
        configured = get_backend_class()
    except ImportError as exc:  # ECC_BACKEND_CLASS names something that does not import
        raise CryptoBackendError(f"eth-keys backend cannot be loaded: {exc}") from None
    if not issubclass(configured, CoinCurveECCBackend):
        override = os.environ.get("ECC_BACKEND_CLASS")
        reason = f"ECC_BACKEND_CLASS={override}" if override else "default backend selection"
        raise CryptoBackendError(
            f"eth-keys is configured to use {configured.__module__}.{configured.__qualname__} "
            f"({reason}), not coincurve; unset ECC_BACKEND_CLASS or point it at "
            "eth_keys.backends.CoinCurveECCBackend"
        )
    # Private attribute, hence getattr: if a future eth-account drops it, the check above
    # already covers the default path and this one simply has nothing to inspect.
    account_keys = getattr(Account, "_keys", None)
    backend = getattr(account_keys, "backend", None)
    if backend is not None and not isinstance(backend, CoinCurveECCBackend):
        raise CryptoBackendError(
            f"eth-account's Account uses {type(backend).__qualname__}, not coincurve "
            "(Account.set_key_backend was called with another backend)"
        )


# --- DEV-ONLY keys -------------------------------------------------------------------------


class DevConsortium(TypedDict):
    """DEV-ONLY accounts for a local consortium; never for real funds."""

    governor: LocalAccount
    platform: LocalAccount
    lenders: list[LocalAccount]
    auditor: LocalAccount
    # a guarantee company admitted at bootstrap when present (`ledger up` admits one)
    guarantor: NotRequired[LocalAccount]


def dev_account(role: str, index: int = 0) -> LocalAccount:
    """DEV-ONLY: a deterministic account for ``role`` number ``index``; never for real funds.

    The private key is ``keccak256(DEV_KEY_DOMAIN + role + b"|" + str(index))``: public, so
    every developer's local chain gets the same addresses, and so is every key derived here.
    """
    if not isinstance(role, str) or not _ROLE_RE.fullmatch(role):
        raise ValueError("role must be lower-case ASCII letters, digits, '_' or '-'")
    # bool is an int subclass; dev_account("lender", True) is surely a mistake.
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ValueError("index must be a non-negative int")
    secret = keccak(DEV_KEY_DOMAIN + role.encode("ascii") + b"|" + str(index).encode("ascii"))
    account: LocalAccount = Account.from_key(secret)
    return account


def dev_consortium(n_lenders: int = 3) -> DevConsortium:
    """DEV-ONLY governor, platform, ``n_lenders`` lenders and auditor; never for real funds.

    See ``DEV_KEYS_WARNING``; anything that prints these accounts should print it too.
    """
    if not isinstance(n_lenders, int) or isinstance(n_lenders, bool) or n_lenders < 1:
        raise ValueError("n_lenders must be a positive int")
    return DevConsortium(
        governor=dev_account("governor", 0),
        platform=dev_account("platform", 0),
        lenders=[dev_account("lender", i) for i in range(n_lenders)],
        auditor=dev_account("auditor", 0),
    )


# --- keystores -----------------------------------------------------------------------------


def load_keystore(path: Path, password_env: str = KEY_PASSWORD_ENV) -> LocalAccount:
    """Decrypt a V3 keystore file with the password in ``$password_env``.

    The password is read from the environment rather than taken as an argument so it never
    appears on a command line (visible in ``ps``) or in a caller's traceback.
    """
    path = Path(path)
    password = os.environ.get(password_env)
    if password is None:
        raise KeystoreError(f"{password_env} is not set: it must hold the password for {path}")
    if password == "":
        raise KeystoreError(f"{password_env} is empty: it must hold the password for {path}")
    keyfile = _read_keyfile(path)
    try:
        secret = Account.decrypt(keyfile, password)
    except ValueError as exc:
        # eth-keyfile reports a wrong password as ValueError("MAC mismatch") (V3) or
        # "Checksum mismatch" (V4); any other ValueError is a malformed file. None of its
        # messages include the password.
        if str(exc) in ("MAC mismatch", "Checksum mismatch"):
            raise KeystoreError(
                f"wrong password for keystore {path} (from {password_env})"
            ) from None
        raise KeystoreError(f"keystore {path} is malformed: {exc}") from None
    except (KeyError, TypeError, NotImplementedError) as exc:
        raise KeystoreError(f"keystore {path} is malformed: {exc!r}") from None
    account: LocalAccount = Account.from_key(secret)
    recorded = keyfile.get("address")
    # The V3 format does not authenticate the address field. A mismatch means the file was
    # edited or mixed up; signing as an unexpected address is worse than refusing to start.
    if isinstance(recorded, str) and recorded:
        try:
            recorded_checksum = to_checksum_address(
                recorded if recorded.startswith("0x") else "0x" + recorded
            )
        except ValueError:
            raise KeystoreError(f"keystore {path} has a malformed address field") from None
        if recorded_checksum != account.address:
            raise KeystoreError(
                f"keystore {path} says address {recorded_checksum} but its key is for "
                f"{account.address}"
            )
    return account


def _read_keyfile(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeystoreError(f"keystore {path} does not exist") from None
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise KeystoreError(f"keystore {path} is not JSON") from None
    if not isinstance(data, dict):
        raise KeystoreError(f"keystore {path} is not a JSON object")
    return data


def write_keystore(
    account: LocalAccount,
    path: Path,
    password: str,
    *,
    kdf: Literal["scrypt", "pbkdf2"] = "scrypt",
    work_factor: int | None = None,
) -> Path:
    """Encrypt ``account`` into a V3 keystore at ``path`` (mode 0600, never overwriting).

    ``work_factor`` (scrypt N, a power of two, or pbkdf2 iterations) defaults to
    eth-keyfile's production setting; lower it only in tests.
    """
    path = Path(path)
    if not password:
        raise KeystoreError("refusing to write a keystore with an empty password")
    if path.exists():
        raise KeystoreError(f"keystore {path} already exists; refusing to overwrite a key")
    keyfile = Account.encrypt(account.key, password, kdf=kdf, iterations=work_factor)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a crash never leaves a half-written key file, and no other user can read it, even briefly
    atomic_write(path, json.dumps(keyfile).encode("utf-8"))
    return path
