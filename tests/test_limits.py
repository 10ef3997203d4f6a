"""Request limits over real HTTP (api/limits.py): an over-large body is refused with 413 before it
is read, a batch over the maximum size is a 422 naming `loans`, and too many requests from one
caller, or sign-in requests from one client address, are a 429 with Retry-After.

The limits come from each node's config (`limits`), set low here on one node per limit; the other
nodes keep the defaults, which the rest of the suite and the benchmarks never reach."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from ledger.keys import dev_account
from ledger.nodeclient import NodeSession, SignInError, sign_in
from tests.api_support import Consortium, account, address, loan_body, problem, running_consortium

MAX_BODY = 64 * 1024
SLOW = 0.01  # tokens a second: an emptied bucket stays empty for the whole test
CALLER_BURST = 4
AUTH_BURST = 6
VALID_ID = "11010519491231002X"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    overrides = {
        "platform": {"limits": {"max_body_bytes": MAX_BODY}},
        "bank-a": {"limits": {"rate_per_s": SLOW, "burst": CALLER_BURST}},
        "bank-b": {"limits": {"auth_rate_per_s": SLOW, "auth_burst": AUTH_BURST}},
        # behind a reverse proxy on loopback: X-Forwarded-For names the client
        "auditor": {
            "limits": {
                "auth_rate_per_s": SLOW,
                "auth_burst": AUTH_BURST,
                "trusted_proxies": ["127.0.0.1/32", "::1"],
            }
        },
        # not behind a proxy: X-Forwarded-For must be ignored
        "bank-c": {"limits": {"auth_rate_per_s": SLOW, "auth_burst": AUTH_BURST * 4}},
    }
    with running_consortium(tmp_path_factory.mktemp("limits"), overrides) as c:
        yield c


def _raw(url: str, head: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    sock.sendall(head.encode())
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Read until the server closes the connection (a 413 always closes it)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", ""):
        raise AssertionError("expected a Content-Length response")
    return status, headers, json.loads(body)


def _head(net: Consortium, path: str, extra: str) -> str:
    token = net.session("platform", "platform").token
    host = urlsplit(net.urls["platform"]).netloc
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    )


def _assert_too_large(status: int, headers: dict[str, str], body: dict, path: str) -> None:
    assert status == 413, body
    assert headers["content-type"].startswith("application/problem+json")
    assert body["code"] == "PayloadTooLarge" and body["status"] == 413
    assert body["max_bytes"] == MAX_BODY and str(MAX_BODY) in body["detail"]
    assert body["instance"] == path
    assert headers["connection"] == "close"


def test_declared_length_over_the_limit_is_refused_before_any_byte_is_read(
    net: Consortium,
) -> None:
    # A 1 GB batch is announced and not one byte of it is sent: the answer cannot depend on
    # reading the body.
    head = _head(net, "/v1/loans/batch", "Content-Length: 1000000000\r\n")
    sock = _raw(net.urls["platform"], head)
    with sock:
        status, headers, body = _read_response(sock)
    _assert_too_large(status, headers, body, "/v1/loans/batch")
    # the node is fine afterwards
    assert net.session("platform", "platform").get("/healthz").status_code == 200


def test_chunked_body_is_counted_and_refused_once_past_the_limit(net: Consortium) -> None:
    head = _head(net, "/v1/loans/batch", "Transfer-Encoding: chunked\r\n")
    sock = _raw(net.urls["platform"], head)
    chunk = b"[" + b" " * 8190 + b"]"
    sent = 0
    with sock:
        # Exactly past the limit and no further: every byte sent is read by the server, so its
        # close cannot reset the connection under the response.
        while sent <= MAX_BODY:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        readable, _, _ = select.select([sock], [], [], 30)
        assert readable, "no answer to a chunked body past the limit"
        status, headers, body = _read_response(sock)
    _assert_too_large(status, headers, body, "/v1/loans/batch")


def test_bodies_within_the_limit_are_served_chunked_or_not(net: Consortium) -> None:
    plat = net.session("platform", "platform")
    payload = json.dumps({"national_id": VALID_ID}).encode()
    plain = plat.request("POST", "/v1/borrowers/key", content=payload,
                         headers={"Content-Type": "application/json"})  # fmt: skip
    chunked = plat.request("POST", "/v1/borrowers/key", content=iter([payload[:7], payload[7:]]),
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert plain.status_code == 200 and chunked.status_code == 200, chunked.text
    assert chunked.json() == plain.json()
    # A body over the platform's limit is only a validation matter on a node with the default
    # limit (8 MiB): the limit is each node's own setting.
    big = {"national_id": VALID_ID, "padding": "x" * (2 * MAX_BODY)}
    r = net.session("auditor", "auditor").post("/v1/borrowers/key", big)
    assert r.status_code == 422 and problem(r)["code"] == "ValidationFailed"


def test_batch_over_the_maximum_size_is_a_422_naming_loans(net: Consortium) -> None:
    shares = {"platform": 400_000, "bank-a": 600_000}
    items = [loan_body(f"too-many-{i}", shares) for i in range(101)]
    r = net.session("platform", "platform").post("/v1/loans/batch", {"loans": items})
    p = problem(r)
    assert r.status_code == 422 and p["code"] == "ValidationFailed"
    [err] = p["errors"]
    assert err["field"] == "loans" and err["rule"] == "too_long" and "100" in err["message"]
    # nothing was recorded: the first of them is unknown
    assert net.session("auditor", "auditor").get("/v1/loans/too-many-0").status_code == 404


def test_caller_over_its_rate_gets_429_with_retry_after(net: Consortium) -> None:
    url = net.urls["bank-a"]
    with (
        NodeSession.signed_in(url, account("bank-a")) as bank,
        NodeSession.signed_in(url, account("auditor")) as auditor,
    ):
        path = f"/v1/lenders/{address('bank-a')}/limits"
        answers = [bank.get(path) for _ in range(CALLER_BURST + 2)]
        assert [r.status_code for r in answers] == [200] * CALLER_BURST + [429, 429]
        r = answers[-1]
        p = problem(r)
        assert p["code"] == "RateLimited" and p["limit_per_s"] == SLOW
        assert int(r.headers["Retry-After"]) == p["retry_after_s"] >= 1
        # per caller: another member on the same node, from the same address, is served
        assert auditor.get(path).status_code == 200
        # unauthenticated requests are not counted against anyone's bucket
        assert NodeSession(url).get(path).status_code == 401
        assert bank.get("/healthz").status_code == 200


def test_sign_in_flood_from_one_address_gets_429(net: Consortium) -> None:
    url = net.urls["bank-b"]
    who = address("bank-b")
    with httpx.Client(trust_env=False, timeout=30) as http:
        answers = [
            http.post(f"{url}/v1/auth/challenge", json={"address": who})
            for _ in range(AUTH_BURST + 1)
        ]
        assert [r.status_code for r in answers] == [200] * AUTH_BURST + [429]
        p = problem(answers[-1])
        assert p["code"] == "RateLimited" and int(answers[-1].headers["Retry-After"]) >= 1
        assert http.get(f"{url}/healthz").status_code == 200
    with pytest.raises(SignInError) as err:
        NodeSession.signed_in(url, account("bank-b"))
    assert err.value.status == 429
    # the other nodes keep buckets of their own
    with NodeSession.signed_in(net.urls["bank-c"], account("bank-b")) as s:
        assert s.get(f"/v1/lenders/{who}/limits").status_code == 200


def _behind_proxy(client: str) -> httpx.Client:
    return httpx.Client(
        trust_env=False, timeout=30, headers={"X-Forwarded-For": f"{client}, 127.0.0.1"}
    )


def test_sign_in_flood_cannot_lock_a_member_out(net: Consortium) -> None:
    """Issue 14, item 9. A client floods one node's sign-in with challenges for random addresses
    and for a member's address; the member, from its own client, still signs in. Random
    addresses get no challenge (403, no nonce stored), the flood empties only the flooder's own
    bucket, and the member's challenge and token are unaffected."""
    url = net.urls["auditor"]
    member = account("bank-a")
    with _behind_proxy("203.0.113.66") as flooder:
        codes = []
        for i in range(AUTH_BURST * 3):
            who = member.address if i % 2 else dev_account("flood", i).address
            codes.append(flooder.post(f"{url}/v1/auth/challenge", json={"address": who}))
        statuses = [r.status_code for r in codes]
        assert 429 in statuses and set(statuses) <= {200, 403, 429}, statuses
        assert all(problem(r)["code"] == "MemberNotActive" for r in codes if r.status_code == 403)
        # it cannot escape its bucket by writing its own X-Forwarded-For entries to the left
        r = flooder.post(
            f"{url}/v1/auth/challenge",
            json={"address": member.address},
            headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.66, 127.0.0.1"},
        )
        assert r.status_code == 429
    with _behind_proxy("198.51.100.7") as own:
        tok = sign_in(url, member, http=own)
    assert tok["address"] == member.address
    with NodeSession(url, tok["access_token"]) as s:
        assert s.get(f"/v1/lenders/{member.address}/limits").status_code == 200


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(net: Consortium) -> None:
    """Default: no proxy is trusted, so a client cannot pick a fresh bucket per request by
    forging X-Forwarded-For."""
    url = net.urls["bank-c"]
    with httpx.Client(trust_env=False, timeout=30) as http:
        answers = [
            http.post(
                f"{url}/v1/auth/challenge",
                json={"address": address("bank-c")},
                headers={"X-Forwarded-For": f"192.0.2.{i}"},
            )
            for i in range(AUTH_BURST * 4 + 1)
        ]
    assert answers[-1].status_code == 429


def test_client_ip_believes_forwarded_for_only_from_trusted_proxies() -> None:
    import ipaddress

    from api.limits import client_ip

    proxies = (ipaddress.ip_network("10.0.0.0/8"),)

    def scope(peer: str, xff: str | None) -> dict:
        headers = [(b"x-forwarded-for", xff.encode())] if xff is not None else []
        return {"client": (peer, 1234), "headers": headers}

    assert client_ip(scope("203.0.113.5", "198.51.100.1"), proxies) == "203.0.113.5"
    assert client_ip(scope("203.0.113.5", "198.51.100.1"), ()) == "203.0.113.5"
    assert client_ip(scope("10.0.0.2", "198.51.100.1"), ()) == "10.0.0.2"
    assert client_ip(scope("10.0.0.2", "198.51.100.1"), proxies) == "198.51.100.1"
    # entries left of the last untrusted hop were written by the client: ignored
    assert client_ip(scope("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.9"), proxies) == (
        "198.51.100.1"
    )
    assert client_ip(scope("10.0.0.2", None), proxies) == "10.0.0.2"
    assert client_ip(scope("10.0.0.2", "not-an-ip"), proxies) == "10.0.0.2"
