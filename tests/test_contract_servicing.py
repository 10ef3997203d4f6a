"""Issue 14 items 4 and 5, attacked as an insider with real member keys, straight at the
contracts (anvil and Hardhat node):

* ids belong to their platform: a second platform cannot use up another platform's loan, line
  or repayment ids (IdOutsideNamespace), and the Python rules refuse the same;
* no stranded exposure: a council-approved servicing transfer hands a removed or suspended
  platform's open loans and lines to another active platform, which then repays, changes
  status, writes off, draws and closes lines for them, releasing exposure, R3 slots and banks'
  R5/R6 usage; nobody else can, and the old platform never again.

How refusals are checked: tests/contract_lifecycle_support.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from ledger import rules
from ledger.chain.errors import ContractRevert
from ledger.domain import LineStatus, LoanStatus, MemberStatus, Role, record_id
from ledger.governance import Council, ProposalState, encode_action
from ledger.localnet.consortium import new_id
from ledger.provenance import sign
from tests.contract_lifecycle_support import events, new_member, reason, reverts


def _signed(cx, record, *extra):
    """Every party's signature with its own key, `extra` accounts included."""
    keys = {a.address: a.key for a in [*cx.accounts().values(), *extra]}
    return [sign(keys[s], cx.plat.domain, record) for s in record.signers]


def _theirs(cx, plat2, principal, **kw):
    """A loan of platform 2 with the first two banks."""
    p = principal * 4 // 10
    a = (principal - p) // 2
    shares = [(plat2, p), (cx.lenders[0], a), (cx.lenders[1], principal - p - a)]
    return cx.loan(principal, shares, platform=plat2, **kw)


# ------------------------------------------------------------------ item 4: ids


def test_a_platform_cannot_use_up_another_platforms_ids(cx):
    plat2 = new_member(cx, "platform", 1, Role.PLATFORM)
    b = cx.client(plat2)
    # the ids platform A will use for its loan, line and repayment ("loan-1", ...)
    a_loan, a_line, a_rep = (record_id(cx.platform.address, s) for s in ("loan-1", "line-1", "r-1"))

    squat = _theirs(cx, plat2, 1_000_000, loan_id=a_loan)
    err = reverts("IdOutsideNamespace", b.originate, squat, _signed(cx, squat, plat2))
    assert err.values == {"id": a_loan, "platform": plat2.address}
    # the rules a node pre-checks with refuse it the same way
    book = rules.Book(policy=cx.plat.current_policy()[0])
    assert rules.check_loan(book, squat, cx.now()).code == "IdOutsideNamespace"

    line = cx.line(1_000_000, platform=plat2, line_id=a_line)
    err = reverts("IdOutsideNamespace", b.grant_line, line, _signed(cx, line, plat2))
    assert err.values == {"id": a_line, "platform": plat2.address}

    # B's own loan under the same client id lives in B's namespace, apart from A's
    mine = _theirs(cx, plat2, 1_000_000, loan_id=record_id(plat2.address, "loan-1"))
    b.originate(mine, _signed(cx, mine, plat2))
    assert mine.loan_id != a_loan
    err = reverts("IdOutsideNamespace", b.repay, mine, a_rep, 1)
    assert err.values == {"id": a_rep, "platform": plat2.address}
    # a raw call, past the client's helpers, is refused as well
    with pytest.raises(ContractRevert) as info:
        b.transact(b.ledger, "repay", mine.as_abi(), a_rep, 1, 0)
    assert info.value.code == "IdOutsideNamespace"

    # A's records under those ids are accepted afterwards
    loan = cx.loan(1_000_000, loan_id=a_loan)
    cx.plat.originate(loan, cx.sign(loan))
    cx.plat.repay(loan, a_rep, 1_000)
    ln = cx.line(1_000_000, line_id=a_line)
    cx.plat.grant_line(ln, cx.sign(ln))
    assert cx.plat.loan_state(a_loan)[2] == LoanStatus.ACTIVE
    assert cx.plat.line_state(a_line)["status"] == LineStatus.ACTIVE
    assert cx.plat.repayment_recorded(a_rep)


# ------------------------------------------------------------------ item 5: servicing


def _book_of_a(cx):
    """Platform A's open book: two loans, a line with one draw."""
    loan = cx.loan(2_000_000)
    cx.plat.originate(loan, cx.sign(loan))
    bad = cx.loan(1_000_000)
    cx.plat.originate(bad, cx.sign(bad))
    line = cx.line(3_000_000)
    cx.plat.grant_line(line, cx.sign(line))
    drawn = cx.loan(500_000, borrower_key=line.borrower_key, line_id=line.line_id)
    cx.plat.originate(drawn, cx.sign(drawn))
    return loan, bad, line, drawn


def _usage(cx, lender, partner):
    u = cx.plat.lender_usage(lender, partner)
    return u["total"], u["with_partner"]


def test_only_the_council_transfers_servicing_and_only_between_platforms(cx):
    plat2 = new_member(cx, "platform", 1, Role.PLATFORM)
    a = cx.platform.address
    # servicing moves only away from a suspended or removed platform
    with pytest.raises(ContractRevert) as info:
        cx.gov.transfer_servicing(a, plat2.address)
    assert info.value.code == "ServicingNotTransferable"
    cx.gov.suspend_member(a)
    # a bank (any single member, or the deployer) calling the registry directly is refused
    for who in (cx.lenders[0], plat2, cx.governor):
        c = cx.client(who)
        err = reverts(
            "OwnableUnauthorizedAccount", c.transact, c.registry, "transferServicing", a,
            plat2.address,
        )  # fmt: skip
        assert err.values == {"account": who.address}
    # one member's proposal does not execute without a majority
    lone = Council(cx.client(cx.lenders[0]))
    data = encode_action(cx.deployer.registry, "transfer-servicing", a, plat2.address)
    pid, _ = lone.propose_call(cx.deployment.registry, data)
    assert lone.status(pid).state == ProposalState.PENDING
    cx.advance(lone.delay() + 1)
    with pytest.raises(ContractRevert):
        lone.execute(pid)
    assert cx.deployer.call(cx.deployer.registry, "servicer", a) == a
    # not to a bank, not to an unknown address, not to a suspended platform
    outsider = new_member(cx, "outsider", 3)
    for bad in (cx.lenders[1].address, outsider.address):
        with pytest.raises(ContractRevert) as info:
            cx.gov.transfer_servicing(a, bad)
        assert info.value.code == "InvalidServicer"
    cx.gov.suspend_member(plat2.address)
    with pytest.raises(ContractRevert) as info:
        cx.gov.transfer_servicing(a, plat2.address)
    assert info.value.code == "InvalidServicer"
    cx.gov.reinstate_member(plat2.address)
    receipt = cx.gov.transfer_servicing(a, plat2.address)
    (ev,) = events(cx.deployer, "ServicingTransferred", receipt)
    assert (ev["from"], ev["to"]) == (a, plat2.address)
    assert cx.deployer.call(cx.deployer.registry, "servicer", a) == plat2.address
    # the old platform stays out: its book belongs to its successor
    with pytest.raises(ContractRevert) as info:
        cx.gov.reinstate_member(a)
    assert info.value.code == "ServicingWasTransferred"


def test_successor_services_a_removed_platforms_book_and_releases_its_exposure(cx):
    loan, bad, line, drawn = _book_of_a(cx)
    a = cx.platform.address
    bank = cx.lenders[0].address
    plat2 = new_member(cx, "platform", 1, Role.PLATFORM)
    b = cx.client(plat2)
    total0, with_a0 = _usage(cx, bank, a)
    assert with_a0 > 0
    cx.gov.remove_member(a)
    # stranded: nobody can act on A's loans before a transfer
    reverts("NotActiveMember", cx.plat.repay, loan, new_id("r", a), 1)
    err = reverts("NotServicer", b.repay, loan, new_id("r", plat2.address), 1)
    assert err.values == {"account": plat2.address, "servicer": a}
    reverts("NotServicer", b.close_line, line.line_id)

    cx.gov.transfer_servicing(a, plat2.address)
    assert cx.deployer.member(a)["status"] == MemberStatus.REMOVED

    # repayments by the successor, in its own id namespace, release R5/R6 and exposure
    rid = new_id("r", plat2.address)
    reverts("IdOutsideNamespace", b.repay, loan, new_id("r", a), 1)
    (paid,) = events(b, "Repaid", b.repay(loan, rid, loan.principal, 10_000))
    assert paid["outstanding"] == 0
    assert cx.plat.loan_state(loan.loan_id)[1:] == (0, LoanStatus.REPAID)
    exp = cx.plat.borrower_exposure(loan.borrower_key)
    assert (exp["consumer"], exp["institutions"]) == (0, {})
    total1, with_a1 = _usage(cx, bank, a)
    share = next(t.amount for t in loan.tranches if t.lender == bank)
    assert (total0 - total1, with_a0 - with_a1) == (share, share)

    # status changes and a write-off
    b.set_status(bad, LoanStatus.OVERDUE, reason("DPD30"))
    (off,) = events(b, "LoanStatusChanged", b.set_status(bad, LoanStatus.WRITTEN_OFF))
    assert off["releasedPrincipal"] == bad.principal
    assert cx.plat.borrower_exposure(bad.borrower_key)["consumer"] == 0

    # a draw on A's line by the successor, funded by the line's banks and the successor: one
    # institution more for the borrower while A's line is open (R3 raised to four for it)
    policy, _ = cx.plat.current_policy()
    cx.gov.set_policy(dataclasses.replace(policy, max_institutions=4))
    p = 400_000
    more = cx.loan(
        1_000_000,
        [(plat2, p), (cx.lenders[0], 300_000), (cx.lenders[1], 300_000)],
        borrower_key=line.borrower_key,
        line_id=line.line_id,
        platform=plat2,
    )
    b.originate(more, _signed(cx, more, plat2))
    assert cx.plat.line_state(line.line_id)["drawn"] == drawn.principal + more.principal
    # a bank that holds no share of the line still cannot fund a draw on it
    stranger = new_member(cx, "lender", 3, Role.LENDER)
    cx.client(stranger).transact(
        cx.client(stranger).registry, "attestCapital", 10**12, 10**13, cx.now() + 86_400
    )
    odd = cx.loan(
        1_000,
        [(plat2, 600), (stranger, 400)],
        borrower_key=line.borrower_key,
        line_id=line.line_id,
        platform=plat2,
    )
    reverts("NotLineShareHolder", b.originate, odd, _signed(cx, odd, plat2, stranger))

    # the successor repays A's drawn loan and closes A's line
    b.repay(drawn, new_id("r", plat2.address), drawn.principal)
    b.repay(more, new_id("r", plat2.address), more.principal)
    (ended,) = events(b, "LineEnded", b.close_line(line.line_id))
    assert ended["status"] == LineStatus.CLOSED
    exp = cx.plat.borrower_exposure(line.borrower_key)
    assert (exp["consumer"], exp["institutions"]) == (0, {})
    assert _usage(cx, bank, a) == (0, 0)
    assert _usage(cx, bank, plat2.address)[1] == 0


def test_another_platform_cannot_act_on_a_transferred_book(cx):
    loan, _bad, line, _drawn = _book_of_a(cx)
    a = cx.platform.address
    plat2 = new_member(cx, "platform", 1, Role.PLATFORM)
    plat3 = new_member(cx, "platform", 2, Role.PLATFORM)
    cx.gov.suspend_member(a)
    cx.gov.transfer_servicing(a, plat2.address)
    c = cx.client(plat3)
    err = reverts("NotServicer", c.repay, loan, new_id("r", plat3.address), 1)
    assert err.values == {"account": plat3.address, "servicer": plat2.address}
    reverts("NotServicer", c.set_status, loan, LoanStatus.OVERDUE)
    reverts("NotServicer", c.close_line, line.line_id)
    reverts("NotActiveMember", cx.plat.repay, loan, new_id("r", a), 1)
    # a successor that is itself suspended hands on: the chain of transfers is followed
    cx.gov.suspend_member(plat2.address)
    cx.gov.transfer_servicing(plat2.address, plat3.address)
    assert cx.deployer.call(cx.deployer.registry, "servicer", a) == plat3.address
    c.repay(loan, new_id("r", plat3.address), 1)
    # plat2 handed over, so it cannot be reinstated nor take servicing back: no cycle can form
    for attempt in (lambda: cx.gov.reinstate_member(plat2.address),
                    lambda: cx.gov.transfer_servicing(a, plat2.address)):  # fmt: skip
        with pytest.raises(ContractRevert) as info:
            attempt()
        assert info.value.code in ("ServicingWasTransferred", "InvalidServicer")
