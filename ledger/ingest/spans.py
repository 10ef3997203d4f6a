"""How many blocks the indexer's next eth_getLogs range spans.

A range that comes back with few events doubles the span, one with far too many shrinks it in
proportion, and a range the node refuses halves it (and a range that large is not tried again
for a while). An answer that outgrew the bytes the indexer would hold
(`ledger.chain.rpc.ResultTooLarge`) cuts the span to the blocks before the one it had got to.
"""

from __future__ import annotations

# The first range is one block and grows by doubling while ranges stay under the target: on a
# dense history (a couple of thousand loans a block) a first range of only 16 blocks held 30,000
# events and set the catch-up's peak memory (303 MB over 1M events, against 212 MB for the rest
# of it). A sparse history pays a dozen more small requests to reach its span.
INITIAL_SPAN = 1
# Events a range aims at (between half and twice this). Two ranges are in memory at once (one
# written, one read ahead), and a range costs about 15 kB a LoanOriginated while it is parsed and
# written: 2,000 keeps the peak below that of one range of 5,000, and per-range costs (a commit,
# a dozen statements, three requests) are still small beside the rows.
TARGET_EVENTS = 2_000
# The most of one eth_getLogs answer held for a range of several blocks (a LoanOriginated is 1.9
# to 3.2 kB of JSON, so a range at twice the target fits). Spans grow over a quiet stretch, and
# the first range into a busy one can hold far more: 60,000 events took 531 MB before this.
MAX_RANGE_BYTES = 16 * 2**20
MAX_SPAN = 50_000
# Ranges after a refusal before a larger one is tried again.
_PROBE_AFTER = 100


class Spans:
    """The span of the next range, from what the last ones held."""

    def __init__(
        self, span: int = INITIAL_SPAN, max_span: int = MAX_SPAN, target: int = TARGET_EVENTS
    ) -> None:
        self.span = span
        self.max_span = max_span
        self.target = target
        self._ceiling = max_span  # below the last range the node refused
        self._since_refused = 0

    def read(self, events: int) -> None:
        """A range held `events`."""
        self._since_refused += 1
        if self._since_refused >= _PROBE_AFTER:  # a limit may have been a passing overload
            self._ceiling = self.max_span
        if events * 2 < self.target:
            self.span = min(self._ceiling, self.max_span, self.span * 2)
        elif events > self.target * 2:
            # in proportion: halving would leave the ranges after a burst several times too big
            self.span = max(1, self.span * self.target // events)

    def refused(self, frm: int, to: int) -> None:
        """The node refused [frm, to]: too many blocks or results at once."""
        self._ceiling = self.span = max(1, (to - frm + 1) // 2)
        self._since_refused = 0

    def oversized(self, frm: int, to: int, reached: int | None) -> None:
        """The answer for [frm, to] outgrew the byte cap, having got to block `reached`: the
        blocks before that one fitted, and the span adapts to what they hold."""
        if reached is not None and frm < reached <= to:
            self.span = reached - frm
        else:
            self.span = max(1, (to - frm + 1) // 2)
