"""RFC 9457 problem details: every error leaves a node as `application/problem+json` with a stable
`code` (the rule's or the contract error's name) and the numbers that explain it.

A rule refusal carries the contract error's arguments as extension members, so a client sees
`{"code": "BorrowerCapExceeded", "rule": "R1/R2", "exposure": ..., "requested": ..., "cap": ...,
"headroom": ...}` whether the Python pre-check or the contract refused it.
Nothing here echoes request input: a validation error names the field and the rule it broke,
never the value (it could be a national ID).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from requests.exceptions import RequestException
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.chain.errors import RULE_CODES, ContractRevert, LedgerError, ReceiptTimeout
from ledger.identity import InvalidResidentId
from ledger.keyclient import KeyServiceError
from ledger.rules import RuleError

log = logging.getLogger("api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:joint-lending-ledger:problem:"
_RESERVED = {"type", "title", "status", "detail", "instance", "code", "rule"}

# Contract and rule codes by HTTP status. A rule refusal or a clash with recorded state is a
# 409; terms that can never be valid are a 400; a party that may not act is a 403.
_STATUS_BY_CODE: dict[str, int] = {
    **dict.fromkeys(RULE_CODES, 409),
    **dict.fromkeys(
        [
            "IdAlreadyUsed",
            "LineLimitExceeded",
            "LineNotActive",
            "LineFrozen",
            "LineMismatch",
            "RepaymentExceedsOutstanding",
            "IllegalTransition",
            "LoanNotOpen",
            "LedgerPaused",
            "SignatureExpired",
            "InvalidAttestation",
            "ExpiryInPast",
            # loan economics (issue 16): state the call needs, not the request's shape
            "PartnershipTermsMismatch",
            "GuaranteeExists",
            "GuaranteeOfferMismatch",
            "NoGuarantee",
            "WrongLoanStatus",
            "ClassificationBelowFloor",
            "NothingPrepaid",
            "PrepaymentWhileOverdue",
            "RecoveryExceedsPrincipal",
            # servicing transfers (issue 14 item 5)
            "ServicingNotTransferable",
            "InvalidServicer",
            "ServicingWasTransferred",
            # the council (issue 14): a proposal not in the state the call needs
            "AlreadyApproved",
            "ThresholdNotMet",
            "UnexpectedProposalState",
            "ProposalExists",
            "TimelockUnexpectedOperationState",
            "EnforcedPause",
            "ExpectedPause",
        ],
        409,
    ),
    **dict.fromkeys(
        [
            "NotActiveMember",
            "MemberIsFrozen",
            "WrongRole",
            "SubmitterNotPlatform",
            "NotActiveLender",
            "NotLinePlatform",
            "NotServicer",
            "NotLineShareHolder",
            "NotLoanPlatform",
            "NotActiveInRole",
            "InvalidSignature",
            "NotCouncilMember",
            "NotProposer",
            "OwnableUnauthorizedAccount",
        ],
        403,
    ),
    **dict.fromkeys(["UnknownLoan", "UnknownLine", "UnknownProposal"], 404),
}

_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


class Problem(Exception):
    """Raise from anywhere under a route to answer with a problem document."""

    def __init__(
        self, status: int, code: str, detail: str, *, title: str | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        for k, v in self.extra.items():
            body[k if k not in _RESERVED or k == "rule" else f"{k}Value"] = jsonable(v)
        return body


def jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    return v


def with_headroom(code: str, values: dict[str, Any]) -> dict[str, Any]:
    """The contract error's numbers plus the headroom they imply, where one exists."""
    out = dict(values)
    if code == "BorrowerCapExceeded":
        out["headroom"] = max(values["cap"] - values["exposure"], 0)
    elif code in ("PartnerConcentrationExceeded", "JointLoanShareExceeded"):
        out["headroom"] = max(values["limit"] - values["outstanding"], 0)
    elif code == "LineLimitExceeded":
        out["headroom"] = max(values["limit"] - values["drawn"], 0)
    elif code == "TooManyInstitutions":
        out["headroom"] = max(values["max"] - values["institutions"] + 1, 0)
    return out


def rule_problem(code: str, values: dict[str, Any], source: str, **extra: Any) -> Problem:
    """A refusal by a rule or the contract, as a problem with the rule and its numbers."""
    status = _STATUS_BY_CODE.get(code, 400)
    rule = RULE_CODES.get(code)
    shown = ", ".join(f"{k}={jsonable(v)}" for k, v in values.items())
    label = f"{rule} " if rule else ""
    detail = f"{label}{code}({shown}), refused by {source}"
    problem = Problem(status, code, detail)
    # Via the dict, not as keywords: a contract error may well have an argument named `code`.
    problem.extra.update(with_headroom(code, values))
    problem.extra.update(extra)
    if rule:
        problem.extra["rule"] = rule
    return problem


def from_revert(exc: ContractRevert) -> Problem:
    return rule_problem(exc.code, exc.values, "the contract")


def from_rule(exc: RuleError) -> Problem:
    return rule_problem(exc.violation.code, exc.violation.values, "the pre-check (ledger.rules)")


def from_key_service(exc: KeyServiceError) -> Problem:
    """The key service's refusal as this node's answer: its rate and quota refusals (429) and
    role refusals (403) pass through with their code; anything else is a 503."""
    p = exc.problem
    if exc.status in (403, 429) and isinstance(p.get("code"), str):
        extra = {k: v for k, v in p.items() if k not in _RESERVED and k != "errors"}
        return Problem(exc.status, p["code"], f"key service: {p.get('detail', '')}", **extra)
    return Problem(503, "KeyServiceUnavailable", f"borrower keys are unavailable: {exc}")


def _respond(request: Request, problem: Problem) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    if problem.status == 429 and "retry_after_s" in problem.extra:
        headers = {"Retry-After": str(problem.extra["retry_after_s"])}
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        # Only where and which rule, never `input`: the input may be a national ID.
        out.append(
            {"field": ".".join(loc) or "body", "rule": err.get("type"), "message": err.get("msg")}
        )
    return out


def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A 500 that says nothing more; the type and traceback go to the node's log only."""
    log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
    return _respond(request, Problem(500, "InternalError", "unexpected error; see the node log"))


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return _respond(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return _respond(
            request,
            Problem(422, "ValidationFailed", f"invalid request: {fields}", errors=errors),
        )

    @app.exception_handler(InvalidResidentId)
    async def _bad_id(request: Request, exc: InvalidResidentId) -> JSONResponse:
        problem = Problem(
            422,
            "InvalidResidentId",
            str(exc),
            errors=[{"field": exc.field, "rule": exc.rule, "message": str(exc)}],
        )
        return _respond(request, problem)

    @app.exception_handler(KeyServiceError)
    async def _key_service(request: Request, exc: KeyServiceError) -> JSONResponse:
        return _respond(request, from_key_service(exc))

    @app.exception_handler(ContractRevert)
    async def _revert(request: Request, exc: ContractRevert) -> JSONResponse:
        return _respond(request, from_revert(exc))

    @app.exception_handler(RuleError)
    async def _rule(request: Request, exc: RuleError) -> JSONResponse:
        return _respond(request, from_rule(exc))

    @app.exception_handler(ReceiptTimeout)
    async def _timeout(request: Request, exc: ReceiptTimeout) -> JSONResponse:
        return _respond(request, Problem(504, "ReceiptTimeout", str(exc)))

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> JSONResponse:
        return _respond(request, Problem(502, "ChainError", str(exc)))

    @app.exception_handler(ConnectionError)
    @app.exception_handler(RequestException)
    async def _conn(request: Request, exc: Exception) -> JSONResponse:
        # web3's HTTP provider raises requests' errors when the chain's RPC does not answer.
        log.warning("chain unavailable on %s: %s", request.url.path, type(exc).__name__)
        return _respond(request, Problem(503, "ChainUnavailable", "the chain is not reachable"))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        # The node's own database is down or restarting: a passing condition, like the chain's.
        log.warning("database unavailable on %s: %s", request.url.path, type(exc).__name__)
        return _respond(
            request, Problem(503, "DatabaseUnavailable", "the node's database is not reachable")
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's answer to a body it could not decode (not UTF-8, say): the same 422 as
            # for malformed JSON, which every route with a body documents.
            message = "the body is not valid JSON"
            errors = [{"field": "body", "rule": "json_invalid", "message": message}]
            problem = Problem(422, "ValidationFailed", f"invalid request: {message}", errors=errors)
            return _respond(request, problem)
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HttpError")
        return _respond(request, Problem(exc.status_code, code, str(exc.detail)))


_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "example": TYPE_BASE + "BorrowerCapExceeded"},
        "title": {"type": "string", "example": "Conflict"},
        "status": {"type": "integer", "example": 409},
        "detail": {"type": "string"},
        "instance": {"type": "string", "example": "/v1/loans"},
        "code": {"type": "string", "example": "BorrowerCapExceeded"},
        "rule": {"type": "string", "example": "R1/R2"},
    },
    "additionalProperties": True,
    "example": {
        "type": TYPE_BASE + "BorrowerCapExceeded",
        "title": "Conflict",
        "status": 409,
        "detail": "R1/R2 BorrowerCapExceeded(...), refused by the pre-check (ledger.rules)",
        "instance": "/v1/loans",
        "code": "BorrowerCapExceeded",
        "rule": "R1/R2",
        "borrowerKey": "0x" + "ab" * 32,
        "exposure": 19_000_000,
        "requested": 3_000_000,
        "cap": 20_000_000,
        "headroom": 1_000_000,
    },
}

_DESCRIPTIONS = {
    400: "Terms that can never be valid",
    401: "No, unknown or expired bearer token",
    403: "The caller's role or status does not allow this",
    404: "Not found, or outside the caller's scope",
    409: "Refused by a rule, a lender or an earlier use of the id",
    413: "The request body is larger than the node's limit (max_bytes)",
    422: "Request validation failed (field and rule named, value never echoed)",
    429: "Too many requests from this caller or client address (see Retry-After)",
    502: "A lender node answered with something unusable",
    503: "The chain or a lender node is unavailable",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents a route can answer with: `codes`, and on every
    route 413 (body over the limit) and 429 (over the rate), and on an authenticated one (401
    among `codes`) 503 as well, since the caller's member record is read from the chain."""
    every = {*codes, 413, 429} | ({503} if 401 in codes else set())
    return {
        c: {
            "description": _DESCRIPTIONS.get(c, _TITLES.get(c, "Error")),
            "content": {MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}},
        }
        for c in sorted(every)
    }
