"""The indexer's range sizing (ledger.ingest.spans), on its own; tests/test_indexer.py runs it
against real chains."""

from __future__ import annotations

from ledger.ingest.spans import Spans


def test_spans_double_while_sparse_and_shrink_in_proportion_when_dense() -> None:
    s = Spans(1, max_span=64, target=2_000)
    for want in (2, 4, 8, 16, 32, 64, 64):
        s.read(10)
        assert s.span == want
    s.read(64_000)  # 32 times the target: straight to two blocks, not to half of 64
    assert s.span == 2
    s.read(3_000)  # within twice the target: kept
    assert s.span == 2
    s.read(4_001)
    assert s.span == 1
    s.read(50_000)  # one block cannot be split
    assert s.span == 1


def test_a_refused_span_is_not_tried_again_until_a_hundred_ranges_later() -> None:
    s = Spans(1_000, max_span=10_000, target=2_000)
    s.refused(100, 1_099)
    assert s.span == 500
    for _ in range(99):
        s.read(0)
        assert s.span == 500
    s.read(0)  # the hundredth: the ceiling is lifted again
    assert s.span == 1_000


def test_an_oversized_answer_cuts_the_span_to_the_blocks_before_where_it_got_to() -> None:
    s = Spans(16_384, max_span=50_000)
    s.oversized(16_384, 32_767, reached=20_011)
    assert s.span == 20_011 - 16_384
    s.oversized(20_011, 23_637, reached=20_011)  # the first block alone was too large
    assert s.span == (23_637 - 20_011 + 1) // 2
    s.oversized(10, 11, reached=None)
    assert s.span == 1
