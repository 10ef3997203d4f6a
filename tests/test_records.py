"""ledger.records: each record's conversions, written once, agree with each other (terms JSON,
read-model rows, read-back view), and ledger.domain.MemberInfo reads the registry's tuple."""

from __future__ import annotations

from ledger.domain import (
    ZERO32,
    CoLoan,
    CreditLine,
    LoanStatus,
    MemberInfo,
    MemberStatus,
    Product,
    RepaymentType,
    Role,
    Tranche,
)
from ledger.records import (
    line_from_row,
    line_from_terms,
    line_terms,
    loan_from_row,
    loan_from_terms,
    loan_terms,
    loan_view,
    status_name,
    terms_of,
)

A = "0x99427C5eCD7200c06cfa34817657bd2FB118a897"
P = "0xbA954b03dd012d0B065e554Ec4c9Bd8396c19801"
LOAN = CoLoan(
    loan_id=b"\x12" * 32,
    borrower_key=b"\xab" * 32,
    platform=P,
    product=Product.CONSUMER,
    principal=3_000_000,
    apr_bps=1_200,
    term_days=180,
    repayment=RepaymentType.INSTALMENT,
    deadline=1_767_225_600,
    tranches=(Tranche(A, 1_800_000), Tranche(P, 1_200_000)),  # the order given is kept
)
LINE = CreditLine(
    line_id=b"\x34" * 32,
    borrower_key=b"\xab" * 32,
    platform=P,
    product=Product.BUSINESS,
    limit=5_000_000,
    expires_at=1_767_225_600,
    deadline=1_767_000_000,
    shares=(Tranche(P, 2_000_000), Tranche(A, 3_000_000)),
    document_digest=b"\x77" * 32,
)


def test_loan_terms_round_trip_and_spell_the_wire_names() -> None:
    terms = loan_terms(LOAN)
    assert terms["loan_id"] == "0x" + "12" * 32 and terms["line_id"] == "0x" + "00" * 32
    assert (terms["product"], terms["repayment"]) == ("consumer", "instalment")
    assert terms["tranches"] == [
        {"lender": A, "amount": 1_800_000},
        {"lender": P, "amount": 1_200_000},
    ]
    assert loan_from_terms(terms) == LOAN
    assert terms_of(LOAN) == terms


def test_line_terms_round_trip() -> None:
    terms = line_terms(LINE)
    assert terms["product"] == "business" and terms["limit"] == 5_000_000
    assert line_from_terms(terms) == LINE
    assert terms_of(LINE) == terms


def test_rows_become_the_same_records() -> None:
    row = {
        "loan_id": LOAN.loan_id, "borrower_key": LOAN.borrower_key, "platform": P,
        "product": 0, "principal": 3_000_000, "apr_bps": 1_200, "term_days": 180,
        "repayment": 1, "deadline": LOAN.deadline, "line_id": None, "document_digest": ZERO32,
    }  # fmt: skip
    tranches = [{"lender": A, "amount": 1_800_000}, {"lender": P, "amount": 1_200_000}]
    assert loan_from_row(row, tranches) == LOAN
    line_row = {
        "line_id": LINE.line_id, "borrower_key": LINE.borrower_key, "platform": P,
        "product": 1, "limit_amount": 5_000_000, "expires_at": LINE.expires_at,
        "deadline": LINE.deadline, "document_digest": b"\x77" * 32,
    }  # fmt: skip
    shares = [{"lender": P, "amount": 2_000_000}, {"lender": A, "amount": 3_000_000}]
    assert line_from_row(line_row, shares) == LINE


def test_a_view_names_no_empty_line_or_digest() -> None:
    view = loan_view(
        LOAN, 2_000_000, LoanStatus.WRITTEN_OFF, [1_200_000, 800_000],
        policy_version=1, block_number=42, tx_hash="0x" + "cd" * 32,
    )  # fmt: skip
    assert view["line_id"] is None and view["document_digest"] is None
    assert view["status"] == "written_off" == status_name(4)
    assert view["tranches"][1] == {"lender": P, "amount": 1_200_000, "outstanding": 800_000}
    assert "deadline" not in view


def test_member_info_from_the_registry_tuple() -> None:
    m = MemberInfo.from_abi(A, (3, 1, False, 2, 10**12, 10**13, 100, 200))
    assert (m.role, m.status, m.index) == (Role.LENDER, MemberStatus.ACTIVE, 2)
    assert (m.tier1_capital, m.total_loan_balance, m.attested_until) == (10**12, 10**13, 200)
    assert m.role_name == "lender" and m.active and m.known
    gone = MemberInfo.from_abi(A, (0, 0, False, 0, 0, 0, 0, 0))
    assert gone.role_name == "none" and not gone.known and not gone.active


def test_from_abi_reads_a_struct_as_a_tuple_or_by_name() -> None:
    names = ["loanId", "borrowerKey", "platform", "product", "principal", "aprBps", "termDays",
             "repayment", "lineId", "documentDigest", "scheduleDigest", "deadline",
                 "tranches"]  # fmt: skip
    t = LOAN.as_abi()
    by_name = dict(zip(names, t, strict=True))
    by_name["tranches"] = [{"lender": x, "amount": n} for x, n in t[-1]]
    assert CoLoan.from_abi(t) == CoLoan.from_abi(by_name) == LOAN
    line_names = ["lineId", "borrowerKey", "platform", "product", "limit", "expiresAt",
                  "documentDigest", "deadline", "shares"]  # fmt: skip
    assert CreditLine.from_abi(LINE.as_abi()) == LINE
    assert CreditLine.from_abi(dict(zip(line_names, LINE.as_abi(), strict=True))) == LINE
