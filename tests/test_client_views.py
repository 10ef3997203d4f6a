"""The client's registry views, against the chain the consortium was bootstrapped on."""

from ledger.domain import CoLoan, Role, record_id
from ledger.provenance import unpack_signatures


def test_registry_views(cx):
    c = cx.plat
    # the deployer, platform, lenders, auditor, and the timelock (the governor since hand-over)
    assert c.member_count() == 2 + len(cx.lenders) + 2
    assert c.member_at(1) == cx.governor.address
    assert c.member_at(2) == cx.platform.address
    assert c.profile(cx.lenders[0].address)[0] == "Bank A (dev)"
    assert c.is_active(cx.lenders[0].address, Role.LENDER)
    assert not c.is_active(cx.lenders[0].address, Role.PLATFORM)
    assert c.policy_version() == 1
    assert c.governor() == cx.deployment.timelock
    assert not c.paused()
    cx.gov.pause()
    assert c.paused()
    cx.gov.unpause()
    loan = cx.loan(100_000)
    c.originate(loan, cx.sign(loan))
    rid = record_id(cx.platform.address, "r-9")
    assert not c.repayment_recorded(rid)
    c.repay(loan, rid, 1_000)
    assert c.repayment_recorded(rid)


def test_events_by_indexed_argument_are_what_web3_finds(cx):
    """`events` reads through the one chain-reading layer what web3's get_logs finds, decoded in
    the native form (bytes as bytes, structs as dicts)."""
    c = cx.plat
    first = cx.deployment.deployment_block
    loans = [cx.loan(200_000 + i) for i in range(2)]
    for loan in loans:
        c.originate(loan, cx.sign(loan))
    rid = record_id(cx.platform.address, "r-10")
    c.repay(loans[1], rid, 2_000, 10)
    for loan in loans:
        (ev,) = c.events("LoanOriginated", from_block=first, loanId=loan.loan_id)
        (w3,) = c.ledger.events.LoanOriginated().get_logs(
            from_block=first, argument_filters={"loanId": loan.loan_id}
        )
        assert CoLoan.from_abi(ev.args["loan"]) == loan
        assert (ev.block_number, ev.tx_hash) == (w3["blockNumber"], bytes(w3["transactionHash"]))
        assert ev.args["signatures"] == [
            bytes(s) for s in unpack_signatures(w3["args"]["signatures"])
        ]
    by_borrower = c.events("LoanOriginated", from_block=first, borrowerKey=loans[0].borrower_key)
    assert loans[0].loan_id in {e.args["loanId"] for e in by_borrower}
    (repaid,) = c.events("Repaid", from_block=first, repaymentId=rid)
    assert (repaid.args["loanId"], repaid.args["principal"], repaid.args["interest"]) == (
        loans[1].loan_id,
        2_000,
        10,
    )
    assert c.events("Repaid", from_block=first, repaymentId=b"\x0b" * 32) == []
    assert c.events("LoanOriginated", from_block=first, to_block=first, loanId=rid) == []
