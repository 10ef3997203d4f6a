"""The shared rule vectors, judged by the contract on a real chain and by ledger.rules: both must
give the same outcome, the same error code and the same numbers, and match the vector."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak
from web3.exceptions import ContractLogicError

from ledger import rules
from ledger.domain import (
    DEFAULT_POLICY,
    ZERO32,
    CoLoan,
    CreditLine,
    MemberStatus,
    Policy,
    Product,
    RepaymentType,
    Role,
    Tranche,
    record_id,
    sort_tranches,
)
from ledger.localnet.consortium import DEFAULT_LOAN_BALANCE, DEFAULT_TIER1, LocalConsortium
from ledger.provenance import pack_signatures

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rules.json").read_text())["cases"]


def _name_key(kind: str, name: str) -> bytes:
    return keccak(f"{kind}|{name}".encode())


def _record_id(cx: LocalConsortium, kind: str, name: str) -> bytes:
    """A vector's record id, in the platform's namespace (ids belong to their platform)."""
    return record_id(cx.platform.address, f"{kind}|{name}")


class Case:
    """Resolves a vector's symbolic names against the consortium and builds records from it."""

    def __init__(self, cx: LocalConsortium, spec: dict[str, Any]) -> None:
        self.cx = cx
        self.spec = spec
        self.counter = 0

    def account(self, name: str):
        if name == "platform":
            return self.cx.platform
        if name.startswith("bank"):
            return self.cx.lenders[int(name[4:])]
        raise KeyError(name)

    def address(self, name: str) -> str:
        return self.account(name).address

    def record(self, item: dict[str, Any], now: int) -> CoLoan | CreditLine:
        kind, d = next(iter(item.items()))
        self.counter += 1
        rid = _record_id(self.cx, "id", d.get("id", f"auto-{self.counter}"))
        tranches = sort_tranches([Tranche(self.address(n), a) for n, a in d["shares"].items() if a])
        if kind == "loan":
            return CoLoan(
                loan_id=rid,
                borrower_key=_name_key("borrower", d["borrower"]),
                platform=self.cx.platform.address,
                product=Product(d.get("product", 0)),
                principal=d["principal"],
                apr_bps=1_200,
                term_days=d.get("term_days", 180),
                repayment=RepaymentType(d.get("repayment", 1)),
                deadline=now + 3_600,
                tranches=tranches,
                line_id=_record_id(self.cx, "id", d["line"]) if "line" in d else ZERO32,
            )
        return CreditLine(
            line_id=rid,
            borrower_key=_name_key("borrower", d["borrower"]),
            platform=self.cx.platform.address,
            product=Product(d.get("product", 0)),
            limit=d["limit"],
            expires_at=now + d.get("expires_in", 30 * 86_400),
            deadline=now + 3_600,
            shares=tranches,
        )

    def expected_value(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            if key == "borrowerKey":
                return _name_key("borrower", value)
            return self.address(value)
        return value


def _chain_verdict(cx: LocalConsortium, record: CoLoan | CreditLine) -> rules.Violation | None:
    plat = cx.plat
    args = [record.as_abi(), pack_signatures(cx.sign(record))]
    if isinstance(record, CoLoan):
        args.append(list(record.schedule))
    fn = "originate" if isinstance(record, CoLoan) else "grantLine"
    data = plat.ledger.encode_abi(fn, args=args)
    try:
        plat.w3.eth.call({"from": cx.platform.address, "to": plat.ledger.address, "data": data})
    except ContractLogicError as exc:
        err = plat.errors.decode(exc.data)
        return rules.Violation(err.code, err.values)
    return None


def _mine_at(cx: LocalConsortium, ts: int) -> None:
    w3 = cx.gov.w3
    w3.provider.make_request("evm_setNextBlockTimestamp", [ts])
    w3.provider.make_request("evm_mine", [])


@pytest.mark.parametrize("spec", VECTORS, ids=[c["name"] for c in VECTORS])
def test_vector(cx: LocalConsortium, spec: dict[str, Any]) -> None:
    case = Case(cx, spec)
    policy = Policy(**{**dataclasses.asdict(DEFAULT_POLICY), **spec.get("policy", {})})
    if "policy" in spec:
        cx.gov.set_policy(policy)
    for bank, figures in spec.get("attest", {}).items():
        until = cx.now() + figures.get("valid_for", 86_400)
        cx.client(case.account(bank)).attest_capital(
            figures.get("tier1", DEFAULT_TIER1),
            figures.get("loan_balance", DEFAULT_LOAN_BALANCE),
            until,
        )
    if "policy_after_attest" in spec:  # e.g. a permissive policy restored after an attestation
        policy = Policy(**{**dataclasses.asdict(DEFAULT_POLICY), **spec["policy_after_attest"]})
        cx.gov.set_policy(policy)

    # the same state in the Python model: members in the registry's admission order
    book = rules.Book(policy=policy)
    book.admit(cx.governor.address, Role.GOVERNOR)
    book.admit(cx.platform.address, Role.PLATFORM)
    for lender in cx.lenders:
        book.admit(lender.address, Role.LENDER)
    book.admit(cx.auditor.address, Role.AUDITOR)

    # the setup, recorded on chain; `built` keeps it in order for the model
    built: list[CoLoan | CreditLine | tuple[bytes, bytes, int]] = []
    loans: dict[bytes, CoLoan] = {}
    for item in spec.get("setup", []):
        if "repay" in item:
            loan = loans[_record_id(cx, "id", item["repay"]["loan"])]
            rid = _record_id(cx, "repayment", item["repay"]["loan"])
            cx.plat.repay(loan, rid, item["repay"]["principal"])
            built.append((loan.loan_id, rid, item["repay"]["principal"]))
            continue
        record = case.record(item, cx.now())
        if isinstance(record, CoLoan):
            cx.plat.originate(record, cx.sign(record))
            loans[record.loan_id] = record
        else:
            cx.plat.grant_line(record, cx.sign(record))
        built.append(record)
    for name in spec.get("suspend", []):
        cx.gov.suspend_member(case.address(name))
    for name in spec.get("freeze", []):
        cx.gov.set_frozen(case.address(name), True)

    # the model's members carry what the registry holds now (status, capital, attestation)
    for m_addr, m in book.members.items():
        view = cx.gov.member(m_addr)
        m.status = MemberStatus(view["status"])
        m.frozen = view["frozen"]
        m.tier1_capital = view["tier1_capital"]
        m.total_loan_balance = view["total_loan_balance"]
        m.attested_until = view["attested_until"]
        m.attested_at = view["attested_at"]
    for step in built:
        if isinstance(step, tuple):
            rules.apply_repayment(book, *step)
        elif isinstance(step, CoLoan):
            rules.apply_loan(book, step)
        else:
            rules.apply_line(book, step)

    if "time" in spec:
        t = spec["time"]
        if "since_attestation_of" in t:  # seconds after the attestation was made
            ts = cx.gov.member(case.address(t["since_attestation_of"]))["attested_at"] + t["offset"]
        else:  # seconds after the attested period ends
            ts = cx.gov.member(case.address(t["after_attestation_of"]))["attested_until"]
            ts += t["offset"]
    else:
        ts = cx.now() + 1
    _mine_at(cx, ts)
    request = case.record(spec["request"], ts)

    chain = _chain_verdict(cx, request)
    if isinstance(request, CoLoan):
        model = rules.check_loan(book, request, ts)
    else:
        model = rules.check_line(book, request, ts)

    expect = spec["expect"]
    if expect is None:
        assert chain is None, f"contract refused: {chain}"
        assert model is None, f"ledger.rules refused: {model}"
        return
    assert chain is not None and chain.code == expect["code"], f"contract: {chain}"
    for k, v in expect.get("values", {}).items():
        assert chain.values[k] == case.expected_value(k, v), (k, chain)
    assert model == chain
