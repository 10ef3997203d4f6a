"""Idempotent writes: one record per (kind, id), whatever the retries.

A write first claims its id in the node's database with a hash of its canonical request (the
national ID already replaced by the borrower key, the document by its digest). A retry with the
same body gets the stored response and status code; a different body under the same id is a 409
`IdempotencyConflict`. Once a record has been signed and sent, the proposed terms and signatures
are saved with the claim, so a retry after a crash or a lost receipt resubmits exactly the same
record (which the chain then recognises) rather than a second, different one. A refusal is not
stored: nothing was recorded, so the same id may be tried again once it fits.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from api import store
from api.problems import Problem
from api.service.context import MemberContext
from api.service.peers import CosignRefused, PeerUnavailable
from ledger.chain.errors import ContractRevert
from ledger.rules import RuleError

Pending = dict[str, Any]
Save = Callable[[Pending], None]
Work = Callable[[Pending | None, Save], tuple[int, dict[str, Any]]]

# Errors that prove nothing was recorded: the claim is dropped so the id stays usable.
_REFUSALS = (ContractRevert, RuleError, Problem, CosignRefused, PeerUnavailable)


def request_hash(canonical: dict[str, Any]) -> str:
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def in_progress(kind: str, key: str) -> Problem:
    return Problem(409, "RequestInProgress", f"{kind} {key} is being written; retry", id=key)


def _started(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (/proc): with its pid, who it is."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


#: who holds a claim: this process, by host, pid and start time
OWNER = f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"
#: a claim held by a process this one cannot see (another host) is taken over after this long
STALE_S = 600


def _unpack(rec: store.IdempotencyRecord) -> tuple[Pending | None, str | None]:
    """(what an earlier attempt saved, who holds the claim) from the record's `pending` text."""
    if not rec.pending:
        return None, None
    try:
        saved = json.loads(rec.pending)
    except ValueError:  # a batch's claim marker: its own attempt, somewhere
        return None, rec.pending
    owner = saved.pop("owner", None)
    return (saved or None), owner


def _held_elsewhere(owner: str | None, updated_at: int) -> bool:
    """Whether another live attempt holds the claim. In this process the keyed lock already
    keeps a second thread out, so a claim of ours is an earlier attempt's, to resume. Another
    process on this host holds it while it runs; one elsewhere until the claim is stale."""
    if owner is None or owner == OWNER:
        return False
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if host == socket.gethostname() and pid.isdigit():
        return _started(int(pid)) == started
    return time.time() - updated_at < STALE_S


def claim(ctx: MemberContext, kind: str, key: str, h: str) -> store.IdempotencyRecord | None:
    """The record an earlier identical request left under (kind, key), to replay or resume;
    else None, with the id now claimed for this request. 409 IdempotencyConflict if another
    request used the id, RequestInProgress if one claims it at this very moment."""
    if store.put_pending(ctx.engine, kind, key, h, json.dumps({"owner": OWNER})):
        return None
    rec = store.get_record(ctx.engine, kind, key)
    if rec is None:  # claimed and dropped again at this very moment
        raise in_progress(kind, key)
    if rec.request_hash != h:
        raise Problem(
            409,
            "IdempotencyConflict",
            f"{kind} id {key} was already used with a different request",
            id=key,
        )
    if rec.state != "done":
        # a worker process of this node may be writing it now: resume only a claim whose
        # attempt is over, and take it over first, so two processes never both resume it
        saved, owner = _unpack(rec)
        mine = json.dumps({**(saved or {}), "owner": OWNER})
        if _held_elsewhere(owner, rec.updated_at) or not store.take_over(
            ctx.engine, kind, key, rec.pending, mine
        ):
            raise in_progress(kind, key)
    return rec


def run(
    ctx: MemberContext, kind: str, key: str, canonical: dict[str, Any], work: Work
) -> tuple[int, dict[str, Any], bool]:
    """(status, body, replayed). `work(pending, save)` does the write; `pending` is what an
    earlier attempt saved (None on a first attempt); `save` records progress."""
    h = request_hash(canonical)
    with ctx.locks((kind, key)):
        rec = claim(ctx, kind, key, h)
        pending: Pending | None = None
        if rec is not None:
            if rec.state == "done":
                return rec.status_code, json.loads(rec.response), True
            pending = _unpack(rec)[0]
        sent = bool(pending and pending.get("submitted"))

        def save(p: Pending) -> None:
            nonlocal sent
            store.save_pending(ctx.engine, kind, key, json.dumps({**p, "owner": OWNER}))
            sent = bool(p.get("submitted"))

        try:
            status, body = work(pending, save)
        except _REFUSALS:
            store.forget(ctx.engine, kind, key)
            raise
        except BaseException:
            # Unknown outcome (timeout, chain down): keep the claim once something was sent, so
            # the retry resumes with the same terms.
            if not sent:
                store.forget(ctx.engine, kind, key)
            raise
        store.finish(ctx.engine, kind, key, status, json.dumps(body))
        return status, body, False
