"""`POST /v1/loans/batch` on the platform node: up to 100 loans, each with its own outcome, at the
chain path's pace.

Every step that costs a round trip is taken once for the whole batch, never once per loan:

1. each loan's id is claimed (idempotency) in one database transaction; an id already recorded
   returns its stored result, one in progress its 409;
2. the loans are pre-checked against one snapshot of the chain read in one JSON-RPC batch,
   judged in order so that two loans to one borrower count against each other as on chain;
3. each lender node is asked once, for all the loans it funds (`POST /v1/cosign/batch`), every
   lender at the same time; it judges and signs them in bulk;
4. every signature is verified here (and again by the contract); a refusal, an unavailable
   lender or a bad signature fails that loan alone;
5. the loans that every party signed are saved with their signatures (a retry resumes with
   these very terms) and sent pipelined, as the chain path sends, through the node's one
   submission queue (api/service/submitter.py: non-atomic `originateBatch` transactions of 20
   loans, shared with any other request sending at the same time); a loan the contract refuses
   fails alone.

Nothing is sent for a loan that any step refused, and its claim is dropped so the id stays usable.
"""

from __future__ import annotations

import json
import queue
import threading
from concurrent.futures import Future
from typing import Any

from api import store
from api.problems import Problem, from_revert, from_rule
from api.schemas.common import chain_id_of
from api.schemas.records import BatchIn, BatchItem, BatchOut, LoanIn, RecordOut
from api.service import idem, originate, schedules
from api.service.book import judge_many
from api.service.context import MemberContext
from api.service.keeper import expire_due_lines
from api.service.peers import CosignRefused, PeerUnavailable
from api.service.platform import Platform
from ledger import schedule as sched
from ledger.chain.errors import ContractRevert, LedgerError
from ledger.domain import CoLoan, to_hex
from ledger.identity import InvalidResidentId
from ledger.records import terms_of
from ledger.rules import RuleError

Failure = Problem | RuleError | ContractRevert | InvalidResidentId
Schedule = tuple[int, tuple[sched.Instalment, ...]]  # (start, instalments)


class _Item:
    """One loan of the batch on its way through the steps."""

    __slots__ = (
        "i", "req", "loan_id", "key", "doc", "digest", "canonical", "loan", "sigs", "schedule"
    )  # fmt: skip

    def __init__(self, i: int, req: LoanIn, loan_id: str) -> None:
        self.i, self.req, self.loan_id = i, req, loan_id
        self.key = self.digest = b""
        self.doc: bytes | None = None
        self.canonical: dict[str, Any] = {}
        self.loan: CoLoan | None = None
        self.sigs: list[bytes] = []
        self.schedule: Schedule | None = None


def batch(p: Platform, req: BatchIn) -> BatchOut:
    ids = [to_hex(chain_id_of(body.loan_id, p.ctx.address)) for body in req.loans]
    with p.submitter.inflight.tracking(ids):  # GET /v1/originations/pending
        return _batch(p, req)


def _batch(p: Platform, req: BatchIn) -> BatchOut:
    ctx = p.ctx
    results: list[BatchItem | None] = [None] * len(req.loans)

    def fail(item: _Item, exc: Failure) -> None:
        results[item.i] = failed(item.loan_id, exc)

    items = _resolve(ctx, req, results)
    claimed = _claim(ctx, items, results)
    live = claimed
    try:
        live = _precheck(p, live, fail)
        live = _cosign(p, live, fail)
        sent = _save(ctx, live)
    except BaseException:
        store.forget_many(ctx.engine, "loan", [x.loan_id for x in live])
        raise
    unsettled: set[int] = set()
    try:
        unsettled = _submit(p, sent, results)
    finally:
        # refused at some step: the claim goes and the id stays usable
        refused = [x.loan_id for x in claimed if _refused(results[x.i]) and x.i not in unsettled]
        store.forget_many(ctx.engine, "loan", refused)
    done = [x for x in results if x is not None]
    accepted = sum(1 for x in done if x.status == 201)
    return BatchOut(accepted=accepted, rejected=len(done) - accepted, results=done)


def _resolve(ctx: MemberContext, req: BatchIn, results: list[BatchItem | None]) -> list[_Item]:
    items = []
    for i, body in enumerate(req.loans):
        item = _Item(i, body, to_hex(chain_id_of(body.loan_id, ctx.address)))
        try:
            item.key, item.doc, item.digest, item.canonical = originate.loan_request(ctx, body)
        except (Problem, InvalidResidentId) as exc:
            results[i] = failed(item.loan_id, exc)
            continue
        items.append(item)
    return items


def _claim(ctx: MemberContext, items: list[_Item], results: list[BatchItem | None]) -> list[_Item]:
    """Claim every id in one transaction; an id given twice in the batch is claimed once (its
    later copies are in progress)."""
    first: dict[str, _Item] = {}
    for x in items:
        if x.loan_id in first:
            results[x.i] = failed(x.loan_id, idem.in_progress("loan", x.loan_id))
        else:
            first[x.loan_id] = x
    hashes = {k: idem.request_hash(x.canonical) for k, x in first.items()}
    mine, others = store.claim_many(ctx.engine, "loan", hashes)
    for key, rec in others.items():
        x = first[key]
        if rec.request_hash != hashes[key]:
            problem = Problem(
                409,
                "IdempotencyConflict",
                f"loan id {key} was already used with a different request",
                id=key,
            )
            results[x.i] = failed(key, problem)
        elif rec.state == "done":
            out = RecordOut.model_validate_json(rec.response)
            results[x.i] = BatchItem(loan_id=key, status=rec.status_code, result=out)
        else:
            results[x.i] = failed(key, idem.in_progress("loan", key))
    return [first[k] for k in first if k in mine]


def _precheck(p: Platform, items: list[_Item], fail: Any) -> list[_Item]:
    """Build every loan at one clock and judge them all against one snapshot."""
    if not items:
        return []
    _block, now = p.chain.now()
    built = []
    for x in items:
        try:
            if x.req.schedule is not None:
                x.schedule = schedules.build(x.req.schedule, x.req.principal, now, x.req.term_days)
            x.loan = originate.build_loan(p.ctx, x.req, x.key, x.digest, now, x.schedule)
        except Problem as exc:
            fail(x, exc)
            continue
        built.append(x)
    return _judge(p, built, fail)


def _judge(p: Platform, items: list[_Item], fail: Any) -> list[_Item]:
    loans = [x.loan for x in items if x.loan is not None]
    verdicts, _now = judge_many(p.chain, loans)
    stale = {
        x.key
        for x, v in zip(items, verdicts, strict=True)
        if v is not None and v.code in originate.EXPIRED_LINE_CODES
    }
    # a borrower's line past its expiry still counts until expired: expire, then judge again
    if stale and sum(expire_due_lines(p.ctx, p.chain, k) for k in stale):
        verdicts, _now = judge_many(p.chain, loans)
    live = []
    for x, v in zip(items, verdicts, strict=True):
        if v is None:
            live.append(x)
        else:
            fail(x, originate.precheck_problem(p.ctx, v, "loan"))
    return live


def _cosign(p: Platform, items: list[_Item], fail: Any) -> list[_Item]:
    """One request to each lender node for all the loans it funds, all lenders at once; then
    the platform's own signature and the verification of every one."""
    ctx = p.ctx
    asks: dict[str, list[_Item]] = {}
    for x in items:
        assert x.loan is not None
        for s in x.loan.signers:
            if s != ctx.address:
                asks.setdefault(s, []).append(x)
    answers = (
        p.peers.cosign_batches(
            "loan",
            {ln: [terms_of(x.loan) for x in xs if x.loan is not None] for ln, xs in asks.items()},
            {ln: [_schedule_of(x) for x in xs] for ln, xs in asks.items()},
        )
        if asks
        else {}
    )
    got: dict[int, dict[str, bytes | CosignRefused | PeerUnavailable]] = {}
    for ln, xs in asks.items():
        answer = answers[ln]
        for k, x in enumerate(xs):
            got.setdefault(x.i, {})[ln] = (
                answer if isinstance(answer, PeerUnavailable) else answer[k]
            )
    live = []
    for x in items:
        assert x.loan is not None
        mine = got.get(x.i, {})
        # as for one loan: a lender that is down is reported before one that refused
        down = [a for a in mine.values() if isinstance(a, PeerUnavailable)]
        no = [a for a in mine.values() if isinstance(a, CosignRefused)]
        try:
            if down:
                raise originate.unavailable(down[0])
            if no:
                raise originate.refused(ctx, "loan", no[0])
            sigs = {ln: a for ln, a in mine.items() if isinstance(a, bytes)}
            x.sigs = originate.signed_by_all(ctx, x.loan, sigs)
        except Problem as exc:
            fail(x, exc)
            continue
        live.append(x)
    return live


def _schedule_of(x: _Item) -> dict[str, Any] | None:
    """What a lender node gets beside a loan's terms: its schedule, if it has one."""
    return None if x.schedule is None else schedules.terms_json(*x.schedule)


def _save(ctx: MemberContext, items: list[_Item]) -> list[_Item]:
    """Each document stored and each signed loan saved with its claim before anything is sent:
    from here on a retry resumes with these very terms."""
    for x in items:
        if x.doc is not None:
            ctx.documents.put(x.doc)
        if x.schedule is not None and x.loan is not None:
            schedules.save(ctx.engine, x.loan, *x.schedule)
    pending = {
        x.loan_id: json.dumps(originate.pending_of(x.loan, x.sigs))
        for x in items
        if x.loan is not None
    }
    store.save_pending_many(ctx.engine, "loan", pending)
    return items


def _refused(result: BatchItem | None) -> bool:
    return result is not None and result.status != 201


def _submit(p: Platform, items: list[_Item], results: list[BatchItem | None]) -> set[int]:
    """Send; record each outcome. The items whose outcome is unknown (kept claimed)."""
    unsettled: set[int] = set()
    if not items:
        return unsettled
    ctx = p.ctx
    sent = [(x.loan, x.sigs) for x in items if x.loan is not None]
    outcomes = p.submitter.originate_many(sent)
    done: dict[str, tuple[int, str]] = {}
    for x, outcome in zip(items, outcomes, strict=True):
        assert x.loan is not None
        if isinstance(outcome, ContractRevert):
            ctx.metrics.rejected("loan", outcome.code, outcome.rule, "contract")
            results[x.i] = failed(x.loan_id, outcome)
        elif isinstance(outcome, LedgerError):
            # sent, outcome unknown: the claim keeps the signed terms, a retry of this loan
            # (POST /v1/loans with the same body) resumes and settles it
            problem = Problem(504, "ReceiptTimeout", f"{outcome}; retry to settle", id=x.loan_id)
            results[x.i] = BatchItem(loan_id=x.loan_id, status=504, problem=problem.body())
            unsettled.add(x.i)
        else:
            ctx.metrics.submitted("loan")
            out = originate.record_out(x.loan, outcome.tx_hash, outcome.block_number)
            done[x.loan_id] = (201, out.model_dump_json(exclude_none=True))
            results[x.i] = BatchItem(loan_id=x.loan_id, status=201, result=out)
    store.finish_many(ctx.engine, "loan", done)
    return unsettled


def failed(loan_id: str, exc: Failure) -> BatchItem:
    if isinstance(exc, InvalidResidentId):
        problem = Problem(
            422,
            "InvalidResidentId",
            str(exc),
            errors=[{"field": exc.field, "rule": exc.rule, "message": str(exc)}],
        )
    elif isinstance(exc, RuleError):
        problem = from_rule(exc)
    elif isinstance(exc, ContractRevert):
        problem = from_revert(exc)
    else:
        problem = exc
    return BatchItem(loan_id=loan_id, status=problem.status, problem=problem.body())


_Waiter = tuple[Platform, CoLoan, "Schedule | None", Future[list[bytes]]]


class Gatherer:
    """Single-loan requests arriving together are pre-checked and co-signed together: each
    request thread hands over its loan and waits; one thread takes every loan waiting, judges
    them against one snapshot (in arrival order, each accepted one counting against the next:
    of two racing loans to one borrower only what fits passes) and asks each lender node once
    for all of them. Each loan gets its own signatures or its own refusal, exactly as alone."""

    def __init__(self, most: int = 100) -> None:
        self.most = most
        self._queue: queue.SimpleQueue[_Waiter | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def agree(self, p: Platform, loan: CoLoan, schedule: Schedule | None = None) -> list[bytes]:
        """Every party's verified signature over `loan` (with its `schedule`, which the lender
        nodes check against the signed digest), in tranche order; or the refusal."""
        fut: Future[list[bytes]] = Future()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gatherer", daemon=True)
                self._thread.start()
        self._queue.put((p, loan, schedule, fut))
        return fut.result()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.most:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                group.append(more)
            self._settle(group)

    @staticmethod
    def _settle(group: list[_Waiter]) -> None:
        p = group[0][0]
        items = []
        for i, (_p, loan, schedule, _f) in enumerate(group):
            x = _Item(i, None, to_hex(loan.loan_id))  # type: ignore[arg-type]
            x.loan, x.key, x.schedule = loan, loan.borrower_key, schedule
            items.append(x)
        errors: dict[int, BaseException] = {}

        def fail(x: _Item, exc: BaseException) -> None:
            errors[x.i] = exc

        try:
            _cosign(p, _judge(p, items, fail), fail)
        except BaseException as exc:  # noqa: BLE001 - every waiter hears of it
            for _p, _loan, _s, fut in group:
                fut.set_exception(exc)
            return
        for x, (_p, _loan, _s, fut) in zip(items, group, strict=True):
            if x.i in errors:
                fut.set_exception(errors[x.i])
            else:
                fut.set_result(x.sigs)
