"""The platform node's client for lender nodes: sign in with its own key (EIP-4361, no shared
secrets), keep the token, ask for co-signatures.

Before signing a peer's challenge the client checks the message is for that peer (domain, URI)
and for this chain, so a peer cannot relay another node's challenge and sign in there as us.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
from eth_account.signers.local import LocalAccount

from api.settings import NodeSettings
from ledger import siwe


class PeerUnavailable(Exception):
    """A lender node could not be reached or answered with a server error."""

    def __init__(self, lender: str, reason: str) -> None:
        super().__init__(f"lender node of {lender} unavailable: {reason}")
        self.lender = lender
        self.reason = reason


class CosignRefused(Exception):
    """A lender node refused to co-sign; `problem` is its problem document."""

    def __init__(self, lender: str, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{lender} refused: {problem.get('code')}")
        self.lender = lender
        self.status = status
        self.problem = problem


class PeerPool:
    def __init__(self, settings: NodeSettings, account: LocalAccount, chain_id: int) -> None:
        self.settings = settings
        self.account = account
        self.chain_id = chain_id
        # trust_env=False: a proxy from the environment must never see loopback node traffic.
        # Idle connections are dropped before a peer's server would (uvicorn: 5 s), so a request
        # seldom lands on a connection the peer is closing; `_post` covers the rest.
        self.http = httpx.Client(
            timeout=settings.peer_timeout_s,
            trust_env=False,
            limits=httpx.Limits(keepalive_expiry=2.0),
        )
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cosign")

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.http.close()

    def url(self, lender: str) -> str:
        base = self.settings.peers.get(lender)
        if base is None:
            raise PeerUnavailable(lender, "no node configured for this lender (settings.peers)")
        return base

    def _sign_in(self, lender: str, base: str) -> str:
        r = self.http.post(f"{base}/v1/auth/challenge", json={"address": self.account.address})
        _raise_for_peer(lender, r)
        text = r.json()["message"]
        msg = siwe.parse(text)
        authority = urlsplit(base).netloc
        if msg.domain != authority or msg.uri != base or msg.chain_id != self.chain_id:
            raise PeerUnavailable(lender, f"challenge for {msg.domain} on chain {msg.chain_id}")
        if msg.address != self.account.address:
            raise PeerUnavailable(lender, "challenge names another address")
        r = self.http.post(
            f"{base}/v1/auth/token",
            json={"message": text, "signature": siwe.sign(text, self.account.key)},
        )
        if r.status_code in (401, 403):
            raise CosignRefused(lender, r.status_code, _problem(r))
        _raise_for_peer(lender, r)
        body = r.json()
        return body["access_token"]

    def _token(self, lender: str, base: str, fresh: bool = False) -> str:
        with self._lock:
            cached = self._tokens.get(lender)
        # Renew a minute early so a token never expires between check and use.
        if cached and not fresh and cached[1] > time.time() + 60:
            return cached[0]
        token = self._sign_in(lender, base)
        with self._lock:
            self._tokens[lender] = (token, time.time() + self.settings.token_ttl_s)
        return token

    def _post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST, once more on a pooled connection the peer closed as we reused it (ReadError,
        RemoteProtocolError). Safe because co-signing is idempotent: the same terms give the
        same (deterministic, RFC 6979) signature and record nothing."""
        try:
            return self.http.post(url, **kwargs)
        except (httpx.ReadError, httpx.RemoteProtocolError):
            return self.http.post(url, **kwargs)

    def cosign(
        self, lender: str, kind: str, terms: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> bytes:
        """One lender's signature over `terms` (`extra`, a loan's schedule, beside them), or
        CosignRefused / PeerUnavailable."""
        base = self.url(lender)
        try:
            for attempt in (0, 1):
                token = self._token(lender, base, fresh=attempt == 1)
                r = self._post(
                    f"{base}/v1/cosign",
                    json={"kind": kind, "terms": terms, **(extra or {})},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if r.status_code == 401 and attempt == 0:
                    continue  # the peer restarted or the token expired: sign in again once
                break
        except (httpx.HTTPError, siwe.SiweError, KeyError, ValueError) as exc:
            # Connection failures and answers that are not what a node says: both mean no node.
            raise PeerUnavailable(lender, type(exc).__name__) from None
        if r.status_code == 200:
            sig = r.json().get("signature", "")
            try:
                return bytes.fromhex(sig.removeprefix("0x"))
            except ValueError:
                raise PeerUnavailable(lender, "signature is not hex") from None
        if r.status_code >= 500:
            raise PeerUnavailable(lender, f"HTTP {r.status_code}")
        raise CosignRefused(lender, r.status_code, _problem(r))

    def cosign_batch(
        self,
        lender: str,
        kind: str,
        terms: list[dict[str, Any]],
        schedules: list[dict[str, Any] | None] | None = None,
    ) -> list[bytes | CosignRefused]:
        """One lender's answer for each of `terms`, asked in one request: its signature or its
        refusal; PeerUnavailable if the node cannot answer for the batch as a whole."""
        base = self.url(lender)
        try:
            for attempt in (0, 1):
                token = self._token(lender, base, fresh=attempt == 1)
                r = self._post(
                    f"{base}/v1/cosign/batch",
                    json=_batch_body(kind, terms, schedules),
                    headers={"Authorization": f"Bearer {token}"},
                )
                if r.status_code == 401 and attempt == 0:
                    continue
                break
            if r.status_code != 200:
                if r.status_code >= 500:
                    raise PeerUnavailable(lender, f"HTTP {r.status_code}")
                # the batch as a whole refused (sign-in, a malformed request): each item is
                refusal = CosignRefused(lender, r.status_code, _problem(r))
                return [refusal] * len(terms)
            results = r.json()["results"]
            if len(results) != len(terms):
                raise PeerUnavailable(lender, f"{len(results)} answers for {len(terms)} items")
            out: list[bytes | CosignRefused] = []
            for item in results:
                if item.get("status") == 200:
                    out.append(bytes.fromhex(str(item["signature"]).removeprefix("0x")))
                else:
                    problem = item.get("problem")
                    if not isinstance(problem, dict):
                        problem = {"code": "PeerError", "status": item.get("status")}
                    out.append(CosignRefused(lender, int(item.get("status", 409)), problem))
            return out
        except (httpx.HTTPError, siwe.SiweError, KeyError, ValueError, TypeError) as exc:
            raise PeerUnavailable(lender, type(exc).__name__) from None

    def cosign_batches(
        self,
        kind: str,
        asks: dict[str, list[dict[str, Any]]],
        schedules: dict[str, list[dict[str, Any] | None]] | None = None,
    ) -> dict[str, list[bytes | CosignRefused] | PeerUnavailable]:
        """`cosign_batch` to every lender in `asks` (lender: its terms; `schedules`, lender: the
        loans' schedules in the same order) at once, one request each; a node that cannot
        answer is its PeerUnavailable."""
        futures = {
            ln: self._pool.submit(self.cosign_batch, ln, kind, t, (schedules or {}).get(ln))
            for ln, t in asks.items()
        }
        out: dict[str, list[bytes | CosignRefused] | PeerUnavailable] = {}
        for ln, fut in futures.items():
            try:
                out[ln] = fut.result()
            except PeerUnavailable as exc:
                out[ln] = exc
            except CosignRefused as exc:  # refused at sign-in: every item is refused
                out[ln] = [exc] * len(asks[ln])
        return out

    def cosign_all(
        self,
        lenders: list[str],
        kind: str,
        terms: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> dict[str, bytes]:
        """Every lender's signature, asked in parallel; the first failure is raised (a peer that
        is down before one that refused, so the operator fixes the outage first)."""
        futures = {ln: self._pool.submit(self.cosign, ln, kind, terms, extra) for ln in lenders}
        out: dict[str, bytes] = {}
        errors: list[Exception] = []
        for ln, fut in futures.items():
            try:
                out[ln] = fut.result()
            except (PeerUnavailable, CosignRefused) as exc:
                errors.append(exc)
        for exc in errors:
            if isinstance(exc, PeerUnavailable):
                raise exc
        if errors:
            raise errors[0]
        return out


def _problem(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {"code": "PeerError", "status": r.status_code}
    return body if isinstance(body, dict) else {"code": "PeerError", "status": r.status_code}


def _raise_for_peer(lender: str, r: httpx.Response) -> None:
    if r.status_code >= 500:
        raise PeerUnavailable(lender, f"HTTP {r.status_code}")
    if r.status_code >= 400:
        raise CosignRefused(lender, r.status_code, _problem(r))


def _batch_body(
    kind: str, terms: list[dict[str, Any]], schedules: list[dict[str, Any] | None] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind, "items": terms}
    if schedules is not None and any(sc is not None for sc in schedules):
        body["schedules"] = schedules
    return body
