"""Keeping expired credit lines expired (issue 14 item 7).

The contract counts a line's limit in the borrower's exposure until `expireLine` is called for
it (anyone may call it once the signed expiry has passed; judging expiry inside every record
would need a loop over the borrower's lines). So no member has to remember the call:

- every platform and lender node runs a `LineKeeper`, which follows `LineGranted`/`LineEnded`
  from the chain and calls `expireLine` for each active line past its signed expiry, every
  `line_keeper_s` seconds (a hostile or absent platform cannot keep a dead line counting);
- the platform node, when a record it is about to submit is refused by R1/R2 or R3, first
  expires that borrower's lines past expiry (`expire_due_lines`) and judges again, so a loan
  that fits without an expired line is never refused for it.

The read model, the exposure answer and the audit all follow the chain's `LineEnded` events, so
they agree with the contract at every block.
"""

from __future__ import annotations

import logging

from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from api.service.periodic import Periodic
from ledger.chain.errors import ContractRevert
from ledger.domain import CreditLine, LineStatus

log = logging.getLogger("api.keeper")

# a refusal that means there is nothing (more) to do for this line now
_SETTLED = frozenset({"LineNotActive", "LineNotExpired", "LedgerPaused", "UnknownLine"})


def expire_line_if_due(ctx: MemberContext, chain: ConsortiumView, line_id: bytes) -> bool:
    """Expire the line if it is active and past its signed expiry; True when this call did."""
    _block, now = chain.now()
    state = chain.line_state(line_id)
    if state.status != LineStatus.ACTIVE or now <= state.expires_at:
        return False
    try:
        ctx.client.expire_line(line_id)
    except ContractRevert as exc:
        if exc.code in _SETTLED:  # another node expired it first, or the ledger is paused
            return False
        raise
    log.info("expired line 0x%s (past its expiry %d)", line_id.hex(), state.expires_at)
    return True


def expire_due_lines(ctx: MemberContext, chain: ConsortiumView, borrower_key: bytes) -> int:
    """Expire every active line of the borrower past its signed expiry; how many were."""
    block, now = chain.now()
    n = 0
    for line, status in chain.lines_of(borrower_key, block):
        if status == LineStatus.ACTIVE and now > line.expires_at:
            n += expire_line_if_due(ctx, chain, line.line_id)
    return n


class LineKeeper(Periodic):
    """A background thread expiring lines past their signed expiry (see the module's doc)."""

    name = "line-keeper"

    def __init__(self, ctx: MemberContext, chain: ConsortiumView, interval_s: float) -> None:
        super().__init__(interval_s)
        self.ctx, self.chain = ctx, chain
        self._due: dict[bytes, int] = {}  # line id -> signed expiry, for lines not seen ending
        self._next_block = chain.from_block

    def tick(self) -> list[bytes]:
        """Follow the chain to its head, then expire the lines past expiry; their ids."""
        head, now = self.chain.now()
        if head >= self._next_block:
            c, span = self.ctx.client, {"from_block": self._next_block, "to_block": head}
            for e in c.events("LineGranted", **span):
                line = CreditLine.from_abi(e.args["line"])
                self._due[line.line_id] = line.expires_at
            for e in c.events("LineEnded", **span):
                self._due.pop(bytes(e.args["lineId"]), None)
            self._next_block = head + 1
        done = []
        for line_id, expires_at in sorted(self._due.items(), key=lambda kv: kv[1]):
            if expires_at >= now or self._stop.is_set():
                break
            if expire_line_if_due(self.ctx, self.chain, line_id):
                done.append(line_id)
            if self.chain.line_state(line_id).status != LineStatus.ACTIVE:
                self._due.pop(line_id, None)  # ended, by us or by another (paused: next tick)
        return done
