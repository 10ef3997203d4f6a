"""The platform node's co-origination: validate, pre-check with ledger.rules, collect every
lender's co-signature over HTTP, verify them, submit, wait for the receipt.

Nothing is sent to the chain unless every party signed and every signature verifies, so a
refusal by any lender, an unreachable lender node or a bad signature costs no transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.problems import Problem, from_revert, from_rule
from api.schemas.common import BorrowerRef, chain_id_of, decode_document
from api.schemas.records import LineIn, LineTerms, LoanIn, LoanTerms, RecordOut
from api.service import idem, schedules
from api.service.book import judge
from api.service.context import MemberContext
from api.service.keeper import expire_due_lines
from api.service.peers import CosignRefused, PeerUnavailable
from api.service.platform import Platform
from ledger import provenance
from ledger import schedule as sched
from ledger.chain.errors import ContractRevert
from ledger.documents import document_digest
from ledger.domain import ZERO32, CoLoan, CreditLine, LineStatus, Tranche, sort_tranches, to_hex
from ledger.records import product_of, repayment_of, terms_of
from ledger.rules import RuleError, Violation


def resolve_borrower(ctx: MemberContext, ref: BorrowerRef) -> bytes:
    """The borrower key; a national ID is validated here (InvalidResidentId: 422), keyed by the
    key service (the node holds no pepper) and then dropped."""
    if ref.borrower_key is not None:
        return bytes.fromhex(ref.borrower_key[2:])
    assert ref.borrower_id is not None
    return ctx.keys.derive(ref.borrower_id, "origination")


def _document(value: str | None) -> tuple[bytes | None, bytes]:
    if value is None:
        return None, ZERO32
    data = decode_document(value)
    return data, document_digest(data)


def _canonical(req: LoanIn | LineIn, owner: str, key: bytes, digest: bytes) -> dict[str, Any]:
    """The request as it is compared between retries: never the national ID, never the document,
    tranches in canonical order so their order in the request does not matter."""
    body = req.model_dump(mode="json", exclude={"borrower_id", "borrower_key", "document"})
    # Ids as they go on chain: "loan-1" and its keccak256 in hex are one and the same id.
    for name in ("loan_id", "line_id"):
        if body.get(name) is not None:
            body[name] = to_hex(chain_id_of(body[name], owner))
    body["borrower_key"] = to_hex(key)
    body["document_digest"] = to_hex(digest)
    for name in ("tranches", "shares"):
        if name in body:
            body[name] = sorted(body[name], key=lambda s: int(s["lender"], 16))
    return body


def _tranches(shares: list[Any]) -> tuple[Tranche, ...]:
    return sort_tranches([Tranche(s.lender, s.amount) for s in shares])


def unavailable(exc: PeerUnavailable) -> Problem:
    return Problem(
        503,
        "LenderNodeUnavailable",
        f"the node of lender {exc.lender} is unavailable ({exc.reason}); nothing was submitted",
        lender=exc.lender,
    )


def refused(ctx: MemberContext, kind: str, exc: CosignRefused) -> Problem:
    """A lender's refusal as this node's problem, the lender's own numbers passed through."""
    got = exc.problem
    ctx.metrics.rejected(kind, str(got.get("code")), got.get("rule"), "lender")
    problem = Problem(
        409 if exc.status == 409 else 502,
        str(got.get("code", "CosignRefused")),
        f"lender {exc.lender} refused to co-sign: {got.get('detail', got.get('code'))}",
        title="Co-signature refused",
    )
    skip = ("type", "title", "status", "detail", "code", "instance")
    problem.extra.update({k: v for k, v in got.items() if k not in skip})
    problem.extra["lender"] = exc.lender
    return problem


def signed_by_all(
    ctx: MemberContext, record: CoLoan | CreditLine, cosigned: dict[str, bytes]
) -> list[bytes]:
    """The platform's own signature plus every lender's (`cosigned`), in tranche order, all
    verified (502 InvalidCosignature naming the lender otherwise)."""
    d = provenance.digest(ctx.client.domain, record)
    own = provenance.sign_digest(ctx.account.key, d)
    sigs = [own if s == ctx.address else cosigned[s] for s in record.signers]
    try:
        # its own signature was made here over this very digest: only the lenders' are recovered
        provenance.verify_with(
            ctx.client.domain, record, sigs, frozenset({ctx.address}), message_digest=d
        )
    except provenance.SignatureError as exc:
        raise Problem(
            502,
            "InvalidCosignature",
            f"signature from {exc.signer}: {exc.reason}",
            lender=exc.signer,
        ) from None
    return sigs


def _sign_and_verify(
    p: Platform, record: CoLoan | CreditLine, kind: str, extra: dict[str, Any] | None = None
) -> list[bytes]:
    """The platform's own signature plus every lender's, in tranche order, all verified."""
    ctx = p.ctx
    others = [s for s in record.signers if s != ctx.address]
    try:
        cosigned = p.peers.cosign_all(others, kind, terms_of(record), extra) if others else {}
    except PeerUnavailable as exc:
        raise unavailable(exc) from None
    except CosignRefused as exc:
        raise refused(ctx, kind, exc) from None
    return signed_by_all(ctx, record, cosigned)


_SHARES_CODES = frozenset({"TrancheSumMismatch", "PlatformTrancheMissing"})


# the refusals a line past its expiry but not yet marked expired can cause
EXPIRED_LINE_CODES = frozenset({"BorrowerCapExceeded", "TooManyInstitutions"})


def _precheck(p: Platform, record: CoLoan | CreditLine, kind: str) -> None:
    v, _now = judge(p.chain, record)
    if (
        v is not None
        and v.code in EXPIRED_LINE_CODES
        and expire_due_lines(p.ctx, p.chain, record.borrower_key)
    ):
        v, _now = judge(p.chain, record)  # the expired lines no longer count
    if v is not None:
        raise precheck_problem(p.ctx, v, kind)


def precheck_problem(ctx: MemberContext, v: Violation, kind: str) -> Problem | RuleError:
    """The refusal of a record the pre-check judged to break rule `v`, counted."""
    ctx.metrics.rejected(kind, v.code, v.rule, "precheck")
    if v.code in _SHARES_CODES:
        # Terms that contradict themselves: name the request field that is wrong.
        problem = from_rule(RuleError(v))
        name = "tranches" if kind == "loan" else "shares"
        problem.extra["errors"] = [{"field": name, "rule": v.code, "message": problem.detail}]
        return problem
    return RuleError(v)


def _submitted_refusal(ctx: MemberContext, kind: str, exc: ContractRevert) -> Problem:
    ctx.metrics.rejected(kind, exc.code, exc.rule, "contract")
    return from_revert(exc)


def build_loan(
    ctx: MemberContext,
    req: LoanIn,
    key: bytes,
    digest: bytes,
    now: int,
    schedule: tuple[int, tuple[sched.Instalment, ...]] | None = None,
) -> CoLoan:
    """The loan's terms; with its `schedule` (start, instalments), the schedule's digest and the
    all-in APR computed from it (a declared apr_bps must match: AprMismatch)."""
    apr_bps, schedule_digest, term_days, words = req.apr_bps, ZERO32, req.term_days, ()
    if schedule is not None:
        start, rows = schedule
        term_days = schedules.term_days(req.term_days, start, rows)
        computed = schedules.all_in_apr(req.principal, start, rows)
        apr_bps = schedules.check_declared(req.apr_bps, computed)
        schedule_digest = sched.digest(rows)
        words = sched.words(rows)
    if apr_bps is None or term_days is None:  # LoanIn requires them or a schedule
        raise Problem(422, "InvalidSchedule", "give apr_bps and term_days, or a schedule")
    loan = CoLoan(
        loan_id=chain_id_of(req.loan_id, ctx.address),
        borrower_key=key,
        platform=ctx.address,
        product=product_of(req.product),
        principal=req.principal,
        apr_bps=apr_bps,
        term_days=term_days,
        repayment=repayment_of(req.repayment),
        deadline=now + ctx.settings.cosign_deadline_s,
        tranches=_tranches(req.tranches),
        line_id=chain_id_of(req.line_id, ctx.address) if req.line_id else ZERO32,
        document_digest=digest,
        schedule_digest=schedule_digest,
        schedule=words,
    )
    if words:
        schedules.chain_check(loan)
    return loan


def prepare_loan(
    p: Platform, req: LoanIn, doc: bytes | None, digest: bytes, key: bytes, now: int
) -> tuple[CoLoan, list[bytes]]:
    """Build, pre-check and collect signatures for one loan (steps 2-4), its terms dated by
    the chain's clock `now`."""
    schedule = (
        None
        if req.schedule is None
        else schedules.build(req.schedule, req.principal, now, req.term_days)
    )
    loan = build_loan(p.ctx, req, key, digest, now, schedule)
    if schedule is not None:
        schedules.save(p.ctx.engine, loan, *schedule)
    # pre-checked and co-signed together with any other loans being requested at this moment
    sigs = p.gatherer.agree(p, loan, schedule)
    if doc is not None:
        p.ctx.documents.put(doc)  # stored encrypted before its digest can land on chain
    return loan, sigs


def _agree(
    p: Platform,
    record: CoLoan | CreditLine,
    kind: str,
    doc: bytes | None,
    extra: dict[str, Any] | None = None,
) -> list[bytes]:
    """Pre-check `record`, collect and verify every party's signature (the lender nodes get
    `extra`, a loan's schedule, beside the terms), store its document."""
    _precheck(p, record, kind)
    sigs = _sign_and_verify(p, record, kind, extra)
    if doc is not None:
        p.ctx.documents.put(doc)  # stored encrypted before its digest can land on chain
    return sigs


def _send(p: Platform, kind: str, send: Callable[[], Any]) -> Any:
    """Submit; a contract refusal becomes its problem, counted either way."""
    try:
        result = send()
    except ContractRevert as exc:
        raise _submitted_refusal(p.ctx, kind, exc) from None
    p.ctx.metrics.submitted(kind)
    return result


def loan_request(
    ctx: MemberContext, req: LoanIn
) -> tuple[bytes, bytes | None, bytes, dict[str, Any]]:
    key = resolve_borrower(ctx, req)
    doc, digest = _document(req.document)
    return key, doc, digest, _canonical(req, ctx.address, key, digest)


def pending_of(record: CoLoan | CreditLine, sigs: list[bytes]) -> idem.Pending:
    """What is saved once a record is signed and sent: a retry resumes with these very terms."""
    return {"terms": terms_of(record), "signatures": [to_hex(s) for s in sigs], "submitted": True}


def _signatures(pending: idem.Pending) -> list[bytes]:
    return [bytes.fromhex(s[2:]) for s in pending["signatures"]]


def originate(p: Platform, req: LoanIn, clock: int | None) -> tuple[int, dict[str, Any], bool]:
    """One co-loan, idempotent by its id. `clock`: the chain's clock as the request's caller
    was read with it (Principal.clock), else read here. It dates the terms: the co-signing
    deadline and a schedule's start, both committed in what every party signs; a clock read a
    moment before only brings the deadline that moment earlier."""
    ctx = p.ctx
    key, doc, digest, canonical = loan_request(ctx, req)
    loan_id = to_hex(chain_id_of(req.loan_id, ctx.address))

    def work(pending: idem.Pending | None, save: idem.Save) -> tuple[int, dict[str, Any]]:
        if pending and "terms" in pending:
            loan = schedules.with_held(
                ctx.engine, LoanTerms.model_validate(pending["terms"]).record()
            )
            sigs = _signatures(pending)
        else:
            now = clock if clock is not None else p.chain.now()[1]
            loan, sigs = prepare_loan(p, req, doc, digest, key, now)
            save(pending_of(loan, sigs))
        result = _send(p, "loan", lambda: p.submitter.originate(loan, sigs))
        tx, block = result.tx_hash, result.block_number
        if result.already_recorded:
            tx, block = p.chain.event_location("LoanOriginated", loanId=loan.loan_id)
        return 201, record_out(loan, tx, block).model_dump(exclude_none=True)

    with p.submitter.inflight.tracking([loan_id]):  # GET /v1/originations/pending
        return idem.run(ctx, "loan", loan_id, canonical, work)


def record_out(record: CoLoan | CreditLine, tx: str | None, block: int) -> RecordOut:
    digest = None if record.document_digest == ZERO32 else to_hex(record.document_digest)
    ident = (
        {"loan_id": to_hex(record.loan_id)}
        if isinstance(record, CoLoan)
        else {"line_id": to_hex(record.line_id)}
    )
    return RecordOut(
        **ident,
        borrower_key=to_hex(record.borrower_key),
        tx_hash=tx,
        block_number=block,
        status="active",
        document_digest=digest,
    )


def grant_line(p: Platform, req: LineIn) -> tuple[int, dict[str, Any], bool]:
    ctx = p.ctx
    key = resolve_borrower(ctx, req)
    doc, digest = _document(req.document)
    canonical = _canonical(req, ctx.address, key, digest)
    line_id = chain_id_of(req.line_id, ctx.address)

    def work(pending: idem.Pending | None, save: idem.Save) -> tuple[int, dict[str, Any]]:
        if pending and "terms" in pending:
            line = LineTerms.model_validate(pending["terms"]).record()
            sigs = _signatures(pending)
            if p.chain.line_state(line.line_id).status != LineStatus.NONE:
                # landed before the earlier attempt saw its receipt
                tx, block = p.chain.event_location("LineGranted", lineId=line.line_id)
                return 201, record_out(line, tx, block).model_dump(exclude_none=True)
        else:
            _block, now = p.chain.now()
            line = CreditLine(
                line_id=line_id,
                borrower_key=key,
                platform=ctx.address,
                product=product_of(req.product),
                limit=req.limit,
                expires_at=req.expires_at,
                deadline=now + ctx.settings.cosign_deadline_s,
                shares=_tranches(req.shares),
                document_digest=digest,
            )
            sigs = _agree(p, line, "line", doc)
            save(pending_of(line, sigs))
        receipt = _send(p, "line", lambda: ctx.client.grant_line(line, sigs))
        out = record_out(line, receipt.tx_hash, receipt.block_number)
        return 201, out.model_dump(exclude_none=True)

    return idem.run(ctx, "line", to_hex(line_id), canonical, work)
