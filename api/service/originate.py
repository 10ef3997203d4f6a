"""The platform node's co-origination: validate, pre-check with ledger.rules, collect every
lender's co-signature over HTTP, verify them, submit, wait for the receipt.

Nothing is sent to the chain unless every party signed and every signature verifies, so a
refusal by any lender, an unreachable lender node or a bad signature costs no transaction.
"""

from __future__ import annotations

from typing import Any

from api.problems import Problem, from_revert, from_rule
from api.schemas.common import BorrowerRef, chain_id_of, decode_document, product_of, repayment_of
from api.schemas.records import LineIn, LoanIn, RecordOut
from api.service import idem
from api.service.book import snapshot
from api.service.node import Node
from api.service.peers import CosignRefused, PeerUnavailable
from api.service.terms import line_of, line_terms, loan_of, loan_terms
from ledger import provenance
from ledger.chain.errors import ContractRevert
from ledger.documents import document_digest
from ledger.domain import ZERO32, CoLoan, CreditLine, Tranche, sort_tranches, to_hex
from ledger.identity import borrower_key
from ledger.rules import RuleError, check_line, check_loan


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def resolve_borrower(node: Node, ref: BorrowerRef) -> bytes:
    """The borrower key; a national ID is keyed here and then dropped (InvalidResidentId: 422)."""
    if ref.borrower_key is not None:
        return bytes.fromhex(ref.borrower_key[2:])
    assert ref.borrower_id is not None
    return borrower_key(ref.borrower_id, node.pepper)


def _document(value: str | None) -> tuple[bytes | None, bytes]:
    if value is None:
        return None, ZERO32
    data = decode_document(value)
    return data, document_digest(data)


def _canonical(req: LoanIn | LineIn, key: bytes, digest: bytes) -> dict[str, Any]:
    """The request as it is compared between retries: never the national ID, never the document,
    tranches in canonical order so their order in the request does not matter."""
    body = req.model_dump(mode="json", exclude={"borrower_id", "borrower_key", "document"})
    # Ids as they go on chain: "loan-1" and its keccak256 in hex are one and the same id.
    for name in ("loan_id", "line_id"):
        if body.get(name) is not None:
            body[name] = _hex(chain_id_of(body[name]))
    body["borrower_key"] = _hex(key)
    body["document_digest"] = _hex(digest)
    for name in ("tranches", "shares"):
        if name in body:
            body[name] = sorted(body[name], key=lambda s: int(s["lender"], 16))
    return body


def _tranches(shares: list[Any]) -> tuple[Tranche, ...]:
    return sort_tranches([Tranche(s.lender, s.amount) for s in shares])


def _sign_and_verify(node: Node, record: CoLoan | CreditLine, kind: str) -> list[bytes]:
    """The platform's own signature plus every lender's, in tranche order, all verified."""
    others = [s for s in record.signers if s != node.address]
    terms = loan_terms(record) if isinstance(record, CoLoan) else line_terms(record)
    try:
        cosigned = node.peers.cosign_all(others, kind, terms) if others else {}
    except PeerUnavailable as exc:
        raise Problem(
            503,
            "LenderNodeUnavailable",
            f"the node of lender {exc.lender} is unavailable ({exc.reason}); nothing was submitted",
            lender=exc.lender,
        ) from None
    except CosignRefused as exc:
        node.metrics.rejected(kind, str(exc.problem.get("code")), exc.problem.get("rule"), "lender")
        p = exc.problem
        problem = Problem(
            409 if exc.status == 409 else 502,
            str(p.get("code", "CosignRefused")),
            f"lender {exc.lender} refused to co-sign: {p.get('detail', p.get('code'))}",
            title="Co-signature refused",
        )
        # The lender's own numbers (requested, max_tranche, a rule's values) pass through.
        skip = ("type", "title", "status", "detail", "code", "instance")
        problem.extra.update({k: v for k, v in p.items() if k not in skip})
        problem.extra["lender"] = exc.lender
        raise problem from None
    own = provenance.sign(node.account.key, node.client.domain, record)
    sigs = [own if s == node.address else cosigned[s] for s in record.signers]
    try:
        provenance.verify_with(node.client.domain, record, sigs, frozenset())
    except provenance.SignatureError as exc:
        raise Problem(
            502,
            "InvalidCosignature",
            f"signature from {exc.signer}: {exc.reason}",
            lender=exc.signer,
        ) from None
    return sigs


_SHARES_CODES = frozenset({"TrancheSumMismatch", "PlatformTrancheMissing"})


def _precheck(node: Node, record: CoLoan | CreditLine, kind: str) -> None:
    book, _block, now = snapshot(node.client, record)
    v = (
        check_loan(book, record, now)
        if isinstance(record, CoLoan)
        else check_line(book, record, now)
    )
    if v is not None:
        node.metrics.rejected(kind, v.code, v.rule, "precheck")
        if v.code in _SHARES_CODES:
            # Terms that contradict themselves: name the request field that is wrong.
            problem = from_rule(RuleError(v))
            name = "tranches" if kind == "loan" else "shares"
            problem.extra["errors"] = [{"field": name, "rule": v.code, "message": problem.detail}]
            raise problem
        raise RuleError(v)


def _submitted_refusal(node: Node, kind: str, exc: ContractRevert) -> Problem:
    node.metrics.rejected(kind, exc.code, exc.rule, "contract")
    return from_revert(exc)


def build_loan(node: Node, req: LoanIn, key: bytes, digest: bytes, now: int) -> CoLoan:
    return CoLoan(
        loan_id=chain_id_of(req.loan_id),
        borrower_key=key,
        platform=node.address,
        product=product_of(req.product),
        principal=req.principal,
        apr_bps=req.apr_bps,
        term_days=req.term_days,
        repayment=repayment_of(req.repayment),
        deadline=now + node.settings.cosign_deadline_s,
        tranches=_tranches(req.tranches),
        line_id=chain_id_of(req.line_id) if req.line_id else ZERO32,
        document_digest=digest,
    )


def prepare_loan(
    node: Node, req: LoanIn, doc: bytes | None, digest: bytes, key: bytes
) -> tuple[CoLoan, list[bytes]]:
    """Build, pre-check and collect signatures for one loan (steps 2-4)."""
    _block, now = node.chain_now()
    loan = build_loan(node, req, key, digest, now)
    _precheck(node, loan, "loan")
    sigs = _sign_and_verify(node, loan, "loan")
    if doc is not None:
        node.documents.put(doc)  # stored encrypted before its digest can land on chain
    return loan, sigs


def loan_request(node: Node, req: LoanIn) -> tuple[bytes, bytes | None, bytes, dict[str, Any]]:
    key = resolve_borrower(node, req)
    doc, digest = _document(req.document)
    return key, doc, digest, _canonical(req, key, digest)


def originate(node: Node, req: LoanIn) -> tuple[int, dict[str, Any], bool]:
    key, doc, digest, canonical = loan_request(node, req)
    loan_id = _hex(chain_id_of(req.loan_id))

    def work(pending: idem.Pending | None, save: idem.Save) -> tuple[int, dict[str, Any]]:
        if pending and "terms" in pending:
            loan = loan_of(pending["terms"])
            sigs = [bytes.fromhex(s[2:]) for s in pending["signatures"]]
        else:
            loan, sigs = prepare_loan(node, req, doc, digest, key)
            save(
                {
                    "terms": loan_terms(loan),
                    "signatures": [_hex(s) for s in sigs],
                    "submitted": True,
                }
            )
        try:
            result = node.client.originate(loan, sigs)
        except ContractRevert as exc:
            raise _submitted_refusal(node, "loan", exc) from None
        node.metrics.submitted("loan")
        tx, block = result.tx_hash, result.block_number
        if result.already_recorded:
            tx, block = _event_location(node, "LoanOriginated", loanId=loan.loan_id)
        return 201, record_out(loan, tx, block).model_dump(exclude_none=True)

    return idem.run(node, "loan", loan_id, canonical, work)


def record_out(record: CoLoan | CreditLine, tx: str | None, block: int) -> RecordOut:
    digest = None if record.document_digest == ZERO32 else _hex(record.document_digest)
    if isinstance(record, CoLoan):
        return RecordOut(
            loan_id=_hex(record.loan_id),
            borrower_key=_hex(record.borrower_key),
            tx_hash=tx,
            block_number=block,
            status="active",
            document_digest=digest,
        )
    return RecordOut(
        line_id=_hex(record.line_id),
        borrower_key=_hex(record.borrower_key),
        tx_hash=tx,
        block_number=block,
        status="active",
        document_digest=digest,
    )


def _event_location(node: Node, event: str, **filters: bytes) -> tuple[str | None, int]:
    """Where an already-recorded record landed, found by its indexed id."""
    found = node.client.events(event, from_block=node.deployment.deployment_block, **filters)
    if not found:
        return None, 0
    return to_hex(found[0].tx_hash), found[0].block_number


def grant_line(node: Node, req: LineIn) -> tuple[int, dict[str, Any], bool]:
    key = resolve_borrower(node, req)
    doc, digest = _document(req.document)
    canonical = _canonical(req, key, digest)
    line_id = chain_id_of(req.line_id)

    def work(pending: idem.Pending | None, save: idem.Save) -> tuple[int, dict[str, Any]]:
        if pending and "terms" in pending:
            line = line_of(pending["terms"])
            sigs = [bytes.fromhex(s[2:]) for s in pending["signatures"]]
            rec, _k = node.client.call(node.client.ledger, "lineState", line.line_id)
            if rec[3] != 0:  # landed before the earlier attempt saw its receipt
                tx, block = _event_location(node, "LineGranted", lineId=line.line_id)
                return 201, record_out(line, tx, block).model_dump(exclude_none=True)
        else:
            _block, now = node.chain_now()
            line = CreditLine(
                line_id=line_id,
                borrower_key=key,
                platform=node.address,
                product=product_of(req.product),
                limit=req.limit,
                expires_at=req.expires_at,
                deadline=now + node.settings.cosign_deadline_s,
                shares=_tranches(req.shares),
                document_digest=digest,
            )
            _precheck(node, line, "line")
            sigs = _sign_and_verify(node, line, "line")
            if doc is not None:
                node.documents.put(doc)
            save(
                {
                    "terms": line_terms(line),
                    "signatures": [_hex(s) for s in sigs],
                    "submitted": True,
                }
            )
        try:
            receipt = node.client.grant_line(line, sigs)
        except ContractRevert as exc:
            raise _submitted_refusal(node, "line", exc) from None
        node.metrics.submitted("line")
        out = record_out(line, receipt.tx_hash, receipt.block_number)
        return 201, out.model_dump(exclude_none=True)

    return idem.run(node, "line", _hex(line_id), canonical, work)
