"""Signing keys: coincurve backend check, DEV-ONLY consortium keys, encrypted keystores."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.backends.native.main import NativeECCBackend
from eth_keys.main import KeyAPI
from eth_utils.crypto import keccak

import ledger.keys
from ledger.keys import (
    DEV_KEYS_WARNING,
    CryptoBackendError,
    KeystoreError,
    dev_account,
    dev_consortium,
    ensure_coincurve_backend,
    load_keystore,
    write_keystore,
)

PASSWORD = "correct horse battery staple"


def fast_write(account: LocalAccount, path: Path, password: str = PASSWORD) -> Path:
    # scrypt N=2 keeps each test in milliseconds; production uses the library default.
    return write_keystore(account, path, password, kdf="scrypt", work_factor=2)


# --- backend -----------------------------------------------------------------------------


def test_coincurve_backend_is_in_use_here() -> None:
    ensure_coincurve_backend()


def test_missing_coincurve_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import coincurve` raise ImportError, exactly as if
    # the wheel were absent; eth-keys' own detection then falls back to NativeECCBackend.
    monkeypatch.setitem(sys.modules, "coincurve", None)
    with pytest.raises(CryptoBackendError) as info:
        ensure_coincurve_backend()
    message = str(info.value)
    assert message == (
        "coincurve is not installed: eth-keys would fall back to pure-Python secp256k1, "
        "~10x slower; pip install coincurve==21.0.0"
    )
    assert "\n" not in message
    assert isinstance(info.value, RuntimeError)


def test_backend_forced_to_native_by_env_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECC_BACKEND_CLASS", "eth_keys.backends.NativeECCBackend")
    with pytest.raises(CryptoBackendError, match="ECC_BACKEND_CLASS=.*NativeECCBackend"):
        ensure_coincurve_backend()


def test_unimportable_backend_env_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECC_BACKEND_CLASS", "no_such_module.Backend")
    with pytest.raises(CryptoBackendError, match="cannot be loaded"):
        ensure_coincurve_backend()


def test_account_backend_swapped_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # What Account.set_key_backend(NativeECCBackend()) does, undone by monkeypatch.
    monkeypatch.setattr(Account, "_keys", KeyAPI(NativeECCBackend))
    with pytest.raises(CryptoBackendError, match="set_key_backend"):
        ensure_coincurve_backend()


# --- DEV-ONLY keys -----------------------------------------------------------------------


def test_dev_account_follows_the_documented_derivation() -> None:
    secret = keccak(b"joint-lending-ledger DEV-ONLY key|" + b"lender" + b"|" + b"2")
    acct = dev_account("lender", 2)
    assert acct.key == secret
    assert acct.address == Account.from_key(secret).address


def test_dev_accounts_are_deterministic_and_distinct() -> None:
    assert dev_account("platform", 0).address == dev_account("platform", 0).address
    addresses = {
        dev_account(role, i).address
        for role in ("governor", "platform", "lender", "auditor")
        for i in range(5)
    }
    assert len(addresses) == 20


@pytest.mark.parametrize(
    ("role", "index"),
    [("", 0), ("Lender", 0), ("lender|1", 0), ("银行", 0), ("lender", -1), ("lender", True)],
)
def test_dev_account_rejects_bad_input(role: str, index: int) -> None:
    with pytest.raises(ValueError):
        dev_account(role, index)


def test_dev_consortium() -> None:
    c = dev_consortium()
    assert set(c) == {"governor", "platform", "lenders", "auditor"}
    assert len(c["lenders"]) == 3
    assert c["lenders"][1].address == dev_account("lender", 1).address
    assert c["governor"].address == dev_account("governor", 0).address
    everyone = [c["governor"], c["platform"], c["auditor"], *c["lenders"]]
    assert len({a.address for a in everyone}) == 6
    assert len(dev_consortium(n_lenders=5)["lenders"]) == 5
    # Growing the consortium keeps existing members' addresses: deployments stay stable.
    assert dev_consortium(5)["lenders"][:3] == c["lenders"]
    with pytest.raises(ValueError):
        dev_consortium(0)


def test_dev_keys_are_labelled_dev_only() -> None:
    assert "DEV-ONLY" in DEV_KEYS_WARNING and "never for real funds" in DEV_KEYS_WARNING
    for obj in (dev_account, dev_consortium, ledger.keys.DevConsortium):
        assert obj.__doc__ and "DEV-ONLY" in obj.__doc__
        assert "never for real funds" in obj.__doc__


def test_dev_accounts_sign() -> None:
    acct = dev_account("lender", 0)
    msg = encode_defunct(text="hello")
    sig = acct.sign_message(msg)
    assert Account.recover_message(msg, signature=sig.signature) == acct.address


# --- keystores ---------------------------------------------------------------------------


@pytest.fixture
def account() -> LocalAccount:
    acct: LocalAccount = Account.from_key(b"\x11" * 32)
    return acct


@pytest.fixture
def keystore(tmp_path: Path, account: LocalAccount) -> Path:
    return fast_write(account, tmp_path / "member.json")


def test_keystore_round_trip(
    keystore: Path, account: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_KEY_PASSWORD", PASSWORD)
    loaded = load_keystore(keystore)
    assert loaded.address == account.address and loaded.key == account.key
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    assert account.key.hex() not in keystore.read_text()
    assert not [p for p in keystore.parent.iterdir() if p.name.startswith(".")]


def test_pbkdf2_keystore_and_custom_env(
    tmp_path: Path, account: LocalAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_keystore(account, tmp_path / "k.json", PASSWORD, kdf="pbkdf2", work_factor=1)
    assert json.loads(path.read_text())["crypto"]["kdf"] == "pbkdf2"
    monkeypatch.setenv("BANK_A_KEY_PASSWORD", PASSWORD)
    assert load_keystore(path, password_env="BANK_A_KEY_PASSWORD").address == account.address


def test_default_work_factor_is_the_production_one(tmp_path: Path, account: LocalAccount) -> None:
    # Not a speed test: proves tests' low factor is opt-in, not the default.
    path = write_keystore(account, tmp_path / "k.json", PASSWORD, kdf="pbkdf2")
    assert json.loads(path.read_text())["crypto"]["kdfparams"]["c"] >= 100_000


def test_wrong_password(keystore: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "not-the-password-42"
    monkeypatch.setenv("LEDGER_KEY_PASSWORD", wrong)
    with pytest.raises(KeystoreError, match="wrong password") as info:
        load_keystore(keystore)
    for text in (str(info.value), repr(info.value), repr(info.value.args)):
        assert wrong not in text and PASSWORD not in text
    assert "LEDGER_KEY_PASSWORD" in str(info.value)


def test_password_env_unset(keystore: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_KEY_PASSWORD", raising=False)
    with pytest.raises(KeystoreError, match="LEDGER_KEY_PASSWORD is not set"):
        load_keystore(keystore)
    monkeypatch.setenv("LEDGER_KEY_PASSWORD", "")
    with pytest.raises(KeystoreError, match="LEDGER_KEY_PASSWORD is empty"):
        load_keystore(keystore)


def test_unreadable_keystores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_KEY_PASSWORD", PASSWORD)
    with pytest.raises(KeystoreError, match="does not exist"):
        load_keystore(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(KeystoreError, match="not JSON"):
        load_keystore(tmp_path / "junk.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(KeystoreError, match="not a JSON object"):
        load_keystore(tmp_path / "list.json")
    (tmp_path / "empty.json").write_text("{}")
    with pytest.raises(KeystoreError, match="malformed"):
        load_keystore(tmp_path / "empty.json")


def test_edited_address_field_is_caught(keystore: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(keystore.read_text())
    data["address"] = dev_account("governor", 0).address[2:].lower()
    keystore.write_text(json.dumps(data))
    monkeypatch.setenv("LEDGER_KEY_PASSWORD", PASSWORD)
    with pytest.raises(KeystoreError, match="says address"):
        load_keystore(keystore)


def test_write_refuses_to_overwrite_or_use_empty_password(
    keystore: Path,
    account: LocalAccount,
) -> None:
    before = keystore.read_text()
    with pytest.raises(KeystoreError, match="already exists"):
        fast_write(dev_account("platform"), keystore)
    assert keystore.read_text() == before
    with pytest.raises(KeystoreError, match="empty password"):
        fast_write(account, keystore.with_name("other.json"), "")


def test_keystore_interoperates_with_eth_account(keystore: Path, account: LocalAccount) -> None:
    # The file is a standard V3 keystore: geth, clef or plain eth-account can open it.
    assert Account.decrypt(keystore.read_text(), PASSWORD) == account.key
