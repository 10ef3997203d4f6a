"""`ledger demo`: the whole consortium story played against the running nodes, in order: the
lending story (ledger.localnet.story), the loan economics (ledger.localnet.story_economics),
then the council's part (ledger.localnet.story_council): a policy change and a servicing
transfer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger.localnet.story import _next_run, _play, _Story
from ledger.localnet.story_council import council, servicing
from ledger.localnet.story_economics import play_economics


def run_story(urls: dict[str, str], state_dir: Path) -> list[dict[str, Any]]:
    """Play the story against the nodes at `urls` (member name -> base URL)."""
    run = _next_run(state_dir)
    s = _Story(urls)
    try:
        _play(s, run)
        play_economics(s, state_dir, run)
        council(s, state_dir)
        servicing(s, state_dir, run)
    finally:
        s.close()
    return s.steps
