"""Sign-in with Ethereum (EIP-4361) and the node's bearer tokens.

No passwords and no shared secrets: a member proves it holds its key by signing a challenge this
node issued (single-use nonce, short expiry, this node's domain and chain id), and gets an opaque
random token. Only the token's SHA-256 is stored, with its address and expiry, in this node's own
database, so a token means nothing to another node and a database leak gives no usable tokens.
The member's role and status are read from the chain on every request (see deps.py); the token
itself is looked up once per process (store.TokenCache: a token row never changes).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.concurrency import run_in_threadpool

from api import store
from api.limits import Bucket, rate_limited
from api.problems import Problem
from api.schemas.reads import ChallengeOut, TokenOut
from api.service.consortium import ConsortiumView
from api.service.context import MemberContext
from ledger import siwe
from ledger.domain import MemberInfo

STATEMENT = "Sign in to the joint-lending consortium node {name}."
_CLOCK_SKEW = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: an address, its member record as of this request, and the chain
    head and its timestamp read with it (None where no request read them)."""

    address: str
    role: str
    member: MemberInfo
    head: int | None = None
    clock: int | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def refuse_unless_admitted(member: MemberInfo) -> None:
    """403 unless `member` is an active, unfrozen member with a role: a frozen member is
    `MemberIsFrozen` (the contract's name for it); a suspended, removed or unknown address is
    `MemberNotActive`. The one check behind a challenge, a token and every authenticated request
    (a member's standing is public on chain, so naming it reveals nothing)."""
    if not member.active or member.role_name == "none":
        status = member.status.name.lower() if member.known else "not a member"
        raise Problem(
            403,
            "MemberNotActive",
            f"{member.address} is {status} on chain",
            member_status=member.status.name.lower(),
        )
    if member.frozen:
        raise Problem(403, "MemberIsFrozen", f"{member.address} is frozen on chain")


def challenge(ctx: MemberContext, chain: ConsortiumView, address: str) -> ChallengeOut:
    """A fresh EIP-4361 message for `address` to sign, only if it is an active, unfrozen member
    now (403 otherwise): a flood of challenges for addresses that are not members stores no nonce
    (the rate limits in api/limits.py bound the chain reads this costs)."""
    refuse_unless_admitted(chain.member(address))
    s = ctx.settings
    now = _now()
    expires = now + timedelta(seconds=s.challenge_ttl_s)
    nonce = secrets.token_hex(12)
    message = siwe.SiweMessage(
        domain=s.domain,
        address=address,
        statement=STATEMENT.format(name=s.name),
        uri=s.public_url,
        chain_id=ctx.deployment.chain_id,
        nonce=nonce,
        issued_at=now,
        expiration_time=expires,
    )
    store.add_nonce(ctx.engine, nonce, address, int(expires.timestamp()))
    return ChallengeOut(message=message.text(), nonce=nonce, expires_at=siwe.utc(expires))


def _unauthorised(code: str, detail: str) -> Problem:
    return Problem(401, code, detail)


def issue_token(
    ctx: MemberContext,
    chain: ConsortiumView,
    text: str,
    signature: str,
    per_member: Bucket | None = None,
) -> TokenOut:
    """A bearer token for the signer of `text`. `per_member` limits tokens per address, taken
    only once the signature is verified: nobody but the key holder can empty its bucket."""
    s = ctx.settings
    try:
        msg = siwe.parse(text)
    except siwe.SiweError as exc:
        raise _unauthorised("InvalidSiweMessage", str(exc)) from None
    now = _now()
    if msg.domain != s.domain or msg.uri != s.public_url:
        raise _unauthorised("WrongDomain", f"the message is for {msg.domain}, not {s.domain}")
    if msg.chain_id != ctx.deployment.chain_id:
        raise _unauthorised(
            "WrongChain", f"chain id {msg.chain_id}, expected {ctx.deployment.chain_id}"
        )
    if msg.expiration_time is None or msg.expiration_time < now:
        raise _unauthorised("ChallengeExpired", "the sign-in message has expired")
    if msg.issued_at > now + _CLOCK_SKEW or (msg.not_before and msg.not_before > now + _CLOCK_SKEW):
        raise _unauthorised("ChallengeNotYetValid", "the sign-in message is not valid yet")
    try:
        signer = siwe.recover(text, signature)
    except siwe.SiweError as exc:
        raise _unauthorised("InvalidSignature", str(exc)) from None
    if signer != msg.address:
        raise _unauthorised("InvalidSignature", "the signature is not by the message's address")
    if per_member is not None and (wait := per_member.take(signer)) > 0:
        raise rate_limited(wait, per_member.rate, "member address")
    # Last, after the signature: a forged request must not burn a real member's nonce.
    if not store.use_nonce(ctx.engine, msg.nonce, msg.address, int(now.timestamp())):
        raise _unauthorised("NonceInvalid", "unknown, expired or already used nonce")
    member = chain.member(msg.address)
    refuse_unless_admitted(member)
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=s.token_ttl_s)
    store.add_token(
        ctx.engine, _hash(token), msg.address, int(now.timestamp()), int(expires.timestamp())
    )
    return TokenOut(
        access_token=token,
        token_type="bearer",
        expires_at=siwe.utc(expires),
        role=member.role_name,
        address=msg.address,
    )


async def token_owner(ctx: MemberContext, token: str) -> str:
    """The address a bearer token was issued to; 401 if unknown or expired. From the cache (the
    database once per token and process), on the event loop."""
    token_hash = _hash(token)
    found = ctx.tokens.get(token_hash)
    if found is None:
        row = await run_in_threadpool(store.find_token, ctx.engine, token_hash)
        if row is None:
            raise _unauthorised("InvalidToken", "unknown bearer token")
        found = (row.address, row.expires_at)
        ctx.tokens.put(token_hash, *found)
    address, expires_at = found
    if expires_at < int(_now().timestamp()):
        raise _unauthorised("TokenExpired", "the bearer token has expired; sign in again")
    return address


async def member_principal(chain: ConsortiumView, address: str) -> Principal:
    """The caller as the chain has it now; 403 if no longer active or frozen. The member record
    and the head come from one JSON-RPC batch."""
    member, head, clock = await chain.member_and_head(address)
    refuse_unless_admitted(member)
    return Principal(address, member.role_name, member, head, clock)
