"""Gas regressions are guarded: a rise of more than 2% over the committed snapshot fails."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ledger.localnet.gas import GasRow, compare_snapshot, run

SNAPSHOT = Path(__file__).resolve().parents[1] / "gas-snapshot.json"


def test_gas_has_not_risen_over_the_snapshot():
    rows = run()
    assert compare_snapshot(SNAPSHOT, rows) == []


def test_a_rise_over_two_percent_is_reported(tmp_path):
    rows = [GasRow(**r) for r in json.loads(SNAPSHOT.read_text())["rows"]]
    worse = [replace(rows[0], gas_per_loan=int(rows[0].gas_per_loan * 1.021)), *rows[1:]]
    within = [replace(rows[0], gas_per_loan=int(rows[0].gas_per_loan * 1.019)), *rows[1:]]
    assert len(compare_snapshot(SNAPSHOT, worse)) == 1
    assert compare_snapshot(SNAPSHOT, within) == []
