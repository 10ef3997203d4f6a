"""The one client a member's node keys national IDs through: the key service (DESIGN §3), the
only holder of the consortium pepper.

The ID is validated here first, so a bad ID is an `InvalidResidentId` (a 422 on the node) and
is never sent; a good one goes only to a loopback or HTTPS URL, in a request body, and is never
logged. The client signs in with the member's own key (EIP-4361, as with any node) and signs in
again once when its token is refused. It speaks HTTP only (`ledger/` never imports the service).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from eth_account.signers.local import LocalAccount

from ledger import siwe
from ledger.identity import GENESIS_HASH, derivation_hash, derivation_statement, normalise_id
from ledger.nodeclient import SignInError, sign_in

__all__ = ["KeyClient", "KeyServiceError", "LogRow", "check_log", "check_url"]

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class KeyServiceError(RuntimeError):
    """The key service refused (its problem document in `problem`) or could not be reached
    (`status` None). The message never holds the ID."""

    def __init__(self, message: str, status: int | None = None, problem: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem if isinstance(problem, dict) else {}


def check_url(url: str) -> str:
    """The key service URL, refused unless HTTPS or plain HTTP to a loopback address."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return url.rstrip("/")
    raise ValueError("the key service URL must be https, or http on a loopback address")


@dataclass(frozen=True, slots=True)
class LogRow:
    """One derivation as the key service logged it: no ID, only who, when, why and which key."""

    seq: int
    member: str
    at: int
    purpose: str
    borrower_key: str
    prev_hash: str
    row_hash: str
    signature: str


def check_log(
    rows: list[LogRow],
    signer: str | None = None,
    prev_hash: str = GENESIS_HASH,
    first_seq: int = 1,
) -> list[str]:
    """What is wrong with a stretch of the derivation log: gaps in the sequence, broken hash
    links (a row removed, altered or inserted) and, given the key service's address, rows it did
    not sign (a chain rewritten end to end). Empty when the chain holds."""
    problems: list[str] = []
    seq = first_seq
    for r in rows:
        if r.seq != seq:
            problems.append(f"gap: expected seq {seq}, found {r.seq}")
        if r.prev_hash != prev_hash:
            problems.append(f"seq {r.seq}: previous hash does not match row {r.seq - 1}")
        want = derivation_hash(r.prev_hash, r.seq, r.member, r.at, r.purpose, r.borrower_key)
        if r.row_hash != want:
            problems.append(f"seq {r.seq}: row hash does not match its contents")
        if signer is not None:
            try:
                by = siwe.recover(derivation_statement(r.row_hash), r.signature)
            except siwe.SiweError:
                by = None
            if by != signer:
                problems.append(f"seq {r.seq}: not signed by the key service {signer}")
        prev_hash, seq = r.row_hash, r.seq + 1
    return problems


class KeyClient:
    """Derives borrower keys at the key service as one member. Thread-safe."""

    def __init__(self, url: str, account: LocalAccount, *, timeout_s: float = 10.0) -> None:
        self.url = check_url(url)
        self._account = account
        # trust_env=False: the ID must never go through a configured proxy.
        self._http = httpx.Client(timeout=timeout_s, trust_env=False)
        self._token: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def _sign_in(self, stale: str | None) -> str:
        with self._lock:
            if self._token is None or self._token == stale:
                try:
                    self._token = sign_in(self.url, self._account, http=self._http)["access_token"]
                except SignInError as exc:
                    raise KeyServiceError(str(exc), exc.status, exc.problem) from None
                except httpx.HTTPError as exc:
                    raise KeyServiceError(
                        f"key service unreachable: {type(exc).__name__}"
                    ) from None
            return self._token

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        token = self._token or self._sign_in(None)
        for attempt in (0, 1):
            try:
                r = self._http.request(
                    method, self.url + path, headers={"Authorization": f"Bearer {token}"}, **kw
                )
            except httpx.HTTPError as exc:
                # Only the exception type: its text could quote the request.
                raise KeyServiceError(f"key service unreachable: {type(exc).__name__}") from None
            if r.status_code == 401 and attempt == 0:
                token = self._sign_in(token)
                continue
            if r.status_code != 200:
                try:
                    body = r.json()
                except ValueError:
                    body = {}
                code = body.get("code") if isinstance(body, dict) else None
                raise KeyServiceError(
                    f"key service refused: HTTP {r.status_code} {code}", r.status_code, body
                )
            return r.json()
        raise AssertionError("unreachable")

    def derive(self, national_id: str, purpose: str) -> bytes:
        """The 32-byte borrower key of a national ID, for `purpose` (ledger.identity.PURPOSES).
        Raises InvalidResidentId before anything is sent."""
        normalised = normalise_id(national_id)
        out = self._call("POST", "/v1/keys", json={"national_id": normalised, "purpose": purpose})
        return bytes.fromhex(out["borrower_key"][2:])

    def log_page(self, after: int = 0, limit: int = 500) -> list[LogRow]:
        """Derivations with seq > `after` (the auditor's read)."""
        out = self._call("GET", "/v1/log", params={"after": after, "limit": limit})
        return [LogRow(**row) for row in out["rows"]]

    def log(self, page: int = 500) -> Iterator[LogRow]:
        after = 0
        while rows := self.log_page(after, page):
            yield from rows
            after = rows[-1].seq
