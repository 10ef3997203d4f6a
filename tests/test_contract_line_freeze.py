"""Issue 17 item 3, line freezes, against the contracts directly with real member keys:

- a bank freezes its own share of a line it funds (its own transaction, nobody else's
  signature), after which a draw with a tranche from it is refused (`LineFrozen`) while draws
  funded by the other share holders go on; unfreezing is its own act;
- what an insider tries: the platform or another bank freezing a bank's share, a bank freezing
  a line it does not fund, a frozen share on an ended line;
- the freeze leaves the borrower's committed exposure as DESIGN §4 defines it (the line's limit
  counts while the line is active, frozen or not);
- ledger.rules refuses a draw on a frozen share the same way, and the audit replay follows the
  freezes and finds the chain clean.

How refusals are checked: tests/contract_lifecycle_support.py.
"""

from __future__ import annotations

from ledger import rules
from ledger.audit import load_history, record_timestamps, replay_events
from ledger.audit.events import Rpc
from ledger.audit.report import AuditReport
from ledger.domain import LineStatus
from ledger.provenance import Domain
from tests.contract_lifecycle_support import events, grant, reverts


def _replay(cx):
    rpc = Rpc(cx.rpc_url)
    head = int(rpc.call("eth_blockNumber", []), 16)
    evs = load_history(rpc, cx.deployment, head)
    report = AuditReport(
        cx.deployment.chain_id, cx.deployment.registry, cx.deployment.ledger,
        cx.deployment.deployment_block, head,
    )  # fmt: skip
    replay = replay_events(
        report, evs, Domain(cx.deployment.chain_id, cx.deployment.ledger),
        record_timestamps(rpc, evs), rpc,
    )  # fmt: skip
    return replay, report


def test_a_bank_freezes_its_share_draws_it_would_fund_are_refused_until_it_unfreezes(cx):
    p, a, b = cx.platform, cx.lenders[0], cx.lenders[1]
    line, _ = grant(cx, 1_000_000, shares=[(p, 300_000), (a, 400_000), (b, 300_000)])
    key, lid = line.borrower_key, line.line_id
    exposure_before = cx.plat.borrower_exposure(key)
    bank_a = cx.client(a)
    receipt = bank_a.freeze_line(lid, True)
    assert events(bank_a, "LineShareFrozen", receipt) == [
        {"lineId": lid, "lender": a.address, "frozen": True}
    ]
    # DESIGN §4: an active line's limit is committed exposure; a freeze does not change it
    assert cx.plat.borrower_exposure(key) == exposure_before
    assert cx.plat.line_state(lid)["status"] == LineStatus.ACTIVE
    # a draw that needs bank A's share is refused, with the line and the bank
    draw = cx.loan(500_000, [(p, 200_000), (a, 300_000)], borrower_key=key, line_id=lid)
    err = reverts("LineFrozen", cx.plat.originate, draw, cx.sign(draw))
    assert err.values == {"lineId": lid, "lender": a.address}
    assert cx.plat.line_state(lid)["drawn"] == 0
    # ledger.rules says the same before any transaction
    replay, report = _replay(cx)
    v = rules.check_loan(replay.book, draw, cx.now())
    assert v is not None and (v.code, v.values) == (
        "LineFrozen",
        {"lineId": lid, "lender": a.address},
    )
    # bank B's share is not frozen: its draws go on
    other = cx.loan(400_000, [(p, 150_000), (b, 250_000)], borrower_key=key, line_id=lid)
    cx.plat.originate(other, cx.sign(other))
    assert cx.plat.line_state(lid)["drawn"] == 400_000
    # unfreezing is bank A's own act; then its draw lands
    receipt = bank_a.freeze_line(lid, False)
    assert events(bank_a, "LineShareFrozen", receipt)[0]["frozen"] is False
    cx.plat.originate(draw, cx.sign(draw))
    assert cx.plat.line_state(lid)["drawn"] == 900_000
    # the audit followed both freezes and found nothing wrong
    replay, report = _replay(cx)
    assert replay.records["line_freezes"] == 2
    assert report.violations == [], report.violations


def test_only_a_bank_holding_a_share_freezes_and_only_its_own(cx):
    p, a, b, c = cx.platform, cx.lenders[0], cx.lenders[1], cx.lenders[2]
    line, _ = grant(cx, 1_000_000, shares=[(p, 400_000), (a, 600_000)])
    lid = line.line_id
    # the platform cannot freeze (it closes its line instead); nor can a bank without a share
    err = reverts("NotLineShareHolder", cx.plat.freeze_line, lid, True)
    assert err.values == {"lineId": lid, "lender": p.address}
    err = reverts("NotLineShareHolder", cx.client(b).freeze_line, lid, True)
    assert err.values == {"lineId": lid, "lender": b.address}
    reverts("NotLineShareHolder", cx.client(c).freeze_line, lid, True)
    # bank B freezing "for" bank A is not a thing: the call only ever names the sender's share
    assert cx.plat.line_state(lid)["frozen_slots"] == 0
    # an unknown or ended line cannot be frozen
    reverts("LineNotActive", cx.client(a).freeze_line, b"\x42" * 32, True)
    cx.plat.close_line(lid)
    reverts("LineNotActive", cx.client(a).freeze_line, lid, True)


def test_a_frozen_member_cannot_freeze_or_unfreeze(cx):
    p, a = cx.platform, cx.lenders[0]
    line, _ = grant(cx, 1_000_000, shares=[(p, 400_000), (a, 600_000)])
    cx.client(a).freeze_line(line.line_id, True)
    cx.gov.set_frozen(a.address, True)
    reverts("MemberIsFrozen", cx.client(a).freeze_line, line.line_id, False)
