"""ledger.book's decoding of the contracts' views, and ledger.secretfile's shared helpers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ledger import book, rules
from ledger.book import BorrowerState, MemberState
from ledger.domain import MemberInfo, MemberStatus, Product, Role
from ledger.secretfile import atomic_write, parse_hex


def test_member_from_the_registry_member_view() -> None:
    # (role, status, frozen, index, tier-1 capital, total loan balance, attested at, until)
    info = MemberInfo.from_abi("0x" + "11" * 20, (2, 1, False, 3, 1_000, 5_000, 77, 99))
    m = MemberState.from_info(info)
    assert m == MemberState(
        role=Role(2),
        status=MemberStatus.ACTIVE,
        frozen=False,
        index=3,
        tier1_capital=1_000,
        total_loan_balance=5_000,
        attested_until=99,
        attested_at=77,
    )


def test_borrower_from_the_ledger_exposure_view() -> None:
    b = BorrowerState.from_view((12, 34, [1, 4], [2, 1]))
    assert b.exposure == {Product.CONSUMER: 12, Product.BUSINESS: 34}
    assert b.open_records == {1: 2, 4: 1}
    with pytest.raises(ValueError):
        BorrowerState.from_view((0, 0, [1, 2], [1]))  # one count for two members


def test_rules_still_name_the_state_types() -> None:
    assert rules.Book is book.Book
    assert rules.apply_loan.__module__ == "ledger.book"


@pytest.mark.parametrize("text", ["0xabCD", "0XABCD", "  abcd\n"])
def test_parse_hex_takes_an_optional_prefix_and_whitespace(text: str) -> None:
    assert parse_hex(text) == b"\xab\xcd"


def test_parse_hex_refuses_non_hex() -> None:
    with pytest.raises(ValueError):
        parse_hex("0xzz")


def test_atomic_write_replaces_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temporary file left
