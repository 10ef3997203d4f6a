"""Helpers shared by the tests/test_contract_lifecycle_*.py files: the refusal check, event
decoding, and shorthand for recording loans and lines and reading usage.

Every refusal is checked by the contract error a user would see (ContractRevert.code) and, where
the error carries numbers, by those numbers.
"""

from __future__ import annotations

import pytest

from ledger.chain.deployment import fund
from ledger.chain.errors import ContractRevert
from ledger.domain import CoLoan, Role
from ledger.keys import dev_account
from ledger.localnet.consortium import LocalConsortium


def reverts(code: str, fn, *args, **kwargs) -> ContractRevert:
    """Call `fn` and return the ContractRevert it raises, which must be `code`."""
    with pytest.raises(ContractRevert) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value}"
    return info.value


def events(client, name: str, receipt) -> list:
    return [e.args for e in client.receipt_events(receipt, name)]


def reason(text: str) -> bytes:
    return text.encode().ljust(32, b"\0")


def amounts(loan: CoLoan) -> list[int]:
    return [t.amount for t in loan.tranches]


def lenders_of(cx: LocalConsortium, loan: CoLoan) -> list[str]:
    return [t.lender for t in loan.tranches if t.lender != loan.platform]


def usage(cx: LocalConsortium, lender: str) -> tuple[int, int]:
    u = cx.plat.lender_usage(lender, cx.platform.address)
    return u["total"], u["with_partner"]


def originate(cx: LocalConsortium, principal: int, shares=None, **kw) -> CoLoan:
    loan = cx.loan(principal, shares, **kw)
    cx.plat.originate(loan, cx.sign(loan))
    return loan


def uneven(cx: LocalConsortium, principal: int = 1_000_003) -> list:
    """Platform ~40%, two lenders with odd amounts, so rounding matters."""
    p = principal * 4 // 10 + 1
    a = (principal - p) // 3 + 2
    return [(cx.platform, p), (cx.lenders[0], a), (cx.lenders[1], principal - p - a)]


def new_member(cx: LocalConsortium, role_name: str, index: int, role: Role | None = None):
    """A funded extra account, admitted in `role` when given."""
    acct = dev_account(role_name, index)
    fund(cx.rpc_url, [acct.address])
    if role is not None:
        cx.gov.admit_member(acct.address, role, f"{role_name} {index}")
    return acct


def grant(cx, limit, **kw):
    line = cx.line(limit, **kw)
    receipt = cx.plat.grant_line(line, cx.sign(line))
    return line, receipt
