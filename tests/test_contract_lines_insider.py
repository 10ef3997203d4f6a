"""Issue 14 item 7, credit lines are exactly what was signed: what an insider holding real member
keys tries against the contracts directly, and what ledger.rules and the audit say about it.

- a line signed with an expiry too large for the 40 bits it is stored in is refused
  (ExpiryTooLarge), never narrowed to an expiry anyone could act on seconds later;
- a bank that holds no share of a line cannot fund a draw on it (NotLineShareHolder);
- the audit flags a line that ended as expired before the expiry its parties signed.

How refusals are checked: tests/contract_lifecycle_support.py.
"""

from __future__ import annotations

import dataclasses

from ledger import rules
from ledger.audit import load_history, record_timestamps, replay_events
from ledger.audit.events import Rpc
from ledger.audit.report import AuditReport
from ledger.domain import LineStatus, Product
from ledger.localnet.consortium import new_id
from ledger.provenance import Domain
from tests.conftest import advance_time
from tests.contract_lifecycle_support import events, grant, reverts

MAX_EXPIRY = (1 << 40) - 1


def _book(cx) -> rules.Book:
    """The rules' view of the chain now, as the audit replay builds it."""
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
    return replay.book


def test_line_signed_with_an_expiry_beyond_storage_is_refused_not_narrowed(cx):
    # Every party signs a line running for millennia; narrowed to 40 bits its expiry would be
    # 100 seconds from now, and anyone could expire it (releasing the banks' committed limit)
    # long before the signed date.
    line = cx.line(1_000_000)
    huge = dataclasses.replace(line, expires_at=(1 << 40) + cx.now() + 100)
    err = reverts("ExpiryTooLarge", cx.plat.grant_line, huge, cx.sign(huge))
    assert err.values == {"expiresAt": huge.expires_at, "max": MAX_EXPIRY}
    assert cx.plat.line_state(huge.line_id)["status"] == LineStatus.NONE
    # the largest expiry that fits is taken as signed
    ok = dataclasses.replace(line, expires_at=MAX_EXPIRY)
    cx.plat.grant_line(ok, cx.sign(ok))
    assert cx.plat.line_state(ok.line_id)["expires_at"] == MAX_EXPIRY
    # the Python pre-check says the same
    v = rules.check_line(
        _book(cx), dataclasses.replace(huge, line_id=new_id("line", cx.platform.address)), cx.now()
    )
    assert v is not None and (v.code, v.values["max"]) == ("ExpiryTooLarge", MAX_EXPIRY)


def test_bank_without_a_share_cannot_draw_on_another_banks_line(cx):
    # The line is the platform's and bank A's; bank B signed nothing for it.
    p, a, b = cx.platform, cx.lenders[0], cx.lenders[1]
    line, _ = grant(cx, 1_000_000, shares=[(p, 400_000), (a, 600_000)])
    key = line.borrower_key
    draw = cx.loan(500_000, [(p, 200_000), (b, 300_000)], borrower_key=key, line_id=line.line_id)
    err = reverts("NotLineShareHolder", cx.plat.originate, draw, cx.sign(draw))
    assert err.values == {"lineId": line.line_id, "lender": b.address}
    assert cx.plat.line_state(line.line_id)["drawn"] == 0
    assert cx.plat.lender_usage(b.address, p.address)["total"] == 0
    # ledger.rules refuses it the same way, before any transaction
    v = rules.check_loan(_book(cx), draw, cx.now())
    assert v is not None and (v.code, v.values) == (
        "NotLineShareHolder",
        {"lineId": line.line_id, "lender": b.address},
    )
    # a share holder draws; its draw is not capped at its own share (see README: credit lines)
    ok = cx.loan(700_000, [(p, 210_000), (a, 490_000)], borrower_key=key, line_id=line.line_id)
    assert rules.check_loan(_book(cx), ok, cx.now()) is None
    cx.plat.originate(ok, cx.sign(ok))
    assert cx.plat.line_state(line.line_id)["drawn"] == 700_000


def test_audit_flags_a_line_expired_before_its_signed_expiry(cx):
    # The history a narrowing contract would leave: every party signed an expiry 2**40 seconds
    # later than the one the line was expired at. Rewritten here (with the parties' real keys)
    # because the contract now refuses such a line.
    line, _ = grant(cx, 1_000_000, product=Product.BUSINESS, expires_in=1_000)
    advance_time(cx, 1_001)
    (ended,) = events(cx.plat, "LineEnded", cx.client(cx.auditor).expire_line(line.line_id))
    assert ended["status"] == LineStatus.EXPIRED
    rpc = Rpc(cx.rpc_url)
    head = int(rpc.call("eth_blockNumber", []), 16)
    evs = load_history(rpc, cx.deployment, head)
    (i,) = [k for k, e in enumerate(evs) if e.name == "LineGranted"]
    signed = dataclasses.replace(line, expires_at=line.expires_at + (1 << 40))
    args = {**evs[i].args, "line": signed.as_abi(), "signatures": cx.sign(signed)}
    evs[i] = dataclasses.replace(evs[i], args=args)
    dep = cx.deployment
    report = AuditReport(dep.chain_id, dep.registry, dep.ledger, dep.deployment_block, head)
    replay_events(report, evs, Domain(dep.chain_id, dep.ledger), record_timestamps(rpc, evs), rpc)
    codes = sorted(v.code for v in report.violations)
    assert codes == ["ExpiryTooLarge", "LineNotExpired"], report.violations
    assert all(v.record == "0x" + line.line_id.hex() for v in report.violations)
