"""The node's alert service: a watcher that turns each newly indexed block into the member's
alerts (ledger.alerts) and keeps the new ones, and a sender that pushes them to the member's
webhooks, retrying with exponential backoff and parking a delivery that keeps failing.

Both run on threads of the node's follower process (api/follower.py), beside the indexer they
follow. The watcher looks at the indexer's cursor every `poll_s` and does nothing until it has
moved, so an idle node costs one small query per poll. The HTTP processes read the alerts the
watcher kept through `AlertReader`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select

from api.alerting import signing, store
from api.alerting.config import AlertSettings
from ledger.alerts import AlertInputs, QueuedProposal, compute, council_alerts
from ledger.domain import Policy, Role

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from api.service.follower_process import FollowerProcess

log = logging.getLogger("api.alerts")

DRIVEN_POLL_S = 30.0  # a watcher told of every commit looks on its own this often
SENDER_IDLE_S = 30.0  # the webhook sender, with no retry due, looks on its own this often
REORG_MARGIN = 256  # blocks looked at again on each pass: the indexer's own reorg window
_ROLES = {"platform": Role.PLATFORM, "lender": Role.LENDER, "auditor": Role.AUDITOR}


@dataclass
class FollowerContext:
    """What the alert watcher needs of the member (api.alerting.service): its address and role,
    the deployment, a read-only chain client and the node's own tables."""

    settings: Any
    address: str
    deployment: Any
    client: Any
    engine: Any

    @property
    def role(self) -> str:
        return str(self.settings.role)


@dataclass
class FollowedReads:
    """The read model as the alert watcher reads it: its database and its indexer's RPC."""

    engine: Any
    indexer: Any


class AlertService:
    def __init__(
        self, ctx: FollowerContext, reads: FollowedReads, settings: AlertSettings | None = None
    ) -> None:
        self.ctx = ctx
        self.reads = reads
        self.settings = settings or AlertSettings()
        self.engine = ctx.engine
        store.create(self.engine)
        self.latest_seq = store.last_seq(self.engine)
        self.head: int | None = None  # the newest block the watcher has judged
        self._stop = threading.Event()
        self._wake_sender = threading.Event()
        self.wake_event = self._wake_sender  # set from outside: look for due deliveries now
        self.on_judged: Callable[[int], None] | None = None  # told each block judged
        self.new_block = threading.Event()  # set when the indexer has committed new blocks
        self.driven = False  # True: `new_block` is set for every commit (api/follower.py)
        self._threads: list[threading.Thread] = []
        self.error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for name, target in (("alerts", self._watch), ("webhooks", self._send)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self.new_block.set()
        self._wake_sender.set()

    def wake(self) -> None:
        """Have the sender look for due deliveries now."""
        self._wake_sender.set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            # woken by each block the indexer beside it commits (`new_block`, set by the
            # follower); otherwise it looks every `poll_s`, or every DRIVEN_POLL_S when woken
            interval = DRIVEN_POLL_S if self.driven else self.settings.poll_s
            self.new_block.wait(interval)
            self.new_block.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
                self.error = None
            except Exception as exc:  # noqa: BLE001 - retried on the next poll
                self.error = f"{type(exc).__name__}: {exc}"
                # before the indexer's first range its tables may not exist yet: not worth a warning
                (log.debug if self.head is None else log.warning)(
                    "alert pass failed: %s", self.error
                )

    # ------------------------------------------------------------------ the watcher

    def run_once(self) -> int:
        """Judge the newest indexed block, if it is new; returns how many alerts were new."""
        from ledger.store.models import TABLES

        cur, blocks, pol = TABLES["indexer_cursor"], TABLES["blocks"], TABLES["policy_versions"]
        with self.reads.engine.connect() as conn:
            head = conn.execute(select(cur.c.last_block)).scalar()
            if head is None or head == self.head:
                return 0
            now = conn.execute(select(blocks.c.timestamp).where(blocks.c.number == head)).scalar()
            prow = conn.execute(
                select(pol).order_by(pol.c.version.desc()).limit(1)
            ).mappings().first()  # fmt: skip
            if now is None or prow is None:
                return 0
            policy = Policy(**{k: prow[k] for k in Policy.__dataclass_fields__ if k in prow})
            since = 0 if self.head is None else max(0, min(self.head, head) - REORG_MARGIN)
            inp = AlertInputs(self.ctx.address, _ROLES[self.ctx.role], head, int(now), since)
            alerts = compute(conn, inp, policy)
        alerts += council_alerts(self._queued(since, head), inp, policy)
        new = store.add_alerts(self.engine, alerts)
        self.head = head
        if self.on_judged is not None:
            self.on_judged(head)
        if new:
            self.latest_seq = max(r.seq or 0 for r in new)
            self._wake_sender.set()
            log.info("%d new alert(s) at block %d", len(new), head)
        return len(new)

    def _queued(self, since: int, head: int) -> list[QueuedProposal]:
        dep = self.ctx.deployment
        if not dep.council:
            return []
        from ledger.chain.events import find_events
        from ledger.governance import Council, ProposalState

        council = Council(self.ctx.client)
        found = find_events(
            self.reads.indexer.rpc,
            council.decoder,
            "ProposalScheduled",
            from_block=max(since, dep.deployment_block),
            to_block=head,
        )
        out = []
        registry = self.ctx.client.registry
        for ev in found:
            pid = bytes(ev.args["id"])
            st = council.status(pid)
            if st.state != ProposalState.SCHEDULED or st.target.lower() != dep.registry.lower():
                continue
            fn, params = registry.decode_function_input(st.data)
            args = dict(params)
            if fn.fn_name == "setPolicy":
                # web3 decodes the struct by name (a dict, in the ABI's order): its values, not
                # its keys, are the tuple Policy.from_abi reads
                raw = args["policy"]
                fields = raw.values() if isinstance(raw, dict) else raw
                args["policy"] = Policy.from_abi(tuple(fields))
            out.append(QueuedProposal(pid, ev.block_number, st.ready_at, fn.fn_name, args))
        return out

    # ------------------------------------------------------------------ webhooks

    def _send(self) -> None:
        with httpx.Client(timeout=self.settings.webhook_timeout_s, trust_env=False) as http:
            while not self._stop.is_set():
                pause = SENDER_IDLE_S
                try:
                    self.deliver_due(http)
                    due = store.next_due(self.engine)
                    if due is not None:
                        pause = min(max(due - time.time(), self.settings.poll_s), SENDER_IDLE_S)
                except Exception as exc:  # noqa: BLE001 - the database away: try again later
                    log.warning("webhook pass failed: %s", type(exc).__name__)
                    pause = max(self.settings.poll_s, 1.0)
                # Woken at once by new alerts and by a retry request (from the HTTP process over
                # the follower link); otherwise asleep until the next retry falls due, so an idle
                # node queries here twice a minute, not every second.
                self._wake_sender.wait(pause)
                self._wake_sender.clear()

    def deliver_due(self, http: httpx.Client) -> int:
        s = self.settings
        sent = 0
        for d, hook, alert in store.due(self.engine, time.time()):
            body = json.dumps(alert.to_json(), sort_keys=True, separators=(",", ":")).encode()
            headers = signing.headers(hook.secret, alert.alert_id, int(time.time()), body)
            started = time.perf_counter()
            status: int | None = None
            error = ""
            try:
                r = http.post(hook.url, content=body, headers=headers)
                status = r.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            ms = int((time.perf_counter() - started) * 1000)
            attempts = d.attempts + 1
            if not error:
                outcome, next_at = "delivered", 0.0
                sent += 1
            elif attempts >= s.webhook_attempts:
                outcome, next_at = "parked", 0.0
                log.warning("webhook %s: delivery %s parked after %d attempts", hook.id, d.id,
                            attempts)  # fmt: skip
            else:
                delay = min(s.webhook_backoff_s * 2 ** (attempts - 1), s.webhook_max_backoff_s)
                outcome, next_at = "pending", time.time() + delay
            assert d.id is not None
            store.record_attempt(self.engine, d.id, status, error, ms, outcome, next_at)
        return sent


class AlertReader:
    """An HTTP process's view of the alert service running in the node's follower process: the
    node's tables, the block the watcher last judged, and a way to wake its webhook sender."""

    def __init__(self, engine: Engine, follower: FollowerProcess) -> None:
        self.engine = engine
        self.follower = follower
        store.create(engine)

    @property
    def head(self) -> int | None:
        return self.follower.alerts_block

    def wake(self) -> None:
        self.follower.retry_webhooks()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
