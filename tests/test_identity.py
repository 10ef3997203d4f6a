"""Resident-ID validation, borrower keys and the pepper (DESIGN.md §3)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
import re
import traceback
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.identity import (
    DEV_PEPPER,
    InvalidResidentId,
    Pepper,
    PepperError,
    borrower_key,
    borrower_key_hex,
    is_valid_id,
    normalise_id,
)

PEPPER = b"test pepper, 32 bytes long......"
OTHER_PEPPER = b"another test pepper of >16 bytes"

# The test computes check digits itself instead of borrowing the module's helper, so a wrong
# weight or mapping table in the module cannot be mirrored here and pass unnoticed.
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"


def with_check_digit(first17: str) -> str:
    assert len(first17) == 17 and first17.isascii() and first17.isdigit()
    return first17 + CHECK[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def make_id(region: str, born: str, seq: str) -> str:
    return with_check_digit(region + born + seq)


PUBLISHED_SAMPLE = "11010519491231002X"  # GB 11643-1999's own worked example

VALID_IDS = [
    PUBLISHED_SAMPLE,
    make_id("440305", "19900101", "123"),
    make_id("310104", "20000229", "456"),  # leap day
    make_id("650102", "19000101", "008"),  # earliest allowed year
    make_id("370202", "19851231", "771"),
]


def test_generator_reproduces_the_published_sample() -> None:
    assert with_check_digit(PUBLISHED_SAMPLE[:17]) == PUBLISHED_SAMPLE


@pytest.mark.parametrize("raw", VALID_IDS)
def test_valid_ids_normalise_to_themselves(raw: str) -> None:
    assert is_valid_id(raw)
    assert normalise_id(raw) == raw


def test_lower_case_x_and_whitespace_are_normalised() -> None:
    assert normalise_id("11010519491231002x") == PUBLISHED_SAMPLE
    assert normalise_id("  11010519491231002x\n") == PUBLISHED_SAMPLE
    assert is_valid_id("\t11010519491231002x ")


def test_id_with_an_x_needs_one() -> None:
    # An X is only valid where the check digit computes to 10.
    ends_in_digit = VALID_IDS[2]
    assert ends_in_digit[-1] != "X"
    assert not is_valid_id(ends_in_digit[:17] + "X")


def _full_width(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in s)


INVALID = [
    # (case name, raw, rule)
    ("empty", "", "length"),
    ("seventeen", PUBLISHED_SAMPLE[:17], "length"),
    ("nineteen", PUBLISHED_SAMPLE + "0", "length"),
    ("old 15-digit id", "110105491231002", "length"),
    ("inner space", "110105 19491231002", "characters"),
    ("letter in body", "1101051949123100AX", "characters"),
    ("letter as check", "11010519491231002A", "characters"),
    ("full-width digits", _full_width(PUBLISHED_SAMPLE), "characters"),
    ("arabic-indic digits", "١" * 17 + "X", "characters"),
    ("30 february", make_id("110105", "19900230", "002"), "birth_date"),
    ("month 13", make_id("110105", "19901301", "002"), "birth_date"),
    ("day 00", make_id("110105", "19900100", "002"), "birth_date"),
    ("29 feb non-leap", make_id("110105", "19000229", "002"), "birth_date"),
    ("before 1900", make_id("110105", "18991231", "002"), "birth_date"),
    ("bad check digit", PUBLISHED_SAMPLE[:17] + "1", "check_digit"),
    ("swapped digits", "11010519491231020X", "check_digit"),
]


@pytest.mark.parametrize(("case", "raw", "rule"), INVALID, ids=[c for c, _, _ in INVALID])
def test_each_rule_is_reported(case: str, raw: str, rule: str) -> None:
    assert not is_valid_id(raw)
    with pytest.raises(InvalidResidentId) as info:
        normalise_id(raw)
    assert info.value.rule == rule
    assert info.value.field == "borrower_id"
    assert isinstance(info.value, ValueError)  # callers catching ValueError still work


def test_future_birth_date_is_rejected() -> None:
    tomorrow = date.today() + timedelta(days=2)  # 2 days: safe whatever the UTC+8 offset
    raw = make_id("110105", tomorrow.strftime("%Y%m%d"), "002")
    with pytest.raises(InvalidResidentId) as info:
        normalise_id(raw)
    assert info.value.rule == "birth_date"


def test_today_bounds_the_birth_date() -> None:
    raw = make_id("110105", "20240615", "002")
    assert normalise_id(raw, today=date(2024, 6, 15)) == raw  # born today is fine
    assert not is_valid_id(raw, today=date(2024, 6, 14))


def test_non_strings_are_rejected_without_echoing_them() -> None:
    assert not is_valid_id(None)
    assert not is_valid_id(110105194912310020)
    assert not is_valid_id(PUBLISHED_SAMPLE.encode())
    with pytest.raises(TypeError) as info:
        normalise_id(110105194912310020)  # type: ignore[arg-type]
    assert "1101" not in str(info.value)


# --- the raw ID never leaks --------------------------------------------------------------

LEAK_CASES = [raw for _, raw, _ in INVALID if len(raw.strip()) >= 4]


def _fragments(raw: str) -> set[str]:
    """Every 4-character window: catches '...1234'-style partial echoes too."""
    s = raw.strip()
    return {s[i : i + 4] for i in range(len(s) - 3)}


@pytest.mark.parametrize("raw", LEAK_CASES)
def test_exception_never_contains_the_id(raw: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidResidentId) as info:
        normalise_id(raw)
    with pytest.raises(InvalidResidentId) as via_key:
        borrower_key(raw, PEPPER)
    for exc in (info.value, via_key.value):
        texts = [
            str(exc),
            repr(exc),
            repr(exc.args),
            *(str(a) for a in exc.args),
            "".join(traceback.format_exception(exc)),
            repr(vars(exc)),
            repr(pickle.loads(pickle.dumps(exc)).args),
        ]
        # No chained exception (e.g. int()'s "invalid literal ... '1101...'") rides along.
        assert exc.__context__ is None and exc.__cause__ is None
        for text in texts:
            for fragment in _fragments(raw):
                assert fragment not in text, f"ID fragment {fragment!r} leaked into {text!r}"
    for record in caplog.records:
        logged = record.getMessage() + repr(record.args)
        for fragment in _fragments(raw):
            assert fragment not in logged


def test_valid_id_paths_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    normalise_id(PUBLISHED_SAMPLE)
    borrower_key_hex(PUBLISHED_SAMPLE, PEPPER)
    is_valid_id(PUBLISHED_SAMPLE)
    assert not any("1949" in r.getMessage() for r in caplog.records)


def test_exception_pickles_with_its_rule() -> None:
    # Exceptions cross process boundaries (workers, multiprocessing), so must round-trip.
    exc = pickle.loads(pickle.dumps(InvalidResidentId("check_digit")))
    assert exc.rule == "check_digit"
    assert str(exc) == str(InvalidResidentId("check_digit"))


# --- borrower keys -----------------------------------------------------------------------


def test_key_is_hmac_sha256_of_the_normalised_id() -> None:
    expected = hmac.new(PEPPER, PUBLISHED_SAMPLE.encode(), hashlib.sha256).digest()
    assert borrower_key(PUBLISHED_SAMPLE, PEPPER) == expected
    assert len(expected) == 32


def test_key_is_deterministic_and_normalisation_invariant() -> None:
    k = borrower_key(PUBLISHED_SAMPLE, PEPPER)
    assert borrower_key(PUBLISHED_SAMPLE, PEPPER) == k
    assert borrower_key("11010519491231002x", PEPPER) == k
    assert borrower_key(" 11010519491231002X ", PEPPER) == k
    assert borrower_key(PUBLISHED_SAMPLE, Pepper(PEPPER)) == k


def test_key_differs_by_pepper_and_by_borrower() -> None:
    a = borrower_key(PUBLISHED_SAMPLE, PEPPER)
    assert borrower_key(PUBLISHED_SAMPLE, OTHER_PEPPER) != a
    assert borrower_key(VALID_IDS[1], PEPPER) != a
    # Not an unkeyed hash of the ID: that would be brute-forceable over the ID space.
    assert a != hashlib.sha256(PUBLISHED_SAMPLE.encode()).digest()


def test_key_hex_form() -> None:
    h = borrower_key_hex(PUBLISHED_SAMPLE, PEPPER)
    assert re.fullmatch(r"0x[0-9a-f]{64}", h)
    assert bytes.fromhex(h[2:]) == borrower_key(PUBLISHED_SAMPLE, PEPPER)


def test_invalid_id_never_becomes_a_key() -> None:
    with pytest.raises(InvalidResidentId):
        borrower_key(PUBLISHED_SAMPLE[:17] + "1", PEPPER)


# --- pepper ------------------------------------------------------------------------------


@pytest.mark.parametrize("short", [b"", b"x", b"15 bytes.......", bytes(15)])
def test_short_pepper_is_refused(short: bytes) -> None:
    with pytest.raises(PepperError, match="at least 16 bytes"):
        borrower_key(PUBLISHED_SAMPLE, short)
    with pytest.raises(PepperError):
        Pepper(short)


def test_sixteen_byte_pepper_is_enough() -> None:
    assert len(borrower_key(PUBLISHED_SAMPLE, bytes(range(16)))) == 32


def test_pepper_from_env() -> None:
    secret = bytes(range(32))
    assert Pepper.from_env({"LEDGER_PEPPER": secret.hex()}).secret == secret
    assert Pepper.from_env({"LEDGER_PEPPER": " 0x" + secret.hex().upper() + "\n"}).secret == secret
    assert Pepper.from_env({"LEDGER_PEPPER": secret.hex()}).is_dev is False


def test_pepper_from_real_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_PEPPER", "ab" * 16)
    assert Pepper.from_env().secret == b"\xab" * 16
    monkeypatch.delenv("LEDGER_PEPPER")
    with pytest.raises(PepperError, match="LEDGER_PEPPER is not set"):
        Pepper.from_env()


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "not set"), ("   ", "not set"), ("zz" * 16, "not valid hex"), ("ab" * 8 + "c", "hex")],
)
def test_bad_pepper_env_is_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(PepperError, match=message) as info:
        Pepper.from_env({"LEDGER_PEPPER": value})
    if value.strip():
        assert value not in str(info.value)


def test_short_env_pepper_is_refused_without_echoing_it() -> None:
    with pytest.raises(PepperError, match="at least 16 bytes") as info:
        Pepper.from_env({"LEDGER_PEPPER": "a1b2c3d4e5"})
    assert "a1b2" not in str(info.value)


def test_pepper_repr_hides_the_secret() -> None:
    p = Pepper(b"\xde\xad\xbe\xef" * 8)
    assert "deadbeef" not in repr(p) and "\\xde" not in repr(p)


def test_dev_pepper_is_marked() -> None:
    dev = Pepper.dev()
    assert dev.is_dev and dev.secret == DEV_PEPPER
    assert b"DEV-ONLY" in DEV_PEPPER
    assert len(borrower_key(PUBLISHED_SAMPLE, dev)) == 32


# --- properties --------------------------------------------------------------------------


def digit_strings(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


valid_ids = st.builds(
    lambda region, born, seq: make_id(region, born.strftime("%Y%m%d"), seq),
    digit_strings(6),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2020, 12, 31)),
    digit_strings(3),
)


@given(valid_ids)
def test_any_generated_id_validates(raw: str) -> None:
    assert normalise_id(raw) == raw
    assert normalise_id(raw.lower()) == raw


@given(valid_ids, st.integers(0, 17), st.sampled_from("0123456789X"))
def test_any_single_character_change_is_caught(raw: str, pos: int, new: str) -> None:
    if pos < 17 and new == "X":
        new = "0"  # X is only meaningful as the check character
    if raw[pos] == new:
        return
    mutated = raw[:pos] + new + raw[pos + 1 :]
    with pytest.raises(InvalidResidentId) as info:
        normalise_id(mutated)
    # MOD 11-2 catches every single substitution; a change inside the birth date may be
    # caught earlier as an impossible date instead.
    allowed = {"check_digit", "birth_date"} if 6 <= pos < 14 else {"check_digit"}
    assert info.value.rule in allowed
