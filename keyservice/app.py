"""The key service's HTTP API.

- `POST /v1/auth/challenge`, `POST /v1/auth/token`: EIP-4361 sign-in, exactly as on a node
  (api.auth over this service's own database).
- `POST /v1/keys {national_id, purpose}`: the borrower key, for an active member in one of the
  configured roles (read from the on-chain registry on every request), within its rate (per
  second and per UTC day); each derivation is appended to the log before the key is returned.
- `GET /v1/log?after=&limit=`: the derivation log, paged, for the auditor only.
- `GET /healthz`, `GET /readyz`.

Errors are RFC 9457 problem+json (api.problems). The ID is never logged, stored or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated

from eth_account.signers.local import LocalAccount
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, text

from api import auth, problems, store
from api.limits import LimitsMiddleware, TokenBucket, rate_limited
from api.problems import Problem
from api.schemas.reads import ChallengeIn, ChallengeOut, TokenIn, TokenOut
from keyservice import store as ks_store
from keyservice.settings import KeyServiceSettings
from ledger import siwe
from ledger.chain.client import LedgerClient
from ledger.chain.deployment import Deployment
from ledger.domain import MemberInfo
from ledger.identity import InvalidResidentId, Pepper, Purpose, normalise_id

_bearer = HTTPBearer(auto_error=False, description="token from POST /v1/auth/token")


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    national_id: str = Field(..., min_length=1, max_length=32)
    purpose: Purpose


class KeyOut(BaseModel):
    borrower_key: str
    seq: int
    purpose: str


class LogRowOut(BaseModel):
    seq: int
    member: str
    at: int
    purpose: str
    borrower_key: str
    prev_hash: str
    row_hash: str
    signature: str


class LogPage(BaseModel):
    signer: str = Field(..., description="the key service's address, which signs every row")
    rows: list[LogRowOut]
    next_after: int | None


class Registry:
    """The on-chain registry's record of a caller (what api.auth needs of a consortium view)."""

    def __init__(self, client: LedgerClient) -> None:
        self.client = client

    def member(self, address: str) -> MemberInfo:
        c = self.client
        return MemberInfo.from_abi(address, c.call(c.registry, "member", address))


class DailyCounter:
    """Derivations per member and UTC day."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._day = -1
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> int | None:
        """None if under the cap (and counted), else the seconds until the next UTC day."""
        now = time.time()
        day = int(now // 86_400)
        with self._lock:
            if day != self._day:
                self._day, self._counts = day, {}
            n = self._counts.get(who, 0)
            if n >= self.cap:
                return int((day + 1) * 86_400 - now) + 1
            self._counts[who] = n + 1
        return None


@dataclass
class KeyService:
    """Built once per process. Shaped like a node's MemberContext where api.auth reads it
    (settings, deployment, engine, tokens)."""

    settings: KeyServiceSettings
    deployment: Deployment
    account: LocalAccount
    engine: Engine
    registry: Registry
    log: ks_store.DerivationLog
    _pepper: Pepper = field(repr=False)
    tokens: store.TokenCache = field(default_factory=store.TokenCache)

    def __post_init__(self) -> None:
        lim = self.settings.limits
        self.rate = TokenBucket(lim.rate_per_s, lim.burst)
        self.daily = DailyCounter(lim.per_day)
        # tokens per member address, taken only after its signature is verified (api.auth)
        self.signin = TokenBucket(lim.signin_rate_per_s, lim.signin_burst)

    def key_hex(self, normalised: str) -> str:
        mac = hmac.new(self._pepper.secret, normalised.encode("ascii"), hashlib.sha256)
        return "0x" + mac.hexdigest()


def build(settings: KeyServiceSettings) -> KeyService:
    deployment = Deployment.load(settings.deployment_file)
    account = settings.key.load(deployment.chain_id)
    pepper = settings.load_pepper()
    client = LedgerClient(settings.rpc_url, deployment, account)
    engine = ks_store.make_engine(settings.database_url)
    log = ks_store.DerivationLog(engine, lambda text: siwe.sign(text, account.key))
    return KeyService(settings, deployment, account, engine, Registry(client), log, pepper)


def _service(request: Request) -> KeyService:
    return request.app.state.keyservice


ServiceDep = Annotated[KeyService, Depends(_service)]


async def _caller(
    ks: ServiceDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if creds is None:
        raise Problem(401, "NotAuthenticated", "sign in: POST /v1/auth/challenge, then /token")
    return await auth.token_owner(ks, creds.credentials)  # type: ignore[arg-type]


CallerDep = Annotated[str, Depends(_caller)]


def _member(ks: KeyService, address: str) -> MemberInfo:
    """The caller's record now; 403 unless active in an allowed role."""
    m = ks.registry.member(address)
    auth.refuse_unless_admitted(m)  # frozen, suspended or removed: 403 at once, as on a node
    if m.role_name not in ks.settings.roles:
        raise Problem(
            403,
            "MemberNotAllowed",
            f"{address} is not an active member in a role that may derive keys "
            f"({', '.join(ks.settings.roles)})",
            role=m.role_name,
        )
    return m


router = APIRouter()


@router.post("/v1/auth/challenge", response_model=ChallengeOut, tags=["auth"])
def challenge(body: ChallengeIn, ks: ServiceDep) -> ChallengeOut:
    """An EIP-4361 message for the address to sign (as on every node)."""
    return auth.challenge(ks, ks.registry, body.address)  # type: ignore[arg-type]


@router.post("/v1/auth/token", response_model=TokenOut, tags=["auth"])
def token(body: TokenIn, ks: ServiceDep) -> TokenOut:
    """A bearer token for the signed challenge; only active members get one."""
    return auth.issue_token(
        ks,
        ks.registry,
        body.message,
        body.signature,
        ks.signin,  # type: ignore[arg-type]
    )


@router.post("/v1/keys", response_model=KeyOut, tags=["keys"])
def derive(body: KeyIn, ks: ServiceDep, caller: CallerDep) -> KeyOut:
    """The borrower key of a national ID, for a stated purpose. Rate-limited per member; logged
    (member, time, purpose, key) before it is returned; the ID is dropped."""
    wait = ks.rate.take(caller)
    if wait > 0:
        raise rate_limited(wait, ks.settings.limits.rate_per_s, "member")
    m = _member(ks, caller)
    if body.purpose not in ks.settings.purposes.get(m.role_name, []):  # type: ignore[call-overload]
        raise Problem(
            403,
            "PurposeNotAllowed",
            f"a {m.role_name} may not derive keys for {body.purpose}",
            purpose=body.purpose,
            role=m.role_name,
        )
    try:
        normalised = normalise_id(body.national_id)
    except InvalidResidentId as exc:
        raise Problem(422, "InvalidResidentId", str(exc), field=exc.field, rule=exc.rule) from None
    retry = ks.daily.take(caller)
    if retry is not None:
        raise Problem(
            429,
            "DailyQuotaExceeded",
            f"at most {ks.settings.limits.per_day} derivations per member and UTC day",
            retry_after_s=retry,
            per_day=ks.settings.limits.per_day,
        )
    key = ks.key_hex(normalised)
    row = ks.log.append(caller, body.purpose, key)
    return KeyOut(borrower_key=key, seq=row.seq, purpose=body.purpose)


@router.get("/v1/log", response_model=LogPage, tags=["audit"])
def read_log(
    ks: ServiceDep,
    caller: CallerDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(gt=0)] = 500,
) -> LogPage:
    """The derivation log after `after`, in order, with each row's hash link: auditor only."""
    m = _member(ks, caller)
    if m.role_name != "auditor":
        raise Problem(403, "WrongRole", "only the auditor reads the derivation log")
    rows = ks.log.page(after, min(limit, ks.settings.max_log_page))
    return LogPage(
        signer=ks.account.address,
        rows=[LogRowOut(**r.model_dump()) for r in rows],
        next_after=rows[-1].seq if rows else None,
    )


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
def readyz(ks: ServiceDep) -> dict[str, str]:
    try:
        with ks.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means not ready
        raise Problem(503, "DatabaseUnavailable", "the key service's database is down") from None
    return {"status": "ready"}


def create_app(settings: KeyServiceSettings) -> FastAPI:
    app = FastAPI(
        title="Key service",
        version="1",
        description="Borrower keys for consortium members; the only holder of the pepper.",
    )
    app.state.keyservice = build(settings)
    problems.install(app)
    app.add_middleware(LimitsMiddleware, limits=settings.limits)
    app.include_router(router)
    return app
