from ledger.chain.errors import ContractRevert
from ledger.provenance import digest


def test_originate_and_digest_agree(cx):
    loan = cx.loan(1_000_000)
    assert cx.plat.loan_digest(loan) == digest(cx.plat.domain, loan)
    res = cx.plat.originate(loan, cx.sign(loan))
    assert res.block_number > 0
    exp = cx.plat.borrower_exposure(loan.borrower_key)
    assert exp["consumer"] == 1_000_000


def test_cap_error_carries_numbers(cx):
    loan = cx.loan(20_000_001)
    try:
        cx.plat.originate(loan, cx.sign(loan))
    except ContractRevert as exc:
        assert exc.code == "BorrowerCapExceeded"
        assert exc.values["requested"] == 20_000_001
        assert exc.values["cap"] == 20_000_000
    else:
        raise AssertionError("over-cap loan was accepted")
