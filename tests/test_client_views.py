"""The client's registry views, against the chain the consortium was bootstrapped on."""

from ledger.domain import Role


def test_registry_views(cx):
    c = cx.plat
    assert c.member_count() == 2 + len(cx.lenders) + 1  # governor, platform, lenders, auditor
    assert c.member_at(1) == cx.governor.address
    assert c.member_at(2) == cx.platform.address
    assert c.profile(cx.lenders[0].address)[0] == "Bank A (dev)"
    assert c.is_active(cx.lenders[0].address, Role.LENDER)
    assert not c.is_active(cx.lenders[0].address, Role.PLATFORM)
    assert c.policy_version() == 1
    assert c.governor() == cx.governor.address
    assert not c.paused()
    cx.gov.pause()
    assert c.paused()
    cx.gov.unpause()
    loan = cx.loan(100_000)
    c.originate(loan, cx.sign(loan))
    rid = b"\x09" * 32
    assert not c.repayment_recorded(rid)
    c.repay(loan, rid, 1_000)
    assert c.repayment_recorded(rid)
