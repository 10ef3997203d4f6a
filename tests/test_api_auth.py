"""Sign-in (EIP-4361) and request validation, over real HTTP: token expiry, nonce reuse, forged
and misdirected signatures, a suspended member, and problem+json for bad input (a bad national ID
included, which must never be echoed)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from ledger import siwe
from ledger.domain import Role
from ledger.keys import dev_account
from ledger.nodeclient import NodeSession, SignInError, sign_in
from tests.api_support import Consortium, account, address, loan_body, problem, running_consortium

SHORT = "bank-c"  # its node issues 2-second tokens and challenges
VALID_ID = "11010519491231002X"
BAD_ID = "110105194912310021"  # right length and birth date, wrong check digit


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    overrides = {SHORT: {"token_ttl_s": 2, "challenge_ttl_s": 2}}
    with running_consortium(tmp_path_factory.mktemp("auth"), overrides) as c:
        yield c


def _challenge(url: str, who: str) -> str:
    r = httpx.post(f"{url}/v1/auth/challenge", json={"address": who}, trust_env=False)
    assert r.status_code == 200, r.text
    return r.json()["message"]


def _token(url: str, message: str, signature: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/auth/token", json={"message": message, "signature": signature}, trust_env=False
    )


def test_challenge_is_eip4361_for_this_node_and_chain(net: Consortium) -> None:
    url = net.urls["bank-a"]
    msg = siwe.parse(_challenge(url, address("platform")))
    assert msg.domain == url.removeprefix("http://") and msg.uri == url
    assert msg.chain_id == 31337 and msg.version == "1" and msg.address == address("platform")
    assert msg.expiration_time is not None and msg.expiration_time > msg.issued_at
    assert len(msg.nonce) >= 8


def test_token_is_bound_to_address_and_role(net: Consortium) -> None:
    tok = sign_in(net.urls["bank-a"], account("auditor"))
    assert tok["token_type"] == "bearer" and tok["role"] == "auditor"
    assert tok["address"] == address("auditor")
    with NodeSession(net.urls["bank-a"], tok["access_token"]) as s:
        assert s.get(f"/v1/lenders/{address('bank-a')}/limits").status_code == 200


def test_nonce_is_single_use(net: Consortium) -> None:
    url = net.urls["platform"]
    text = _challenge(url, address("bank-a"))
    sig = siwe.sign(text, account("bank-a").key)
    assert _token(url, text, sig).status_code == 200
    r = _token(url, text, sig)
    assert r.status_code == 401 and problem(r)["code"] == "NonceInvalid"


def test_forged_signature_is_refused_and_does_not_burn_the_nonce(net: Consortium) -> None:
    url = net.urls["platform"]
    text = _challenge(url, address("bank-a"))
    forged = siwe.sign(text, dev_account("mallory").key)  # not bank-a's key
    r = _token(url, text, forged)
    assert r.status_code == 401 and problem(r)["code"] == "InvalidSignature"
    garbage = _token(url, text, "0x" + "00" * 65)
    assert garbage.status_code == 401 and problem(garbage)["code"] == "InvalidSignature"
    # the real member can still use its challenge
    assert _token(url, text, siwe.sign(text, account("bank-a").key)).status_code == 200


def test_tampered_message_is_refused(net: Consortium) -> None:
    url = net.urls["platform"]
    text = _challenge(url, address("bank-a"))
    sig = siwe.sign(text, account("bank-a").key)
    # the signature covers the text: claiming another address with it fails
    tampered = text.replace(address("bank-a"), address("auditor"))
    r = _token(url, tampered, sig)
    assert r.status_code == 401 and problem(r)["code"] in ("InvalidSignature", "NonceInvalid")


def test_challenge_of_one_node_is_refused_by_another(net: Consortium) -> None:
    text = _challenge(net.urls["bank-a"], address("platform"))
    sig = siwe.sign(text, account("platform").key)
    r = _token(net.urls["bank-b"], text, sig)
    assert r.status_code == 401 and problem(r)["code"] == "WrongDomain"


def test_token_of_one_node_means_nothing_to_another(net: Consortium) -> None:
    tok = sign_in(net.urls["bank-a"], account("platform"))["access_token"]
    with NodeSession(net.urls["bank-b"], tok) as s:
        r = s.get("/v1/borrowers/0x" + "00" * 32 + "/exposure")
    assert r.status_code == 401 and problem(r)["code"] == "InvalidToken"


def test_non_member_cannot_sign_in(net: Consortium) -> None:
    with pytest.raises(SignInError) as err:
        sign_in(net.urls["platform"], dev_account("mallory"))
    assert err.value.status == 403 and err.value.problem["code"] == "MemberNotActive"


def test_token_expires(net: Consortium) -> None:
    tok = sign_in(net.urls[SHORT], account("platform"))["access_token"]
    with NodeSession(net.urls[SHORT], tok) as s:
        assert s.get(f"/v1/borrowers/0x{'00' * 32}/exposure").status_code == 200
        time.sleep(3.1)
        r = s.get(f"/v1/borrowers/0x{'00' * 32}/exposure")
    assert r.status_code == 401 and problem(r)["code"] == "TokenExpired"


def test_challenge_expires(net: Consortium) -> None:
    url = net.urls[SHORT]
    text = _challenge(url, address("platform"))
    time.sleep(3.1)
    r = _token(url, text, siwe.sign(text, account("platform").key))
    assert r.status_code == 401 and problem(r)["code"] == "ChallengeExpired"


def test_bad_bearer_tokens(net: Consortium) -> None:
    url = net.urls["platform"]
    path = f"{url}/v1/borrowers/0x{'00' * 32}/exposure"
    for headers, code in (
        ({}, "Unauthenticated"),
        ({"Authorization": "Bearer not-a-token"}, "InvalidToken"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Unauthenticated"),
    ):
        r = httpx.get(path, headers=headers, trust_env=False)
        assert r.status_code == 401 and problem(r)["code"] == code, r.text
        assert r.headers["www-authenticate"] == "Bearer"


def test_suspended_member_loses_access_on_its_next_request(net: Consortium) -> None:
    newcomer = dev_account("lender", 3)
    gov = net.cx.gov
    gov.admit_member(newcomer.address, Role.LENDER, "Bank D (dev)")
    with NodeSession.signed_in(net.urls["platform"], newcomer) as s:
        path = f"/v1/borrowers/0x{'00' * 32}/exposure"
        assert s.get(path).status_code == 200
        gov.suspend_member(newcomer.address)
        r = s.get(path)  # the same, still unexpired token
        assert r.status_code == 403 and problem(r)["code"] == "MemberNotActive"
        with pytest.raises(SignInError) as err:
            sign_in(net.urls["platform"], newcomer)
        assert err.value.status == 403
        gov.reinstate_member(newcomer.address)
        assert s.get(path).status_code == 200


def test_frozen_member_loses_access_on_every_node_at_once(net: Consortium) -> None:
    """Issue 14, item 8. An insider whose member record is frozen on chain (registry.setFrozen,
    status still Active) keeps neither its tokens nor a way to get new ones, on any node, from
    the very next request; unfreezing restores it."""
    newcomer = dev_account("lender", 4)
    gov = net.cx.gov
    gov.admit_member(newcomer.address, Role.LENDER, "Bank E (dev)")
    path = f"/v1/borrowers/0x{'00' * 32}/exposure"
    key = {"national_id": "11010519491231002X", "purpose": "enquiry"}
    sessions = {name: NodeSession.signed_in(url, newcomer) for name, url in net.urls.items()}
    # what each service answers a member: a node its exposure reads, the key service keys
    ask = {name: (lambda s: s.get(path)) for name in net.urls}
    ask["keyservice"] = lambda s: s.post("/v1/keys", key)
    try:
        for name, s in sessions.items():
            assert ask[name](s).status_code == 200, name
        gov.set_frozen(newcomer.address, True)
        assert net.cx.gov.member(newcomer.address)["frozen"]
        for name, s in sessions.items():
            r = ask[name](s)  # the same, still unexpired token
            assert r.status_code == 403 and problem(r)["code"] == "MemberIsFrozen", (name, r.text)
            r = httpx.post(
                f"{net.urls[name]}/v1/auth/challenge",
                json={"address": newcomer.address},
                trust_env=False,
            )
            assert r.status_code == 403 and problem(r)["code"] == "MemberIsFrozen", (name, r.text)
        # a challenge obtained before the freeze cannot be exchanged after it either
        gov.set_frozen(newcomer.address, False)
        text = _challenge(net.urls["platform"], newcomer.address)
        gov.set_frozen(newcomer.address, True)
        r = _token(net.urls["platform"], text, siwe.sign(text, newcomer.key))
        assert r.status_code == 403 and problem(r)["code"] == "MemberIsFrozen"
        gov.set_frozen(newcomer.address, False)
        for name, s in sessions.items():
            assert ask[name](s).status_code == 200, name
    finally:
        for s in sessions.values():
            s.close()


def test_challenge_is_refused_to_addresses_that_are_not_active_members(net: Consortium) -> None:
    """A challenge stores a nonce: it is issued only to active, unfrozen members, so a flood for
    random addresses stores nothing."""
    r = httpx.post(
        f"{net.urls['bank-a']}/v1/auth/challenge",
        json={"address": dev_account("mallory").address},
        trust_env=False,
    )
    assert r.status_code == 403 and problem(r)["code"] == "MemberNotActive"


def test_bad_national_id_is_a_422_that_never_echoes_it(net: Consortium) -> None:
    s = net.session("bank-a", "bank-a")
    r = s.post("/v1/borrowers/key", {"national_id": BAD_ID})
    body = problem(r)
    assert r.status_code == 422 and body["code"] == "InvalidResidentId"
    assert body["errors"] == [
        {"field": "borrower_id", "rule": "check_digit", "message": body["detail"]}
    ]
    assert BAD_ID not in r.text and BAD_ID[:17] not in r.text
    ok = s.post("/v1/borrowers/key", {"national_id": VALID_ID})
    assert ok.status_code == 200 and VALID_ID not in ok.text
    # the same key on every node (same consortium pepper)
    other = net.session("auditor", "auditor").post("/v1/borrowers/key", {"national_id": VALID_ID})
    assert other.json() == ok.json()
    # and in a loan request: refused before anything else happens
    plat = net.session("platform", "platform")
    loan = loan_body("bad-id", {"platform": 400_000, "bank-a": 600_000}, borrower_id=BAD_ID)
    r = plat.post("/v1/loans", loan)
    assert r.status_code == 422 and problem(r)["code"] == "InvalidResidentId"
    assert BAD_ID not in r.text
    log = (net.state / "nodes" / "platform" / "node.log").read_text()
    assert BAD_ID not in log and VALID_ID not in log


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"principal": 1_000_000.0}, "principal", "int_type"),
        ({"principal": "1000000"}, "principal", "int_type"),
        ({"principal": -5}, "principal", "greater_than"),
        ({"product": "mortgage"}, "product", "literal_error"),
        ({"tranches": []}, "tranches", "too_short"),
        ({"loan_id": ""}, "loan_id", "string_too_short"),
        ({"unexpected": 1}, "unexpected", "extra_forbidden"),
        ({"borrower_id": VALID_ID}, "body", "value_error"),  # both borrower_id and borrower_key
    ],
)
def test_validation_errors_are_problems_naming_field_and_rule(
    net: Consortium, change: dict, field: str, rule: str
) -> None:
    body = loan_body("validation", {"platform": 400_000, "bank-a": 600_000}) | change
    r = net.session("platform", "platform").post("/v1/loans", body)
    p = problem(r)
    assert r.status_code == 422 and p["code"] == "ValidationFailed"
    assert {"field": field, "rule": rule} in [
        {"field": e["field"], "rule": e["rule"]} for e in p["errors"]
    ], p
    assert all("input" not in e for e in p["errors"])
    assert VALID_ID not in r.text


def test_duplicate_lender_and_malformed_json(net: Consortium) -> None:
    plat = net.session("platform", "platform")
    body = loan_body("dup", {"platform": 400_000, "bank-a": 600_000})
    body["tranches"].append(dict(body["tranches"][1]))
    r = plat.post("/v1/loans", body)
    assert r.status_code == 422 and problem(r)["errors"][0]["field"] == "tranches"
    r = plat.request("POST", "/v1/loans", content=b"{not json",
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and problem(r)["code"] == "ValidationFailed"
