"""Limits on what one client can make a node do: the size of a request body and the rate of
requests (docs: NodeSettings.limits).

- A body larger than `max_body_bytes` is refused with 413 `PayloadTooLarge` before the
  application sees it: a declared Content-Length over the limit is refused without reading a
  byte, and a body without one (chunked) is counted as it arrives and refused as soon as it
  passes the limit. Nothing larger than the limit is ever held in memory.
- Sign-in (`/v1/auth/*`, unauthenticated) is rate-limited per client IP in the middleware; every
  authenticated request per caller address (api/deps.py). Over the rate: 429 `RateLimited` with
  Retry-After. Both are token buckets (rate per second, burst), kept in the node's database so
  they hold across all of its HTTP processes (api/buckets.py).

Sign-in cannot be used to lock a member out (issue 14, item 9). The client IP is the TCP peer,
unless the peer is one of `limits.trusted_proxies` (default: none): then it is the right-most
X-Forwarded-For entry that is not itself a trusted proxy, so clients behind a proxy get buckets
of their own and nobody can pick a bucket by forging the header. Per address, a bucket keyed by
the *claimed* address would hand anyone a way to empty a member's bucket, so the limits per
address are placed where only the address's key holder (or nobody) can spend them:
- a challenge is issued only to an active, unfrozen member (api/auth.py): a flood for random
  addresses stores no nonce and is refused with 403, after costing its sender its IP bucket;
- a flood for a member's address from one client empties that client's IP bucket only; from
  many clients it stores nonces that expire and never refuses the member's own challenge (each
  challenge has its own nonce, and a forged answer does not burn it);
- tokens are limited per member address (`signin_rate_per_s`), counted only after the signature
  is verified (api/auth.py), so only the member itself can spend that bucket.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import MEDIA_TYPE, Problem
from api.settings import Limits

AUTH_PREFIX = "/v1/auth/"
_MAX_KEYS = 10_000  # idle buckets are dropped past this many keys


class Bucket(Protocol):
    rate: float

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 if one was there, else the seconds until one will be."""

    def take_leased(self, key: str) -> bool:
        """Take a token without waiting on anything (no database): True if one was at hand."""


async def take(bucket: Bucket, key: str) -> float:
    """`bucket.take(key)` from the event loop: at once when a token is at hand, else on a
    worker thread (it may ask the database)."""
    if bucket.take_leased(key):
        return 0.0
    return await run_in_threadpool(bucket.take, key)


class TokenBucket:
    """One bucket per key, each holding up to `burst` tokens and refilled at `rate` a second,
    in this process's memory (a node's own limits are in its database: api/buckets.py).
    Thread-safe: sync routes run in a thread pool."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take_leased(self, key: str) -> bool:
        return False  # `take` itself is quick

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 if one was there, else the seconds until one will be."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > _MAX_KEYS:
                self._prune(now)
        return wait

    def _prune(self, now: float) -> None:
        full = [
            k
            for k, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.rate >= self.burst
        ]
        for k in full:  # a full bucket is the same as no bucket
            del self._buckets[k]


def rate_limited(wait_s: float, rate: float, who: str) -> Problem:
    retry = max(1, math.ceil(wait_s))
    return Problem(
        429,
        "RateLimited",
        f"too many requests from this {who}: at most {rate:g} a second; retry in {retry} s",
        title="Too many requests",
        retry_after_s=retry,
        limit_per_s=rate,
    )


def payload_too_large(max_bytes: int) -> Problem:
    return Problem(
        413,
        "PayloadTooLarge",
        f"the request body is larger than {max_bytes} bytes",
        title="Payload too large",
        max_bytes=max_bytes,
    )


async def _answer(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    headers: dict[str, str] = {}
    if problem.status == 429:
        headers["Retry-After"] = str(problem.extra["retry_after_s"])
    if problem.status == 413:
        # The rest of the body is never read: the connection cannot be reused.
        headers["Connection"] = "close"
    response = JSONResponse(
        problem.body(scope.get("path")),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )
    await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server (h11) refuses a malformed one before we get here
    return None


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(host: str, proxies: tuple[Network, ...]) -> bool:
    ip = _ip(host)
    return ip is not None and any(ip in net for net in proxies)


def client_ip(scope: Scope, proxies: tuple[Network, ...]) -> str:
    """The client a sign-in is counted against: the TCP peer, or, when the peer is a trusted
    proxy, the right-most X-Forwarded-For entry that is not a trusted proxy (entries to its left
    were written by the client and prove nothing). Without trusted proxies the header is
    ignored."""
    client = scope.get("client")
    peer = client[0] if client else "-"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops.extend(h.strip() for h in value.decode("latin-1").split(","))
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop if _ip(hop) is not None else peer
    return peer


class LimitsMiddleware:
    """Pure ASGI: refuses over-large bodies (413) and too frequent sign-in requests (429)
    before the application runs."""

    def __init__(self, app: ASGIApp, limits: Limits, auth: Bucket | None = None) -> None:
        self.app = app
        self.max_body = limits.max_body_bytes
        self.auth = auth or TokenBucket(limits.auth_rate_per_s, limits.auth_burst)
        self.proxies = tuple(ipaddress.ip_network(p, strict=False) for p in limits.trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(AUTH_PREFIX):
            wait = await take(self.auth, client_ip(scope, self.proxies))
            if wait > 0:
                problem = rate_limited(wait, self.auth.rate, "client address")
                await _answer(scope, receive, send, problem)
                return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _answer(scope, receive, send, payload_too_large(self.max_body))
            return
        # Count what actually arrives (chunked bodies declare no length), keeping at most the
        # limit, then hand the body to the application in one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body:
                await _answer(scope, receive, send, payload_too_large(self.max_body))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        pending: dict[str, Any] | None = {
            "type": "http.request",
            "body": b"".join(chunks),
            "more_body": False,
        }

        async def replay() -> Message:
            nonlocal pending
            if pending is not None:
                message, pending = pending, None
                return message
            return await receive()

        await self.app(scope, replay, send)
