"""The node process's side of its follower (api/follower.py: the indexer and the alert watcher,
in a process of their own so they never hold the HTTP workers' interpreter lock).

The node process starts it, restarts it if it dies and reports it through readiness while it
is down (api/service/supervised.py), and stops it when the node stops. Extra HTTP workers of the
node (`workers` > 1, api/workers.py) only attach to the signal directory the node process made.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from api.service.follow_link import RETRY, HttpLink
from api.service.supervised import Supervised
from api.settings import NodeSettings


class FollowerProcess:
    """Spawns and supervises the node's follower (`spawn`), or attaches to the one another
    process of the node supervises."""

    def __init__(
        self,
        settings: NodeSettings,
        address: str,
        link_dir: Path | None = None,
        *,
        spawn: bool = True,
    ) -> None:
        self.settings = settings
        self.address = address
        self.spawn = spawn
        self.directory = link_dir
        self._own_directory = link_dir is None
        self.link: HttpLink | None = None
        self.child: Supervised | None = None

    def start(self) -> None:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="ledger-node-"))  # 0700
        if self.spawn:
            self.settings.save(self.directory / "settings.json")
        self.link = HttpLink(self.directory)
        if self.spawn:
            self.child = Supervised("indexer", self._argv, on_exit=self.link.forget)
            self.child.start()

    def _argv(self) -> list[str]:
        assert self.directory is not None
        return [
            sys.executable, "-m", "api.follower",
            "--settings", str(self.directory / "settings.json"),
            "--link", str(self.directory),
            "--address", self.address,
            "--parent", str(os.getpid()),
            "--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        ]  # fmt: skip

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
        if self.link is not None:
            self.link.close()
        if self._own_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    # ------------------------------------------------------------------ what readers use

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    @property
    def error(self) -> str | None:
        """Why the read model is not being kept now (None: it is)."""
        if self.link is None:
            return "the indexer process has not been started"
        if self.child is not None and self.child.error is not None:
            return self.child.error
        if self.child is None and not self.link.alive():
            return "the node's indexer process is not running"
        if not self.link.heard:
            return "the indexer process is starting"
        return None

    @property
    def block(self) -> int:
        return self.link.block if self.link is not None else -1

    @property
    def alerts_block(self) -> int | None:
        return self.link.alerts_block if self.link is not None else None

    def wait_for(self, block: int, timeout: float) -> int:
        if self.link is None or (self.child is not None and self.child.error is not None):
            return self.block  # nothing would come
        return self.link.wait_for(block, timeout)

    def retry_webhooks(self) -> None:
        if self.link is not None:
            self.link.send(RETRY)
