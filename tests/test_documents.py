"""Off-chain documents: digests, AES-256-GCM envelopes, key rotation, the on-disk store."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

import pytest
from hexbytes import HexBytes

from ledger.documents import (
    DocumentDecryptError,
    DocumentKey,
    DocumentKeyError,
    DocumentMismatch,
    DocumentNotFound,
    DocumentStore,
    EncryptedDocument,
    EnvelopeFormatError,
    KeyRing,
    check_document,
    decrypt_document,
    document_digest,
    document_digest_hex,
    encrypt_document,
    verify_document,
    write_key_file,
)

DOC = "联合贷款合同 No. 2024-0001: principal 5,000,000 fen, three tranches".encode()
OTHER_DOC = b"a different contract"

KEY_A = DocumentKey("bank-a-2024", bytes(range(32)))
KEY_B = DocumentKey("bank-a-2025", bytes(range(32, 64)))


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.single(KEY_A)


# --- digests -----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", DOC, os.urandom(100_000)])
def test_digest_matches_hashlib(data: bytes) -> None:
    assert document_digest(data) == hashlib.sha256(data).digest()
    assert document_digest_hex(data) == "0x" + hashlib.sha256(data).hexdigest()
    assert re.fullmatch(r"0x[0-9a-f]{64}", document_digest_hex(data))


def test_verify_document_accepts_every_digest_spelling() -> None:
    d = hashlib.sha256(DOC).digest()
    for form in (d, HexBytes(d), d.hex(), "0x" + d.hex(), "0X" + d.hex().upper(), bytearray(d)):
        assert verify_document(DOC, form)  # type: ignore[arg-type]
        check_document(DOC, form)  # type: ignore[arg-type]


def test_tampered_document_fails_verification() -> None:
    onchain = document_digest(DOC)
    tampered = DOC.replace(b"5,000,000", b"9,000,000")
    assert not verify_document(tampered, onchain)
    assert not verify_document(DOC + b" ", onchain)
    with pytest.raises(DocumentMismatch) as info:
        check_document(tampered, onchain.hex())
    assert info.value.expected == onchain
    assert info.value.actual == document_digest(tampered)
    assert onchain.hex() in str(info.value)


@pytest.mark.parametrize("bad", [b"\x00" * 31, "0x1234", "zz" * 32, "", b""])
def test_malformed_digest_is_an_error_not_a_mismatch(bad: bytes | str) -> None:
    with pytest.raises(ValueError):
        verify_document(DOC, bad)


# --- envelopes ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"x", DOC, os.urandom(1_000_000)])
def test_round_trip(ring: KeyRing, data: bytes) -> None:
    env = encrypt_document(data, ring)
    assert env.key_id == KEY_A.key_id
    assert env.digest == document_digest(data)
    assert decrypt_document(env, ring) == data
    parsed = EncryptedDocument.from_bytes(env.to_bytes())
    assert parsed == env
    assert decrypt_document(parsed, ring) == data


def test_ciphertext_hides_the_document(ring: KeyRing) -> None:
    env = encrypt_document(DOC, ring).to_bytes()
    assert DOC not in env and b"principal" not in env


def test_nonces_are_fresh(ring: KeyRing) -> None:
    a, b = encrypt_document(DOC, ring), encrypt_document(DOC, ring)
    assert a.nonce != b.nonce and a.ciphertext != b.ciphertext


def test_every_single_byte_change_is_detected(ring: KeyRing) -> None:
    # Header (magic, version, key id, nonce, digest), ciphertext and tag alike: nothing in
    # the envelope can be altered without the change being noticed.
    blob = encrypt_document(b"short doc", ring).to_bytes()
    for i in range(len(blob)):
        tampered = blob[:i] + bytes([blob[i] ^ 0x01]) + blob[i + 1 :]
        with pytest.raises((DocumentDecryptError, EnvelopeFormatError)):
            decrypt_document(EncryptedDocument.from_bytes(tampered), ring)


def test_tampered_ciphertext_is_a_clear_decrypt_error(ring: KeyRing) -> None:
    env = encrypt_document(DOC, ring)
    ct = bytearray(env.ciphertext)
    ct[0] ^= 0xFF
    bad = EncryptedDocument(env.key_id, env.nonce, bytes(ct), env.digest)
    with pytest.raises(DocumentDecryptError, match="failed authentication") as info:
        decrypt_document(bad, ring)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_swapped_digest_fails(ring: KeyRing) -> None:
    # Relabelling an envelope as another document's is caught because the digest is AAD.
    env = encrypt_document(DOC, ring)
    relabelled = EncryptedDocument(
        env.key_id, env.nonce, env.ciphertext, document_digest(OTHER_DOC)
    )
    with pytest.raises(DocumentDecryptError):
        decrypt_document(relabelled, ring)


def test_truncated_or_foreign_bytes_are_format_errors(ring: KeyRing) -> None:
    blob = encrypt_document(DOC, ring).to_bytes()
    for bad in (b"", b"JLD", blob[:40], b"PK\x03\x04" + blob[4:]):
        with pytest.raises(EnvelopeFormatError):
            EncryptedDocument.from_bytes(bad)
    future = blob[:4] + b"\x02" + blob[5:]
    with pytest.raises(EnvelopeFormatError, match="version 2"):
        EncryptedDocument.from_bytes(future)


# --- keys --------------------------------------------------------------------------------


def test_unknown_key_id_fails_clearly(ring: KeyRing) -> None:
    env = encrypt_document(DOC, KeyRing.single(KEY_B))
    with pytest.raises(DocumentDecryptError, match="bank-a-2025"):
        decrypt_document(env, ring)


def test_same_id_but_different_key_fails(ring: KeyRing) -> None:
    env = encrypt_document(DOC, ring)
    impostor = KeyRing.single(DocumentKey(KEY_A.key_id, bytes(32)))
    with pytest.raises(DocumentDecryptError):
        decrypt_document(env, impostor)


def test_rewriting_the_key_id_to_another_ring_key_fails() -> None:
    both = KeyRing([KEY_A, KEY_B], KEY_A.key_id)
    env = encrypt_document(DOC, both)
    redirected = EncryptedDocument(KEY_B.key_id, env.nonce, env.ciphertext, env.digest)
    with pytest.raises(DocumentDecryptError):
        decrypt_document(redirected, both)


def test_rotation_keeps_old_documents_readable(ring: KeyRing) -> None:
    old = encrypt_document(DOC, ring)
    rotated = ring.rotate(KEY_B)
    assert rotated.current_id == KEY_B.key_id and ring.current_id == KEY_A.key_id
    new = encrypt_document(OTHER_DOC, rotated)
    assert new.key_id == KEY_B.key_id
    assert decrypt_document(old, rotated) == DOC
    assert decrypt_document(new, rotated) == OTHER_DOC
    # Dropping the old key really does lose access: rotation must keep it.
    with pytest.raises(DocumentDecryptError):
        decrypt_document(old, KeyRing.single(KEY_B))


def test_key_validation() -> None:
    with pytest.raises(DocumentKeyError, match="32 bytes"):
        DocumentKey("k", bytes(16))
    for bad_id in ("", "has space", "a:b", "a,b", "../x", "x" * 65, "密钥"):
        with pytest.raises(DocumentKeyError):
            DocumentKey(bad_id, bytes(32))
    with pytest.raises(DocumentKeyError, match="duplicate"):
        KeyRing([KEY_A, KEY_A], KEY_A.key_id)
    with pytest.raises(DocumentKeyError, match="not in the key ring"):
        KeyRing([KEY_A], "nope")


def test_key_repr_hides_the_key() -> None:
    k = DocumentKey.generate("gen")
    assert len(k.key) == 32 and k.key != DocumentKey.generate("gen").key
    assert k.key.hex() not in repr(k) and k.key.hex() not in repr(KeyRing.single(k))


def test_keyring_from_env() -> None:
    value = f"{KEY_A.key_id}:{KEY_A.key.hex()}, {KEY_B.key_id}:0x{KEY_B.key.hex()}"
    r = KeyRing.from_env({"LEDGER_DOC_KEYS": value})
    assert r.ids == (KEY_A.key_id, KEY_B.key_id)
    assert r.current == KEY_B  # last entry is current
    assert r.get(KEY_A.key_id) == KEY_A


def test_keyring_from_real_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_DOC_KEYS", f"{KEY_A.key_id}:{KEY_A.key.hex()}")
    assert KeyRing.from_env().current == KEY_A
    monkeypatch.delenv("LEDGER_DOC_KEYS")
    with pytest.raises(DocumentKeyError, match="LEDGER_DOC_KEYS is not set"):
        KeyRing.from_env()


@pytest.mark.parametrize(
    "value",
    ["k1", "k1:" + "zz" * 32, "k1:" + "ab" * 16, ",", "bad id:" + "ab" * 32],
)
def test_bad_env_keys_fail_without_echoing_key_material(value: str) -> None:
    with pytest.raises(DocumentKeyError, match="LEDGER_DOC_KEYS") as info:
        KeyRing.from_env({"LEDGER_DOC_KEYS": value})
    assert "abab" not in str(info.value) and "zzzz" not in str(info.value)


def test_keyring_directory_round_trip(tmp_path: Path) -> None:
    keydir = tmp_path / "keys"
    path = write_key_file(keydir, KEY_A)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.from_directory(keydir).current == KEY_A
    write_key_file(keydir, KEY_B)
    r = KeyRing.from_directory(keydir)
    assert r.current == KEY_B and r.get(KEY_A.key_id) == KEY_A
    # Adding a key without making it current leaves CURRENT alone.
    key_c = DocumentKey.generate("bank-a-2026")
    write_key_file(keydir, key_c, make_current=False)
    assert KeyRing.from_directory(keydir).current == KEY_B
    assert not list(keydir.glob(".*.tmp"))


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    write_key_file(tmp_path, KEY_A)
    with pytest.raises(DocumentKeyError, match="already exists"):
        write_key_file(tmp_path, DocumentKey(KEY_A.key_id, bytes(32)))
    assert KeyRing.from_directory(tmp_path).current == KEY_A


def test_directory_with_several_keys_needs_current(tmp_path: Path) -> None:
    write_key_file(tmp_path, KEY_A, make_current=False)
    write_key_file(tmp_path, KEY_B, make_current=False)
    with pytest.raises(DocumentKeyError, match="CURRENT"):
        KeyRing.from_directory(tmp_path)


def test_empty_or_missing_key_directory(tmp_path: Path) -> None:
    with pytest.raises(DocumentKeyError, match="no"):
        KeyRing.from_directory(tmp_path)
    with pytest.raises(DocumentKeyError, match="does not exist"):
        KeyRing.from_directory(tmp_path / "missing")


# --- store -------------------------------------------------------------------------------


def test_store_round_trip(tmp_path: Path, ring: KeyRing) -> None:
    store = DocumentStore(tmp_path / "docs", ring)
    digest = store.put(DOC)
    assert digest == hashlib.sha256(DOC).digest()
    path = tmp_path / "docs" / (digest.hex() + ".jld")
    assert path.is_file() and store.path_for(digest) == path
    assert DOC not in path.read_bytes()
    for form in (digest, digest.hex(), "0x" + digest.hex(), HexBytes(digest)):
        assert store.get(form) == DOC
        assert form in store
    assert list(store.digests()) == [digest]
    assert not list((tmp_path / "docs").glob(".*"))  # no temp files left behind


def test_store_put_is_idempotent(tmp_path: Path, ring: KeyRing) -> None:
    store = DocumentStore(tmp_path, ring)
    assert store.put(DOC) == store.put(DOC)
    assert store.get(document_digest(DOC)) == DOC
    assert len(list(store.digests())) == 1


def test_store_missing_document(tmp_path: Path, ring: KeyRing) -> None:
    store = DocumentStore(tmp_path, ring)
    missing = document_digest(b"never stored")
    assert missing not in store
    with pytest.raises(DocumentNotFound, match=missing.hex()):
        store.get(missing)
    with pytest.raises(KeyError):  # also a KeyError, for mapping-style callers
        store.get(missing)


def test_store_detects_a_swapped_file(tmp_path: Path, ring: KeyRing) -> None:
    store = DocumentStore(tmp_path, ring)
    a, b = store.put(DOC), store.put(OTHER_DOC)
    os.replace(store.path_for(a), store.path_for(b))  # a's envelope now sits under b's name
    with pytest.raises(DocumentDecryptError, match="holds the envelope of"):
        store.get(b)


def test_store_detects_a_tampered_file(tmp_path: Path, ring: KeyRing) -> None:
    store = DocumentStore(tmp_path, ring)
    d = store.put(DOC)
    blob = bytearray(store.path_for(d).read_bytes())
    blob[-1] ^= 0x01
    store.path_for(d).write_bytes(bytes(blob))
    with pytest.raises(DocumentDecryptError):
        store.get(d)


def test_store_survives_rotation(tmp_path: Path, ring: KeyRing) -> None:
    d_old = DocumentStore(tmp_path, ring).put(DOC)
    rotated = DocumentStore(tmp_path, ring.rotate(KEY_B))
    d_new = rotated.put(OTHER_DOC)
    assert rotated.get(d_old) == DOC and rotated.get(d_new) == OTHER_DOC
    assert (
        EncryptedDocument.from_bytes(rotated.path_for(d_new).read_bytes()).key_id == "bank-a-2025"
    )


def test_failed_write_leaves_the_old_envelope_and_no_temp_file(
    tmp_path: Path, ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DocumentStore(tmp_path, ring)
    d = store.put(DOC)
    before = store.path_for(d).read_bytes()

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.put(DOC)
    monkeypatch.undo()
    assert store.path_for(d).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [d.hex() + ".jld"]
