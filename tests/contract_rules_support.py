"""Helpers shared by the tests/test_contract_rules_*.py files: the refusal check, the chain's
clock, and shorthand for recording loans and lines and reading exposure.

Every rule is probed at its boundary: the record exactly at the limit is accepted, one fen (or one
day, one second) over is refused with the rule's error and the exact numbers it carries, and the
exposure views show the outcome afterwards. A refusal surfaces from gas estimation, before any
transaction is sent, so each refusal costs one RPC call.

Time: a refused call is judged at the latest block's timestamp (what `eth_estimateGas` uses on both
nodes), so `nowTs` in an error is `cx.now()`; an accepted record that must land at an exact second
is sent after `evm_setNextBlockTimestamp`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from ledger.chain.errors import ContractRevert
from ledger.domain import DEFAULT_POLICY, CoLoan, CreditLine, LoanStatus
from ledger.localnet.consortium import LocalConsortium

CONSUMER_CAP = DEFAULT_POLICY.consumer_cap  # 20,000,000 fen
BUSINESS_CAP = DEFAULT_POLICY.business_cap  # 100,000,000 fen
MAX_AGE = DEFAULT_POLICY.max_attestation_age


def _norm(v: Any) -> Any:
    if isinstance(v, str) and is_address(v):
        return to_checksum_address(v)
    if isinstance(v, bytes | bytearray):
        return bytes(v)
    if isinstance(v, tuple | list):
        return type(v)(_norm(x) for x in v)
    return v


@contextlib.contextmanager
def refused(code: str, **expected: Any) -> Iterator[None]:
    """Expect the contracts to refuse with error `code` carrying exactly `expected`."""
    with pytest.raises(ContractRevert) as info:
        yield
    exc = info.value
    assert exc.code == code, f"expected {code}, got {exc}"
    got = {k: _norm(v) for k, v in exc.values.items()}
    want = {k: _norm(v) for k, v in expected.items()}
    assert got == want, f"{code}: got {got}, expected {want}"


def rpc(cx: LocalConsortium, method: str, *params: Any) -> Any:
    return cx.gov.w3.provider.make_request(method, list(params))


def set_next_timestamp(cx: LocalConsortium, ts: int) -> None:
    rpc(cx, "evm_setNextBlockTimestamp", ts)


def mine_at(cx: LocalConsortium, ts: int) -> None:
    set_next_timestamp(cx, ts)
    rpc(cx, "evm_mine")
    assert cx.now() == ts


def originate(cx: LocalConsortium, loan: CoLoan) -> int:
    """Record `loan` through the platform's client; returns its block number."""
    res = cx.plat.originate(loan, cx.sign(loan))
    assert not res.already_recorded
    assert cx.plat.loan_state(loan.loan_id)[2] == LoanStatus.ACTIVE
    return res.block_number


def grant(cx: LocalConsortium, line: CreditLine) -> int:
    return cx.plat.grant_line(line, cx.sign(line)).block_number


def exposure(cx: LocalConsortium, key: bytes) -> dict:
    return cx.plat.borrower_exposure(key)


def index_of(cx: LocalConsortium, account: LocalAccount | str) -> int:
    addr = account if isinstance(account, str) else account.address
    return cx.plat.member(addr)["index"]


def attest(
    cx: LocalConsortium, lender: LocalAccount, tier1: int, balance: int, valid_for: int = 86_400
) -> None:
    cx.client(lender).attest_capital(tier1, balance, cx.now() + valid_for)


def platform_share(cx: LocalConsortium, amount: int) -> list[tuple[LocalAccount, int]]:
    """The fewest parties a record may have (R0): the platform, with half of `amount` rounded
    up (R4 holds under any policy up to 50%), and the first bank with the rest (at least 2 fen)."""
    mine = (amount + 1) // 2
    return [(cx.platform, mine), (cx.lenders[0], amount - mine)]
