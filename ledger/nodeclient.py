"""A small HTTP client for consortium nodes: sign in with a member's key (EIP-4361) and call the
API with the bearer token. Used by `ledger token`, `ledger demo` and the end-to-end tests.

It speaks HTTP only, so `ledger/` still never imports `api/`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from eth_account.signers.local import LocalAccount

from ledger import siwe


class SignInError(RuntimeError):
    """The node refused the sign-in, or offered a challenge that is not its own."""

    def __init__(self, message: str, status: int | None = None, problem: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


def _client() -> httpx.Client:
    # trust_env=False: loopback node traffic must never go through a configured proxy.
    return httpx.Client(timeout=60, trust_env=False)


def sign_in(base_url: str, account: LocalAccount, *, http: httpx.Client | None = None) -> dict:
    """The token response of `base_url` for `account` (access_token, expires_at, role, ...).

    The challenge is checked before it is signed: it must be for this node (domain and URI) and
    name this account, so a node cannot get a signature it could replay elsewhere.
    """
    base = base_url.rstrip("/")
    own = http is None
    http = http or _client()
    try:
        r = http.post(f"{base}/v1/auth/challenge", json={"address": account.address})
        if r.status_code != 200:
            raise SignInError(f"challenge refused: HTTP {r.status_code}", r.status_code, _body(r))
        text = r.json()["message"]
        msg = siwe.parse(text)
        if msg.domain != urlsplit(base).netloc or msg.uri != base:
            raise SignInError(f"challenge is for {msg.domain}, not {urlsplit(base).netloc}")
        if msg.address != account.address:
            raise SignInError("challenge names another address")
        r = http.post(
            f"{base}/v1/auth/token",
            json={"message": text, "signature": siwe.sign(text, account.key)},
        )
        if r.status_code != 200:
            body = _body(r)
            code = body.get("code") if isinstance(body, dict) else None
            raise SignInError(f"sign-in refused: HTTP {r.status_code} {code}", r.status_code, body)
        return r.json()
    finally:
        if own:
            http.close()


def _body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


class NodeSession:
    """Calls to one node as one member; `token=None` makes anonymous calls."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.http = _client()

    @classmethod
    def signed_in(cls, base_url: str, account: LocalAccount) -> NodeSession:
        s = cls(base_url)
        s.token = sign_in(base_url, account, http=s.http)["access_token"]
        return s

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> NodeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.http.request(method, f"{self.base}{path}", headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=body, **kw)
