"""`ledger demo`: the whole consortium story played against the running nodes, in order: the
lending story (ledger.localnet.story), then the council's part (ledger.localnet.story_council): a
policy change and a servicing transfer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.localnet.story import _next_run, _play, _Story
from ledger.localnet.story_council import council, servicing

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount


def run_story(
    urls: dict[str, str],
    state_dir: Path,
    *,
    accounts: dict[str, LocalAccount] | None = None,
    rpc_url: str | None = None,
    delay_s: int = 60,
) -> list[dict[str, Any]]:
    """Play the story against the nodes at `urls` (member name -> base URL), signing in with
    `accounts` (member name -> its key; default: the DEV-ONLY keys). `rpc_url` is the chain
    (default: the detached chain of `state_dir`); `delay_s` the timelock's delay to get past."""
    run = _next_run(state_dir)
    s = _Story(urls, accounts)
    try:
        _play(s, run)
        council(s, state_dir, rpc_url, delay_s)
        servicing(s, state_dir, run, rpc_url, delay_s)
    finally:
        s.close()
    return s.steps
