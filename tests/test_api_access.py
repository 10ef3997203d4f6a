"""The access matrix, over real HTTP against the five node processes: every endpoint x every
role (platform, a bank that funds the loan, a bank that does not, the auditor) and no token,
each with the status it must get (the deployer, once the governor, cannot even sign in since the
registry was handed to the council). Object-level scoping (OWASP API1) is part of it: a
bank that funds no tranche of a loan gets 404 for it, as for a loan that does not exist."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ledger.records import loan_terms
from tests.api_support import Consortium, address, loan_body, problem, running_consortium

P, A, C, AU, G = "platform", "bank-a", "bank-c", "auditor", "governor"
CALLERS = [P, A, C, AU, None]
_ids = itertools.count()


def uid(label: str) -> str:
    return f"access-{label}-{next(_ids)}"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    # The auditor's node reads the chain directly (no indexer), the others their read model:
    # the same matrix holds for both.
    overrides = {AU: {"read_model": "chain"}}
    with running_consortium(tmp_path_factory.mktemp("access"), overrides) as c:
        plat = c.session(P, "platform")
        # One loan funded by the platform, bank-a and bank-b (not bank-c), and one to change
        # the status of.
        for name in ("loan", "status-loan"):
            body = loan_body(f"access-{name}", {P: 400_000, A: 300_000, "bank-b": 300_000})
            r = plat.post("/v1/loans", body)
            assert r.status_code == 201, r.text
            c.data[name] = r.json()
        yield c


def _cosign_terms(net: Consortium) -> dict[str, Any]:
    loan = net.cx.loan(1_000_000, [(net.cx.platform, 400_000), (net.cx.lenders[0], 600_000)])
    return {"kind": "loan", "terms": loan_terms(loan)}


def _attestation(net: Consortium) -> dict[str, Any]:
    return {
        "tier1_capital": 10**12,
        "total_loan_balance": 10**13,
        "valid_until": net.cx.now() + 30 * 86_400,
    }


def key(n: Consortium) -> str:
    return n.data["loan"]["borrower_key"]


def lid(n: Consortium) -> str:
    return n.data["loan"]["loan_id"]


Body = Callable[[Consortium], Any]
# name -> (node, method, path(net), body(net) or None, {caller: status})
WRITE = {P: None, A: 403, C: 403, AU: 403, G: 403, None: 401}
READ = {P: 200, A: 200, C: 200, AU: 200, G: 403, None: 401}
OPEN = dict.fromkeys(CALLERS, 200)

ENDPOINTS: dict[str, tuple[str, str, Callable[[Consortium], str], Body | None, dict]] = {
    "POST /v1/credit-lines": (
        "platform", "POST", lambda n: "/v1/credit-lines",
        lambda n: {
            "line_id": uid("line"), "borrower_key": "0x" + "11" * 32, "product": "consumer",
            "limit": 1_000_000, "expires_at": n.cx.now() + 86_400,
            "shares": [{"lender": address(P), "amount": 400_000},
                       {"lender": address(A), "amount": 600_000}],
        },
        {**WRITE, P: 201},
    ),
    "POST /v1/loans": (
        "platform", "POST", lambda n: "/v1/loans",
        lambda n: loan_body(uid("loan"), {P: 400_000, A: 600_000}),
        {**WRITE, P: 201},
    ),
    "POST /v1/loans/batch": (
        "platform", "POST", lambda n: "/v1/loans/batch",
        lambda n: {"loans": [loan_body(uid("batch"), {P: 400_000, A: 600_000})]},
        {**WRITE, P: 200},
    ),
    "POST /v1/loans/{id}/repayments": (
        "platform", "POST", lambda n: f"/v1/loans/{lid(n)}/repayments",
        lambda n: {"repayment_id": uid("repay"), "principal": 1_000, "interest": 10},
        {**WRITE, P: 201},
    ),
    "POST /v1/loans/{id}/status": (
        "platform", "POST", lambda n: f"/v1/loans/{n.data['status-loan']['loan_id']}/status",
        lambda n: {"status": "overdue", "reason": "DPD30"},
        {**WRITE, P: 200},
    ),
    "GET /v1/originations/pending": (
        "platform", "GET", lambda n: "/v1/originations/pending", None,
        {P: 200, A: 403, C: 403, AU: 403, G: 403, None: 401},
    ),
    "GET /v1/loans/{id}": (
        "platform", "GET", lambda n: f"/v1/loans/{lid(n)}", None,
        {**READ, C: 404},
    ),
    "GET /v1/loans?borrower_key": (
        "platform", "GET", lambda n: f"/v1/loans?borrower_key={key(n)}", None,
        READ,
    ),
    "GET /v1/borrowers/{key}/exposure": (
        "platform", "GET", lambda n: f"/v1/borrowers/{key(n)}/exposure", None,
        READ,
    ),
    "POST /v1/borrowers/key": (
        "platform", "POST", lambda n: "/v1/borrowers/key",
        lambda n: {"national_id": "11010519491231002X"}, READ,
    ),
    "GET /v1/lenders/{bank-a}/limits": (
        "platform", "GET", lambda n: f"/v1/lenders/{address(A)}/limits", None,
        {**READ, P: 403, C: 403},
    ),
    "POST /v1/auth/challenge": (
        "platform", "POST", lambda n: "/v1/auth/challenge",
        lambda n: {"address": address(A)}, OPEN,
    ),
    "GET /healthz": ("platform", "GET", lambda n: "/healthz", None, OPEN),
    "GET /readyz": ("platform", "GET", lambda n: "/readyz", None, OPEN),
    "GET /metrics": ("platform", "GET", lambda n: "/metrics", None, OPEN),
    "POST /v1/cosign (bank-a node)": (
        "bank-a", "POST", lambda n: "/v1/cosign", _cosign_terms,
        {**WRITE, P: 200},
    ),
    "POST /v1/cosign/batch (bank-a node)": (
        "bank-a", "POST", lambda n: "/v1/cosign/batch",
        lambda n: {"kind": "loan", "items": [_cosign_terms(n)["terms"]]},
        {**WRITE, P: 200},
    ),
    "POST /v1/attestations/capital (bank-a node)": (
        "bank-a", "POST", lambda n: "/v1/attestations/capital", _attestation,
        {**WRITE, P: 403, A: 201},
    ),
    "GET /v1/loans/{id} (bank-a node)": (
        "bank-a", "GET", lambda n: f"/v1/loans/{lid(n)}", None,
        {**READ, C: 404},
    ),
    "GET /v1/borrowers/{key}/exposure (auditor node)": (
        "auditor", "GET", lambda n: f"/v1/borrowers/{key(n)}/exposure", None,
        READ,
    ),
    "GET /v1/loans?borrower_key (auditor node)": (
        "auditor", "GET", lambda n: f"/v1/loans?borrower_key={key(n)}", None,
        READ,
    ),
    "GET /v1/audit/report (auditor node)": (
        "auditor", "GET", lambda n: "/v1/audit/report", None,
        {P: 403, A: 403, C: 403, AU: 200, G: 403, None: 401},
    ),
    "GET /v1/loans/{id}/evidence (auditor node)": (
        "auditor", "GET", lambda n: f"/v1/loans/{lid(n)}/evidence", None,
        {P: 403, A: 403, C: 403, AU: 200, G: 403, None: 401},
    ),
}  # fmt: skip


def test_the_deployer_governs_nothing_and_cannot_sign_in(net: Consortium) -> None:
    from ledger.nodeclient import SignInError, sign_in
    from tests.api_support import account

    for node in ("platform", "bank-a", "auditor"):
        with pytest.raises(SignInError) as err:
            sign_in(net.urls[node], account(G))
        assert err.value.status == 403 and err.value.problem["code"] == "MemberNotActive"


def test_auditor_report_and_evidence(net: Consortium) -> None:
    from ledger.evidence import verify

    auditor = net.session(AU, "auditor")
    report = auditor.get("/v1/audit/report").json()
    assert report["ok"] is True and report["violation_count"] == 0
    assert report["records"]["loans"] >= 2
    ev = auditor.get(f"/v1/loans/{lid(net)}/evidence").json()
    assert ev["loan_id"] == lid(net)
    assert verify(ev).ok
    missing = auditor.get("/v1/loans/no-such-loan/evidence")
    assert missing.status_code == 404 and problem(missing)["code"] == "LoanNotFound"
    future = auditor.get("/v1/audit/report", params={"block": 10**9})
    assert future.status_code == 422 and problem(future)["code"] == "BlockInFuture"


def test_scoped_listing_shows_each_caller_only_its_loans(net: Consortium) -> None:
    key = net.data["loan"]["borrower_key"]
    counts = {}
    for caller in (P, A, C, AU):
        r = net.session(caller, "platform").get("/v1/loans", params={"borrower_key": key})
        assert r.status_code == 200
        counts[caller] = r.json()["count"]
    assert counts == {P: 1, A: 1, C: 0, AU: 1}


def test_exposure_is_consortium_wide_for_any_lender_but_own_share_is_its_own(
    net: Consortium,
) -> None:
    key = net.data["loan"]["borrower_key"]
    seen = {
        caller: net.session(caller, "platform").get(f"/v1/borrowers/{key}/exposure").json()
        for caller in (P, A, C, AU)
    }
    assert {s["total_exposure"] for s in seen.values()} == {1_000_000}
    own = {caller: s["own_exposure"] for caller, s in seen.items()}
    assert own == {P: 400_000, A: 300_000, C: 0, AU: None}


def test_endpoints_a_node_does_not_serve_are_absent(net: Consortium) -> None:
    # The auditor's node writes nothing, whoever asks; a bank's node originates nothing.
    r = net.session(AU, "auditor").post("/v1/credit-lines", {})
    assert r.status_code == 404 and problem(r)["code"] == "NotFound"
    r = net.session(A, "bank-a").post("/v1/loans/batch", {"loans": []})
    assert r.status_code in (404, 405)
    r = net.session(A, "bank-a").get("/v1/originations/pending")
    assert r.status_code == 404
    r = net.session(P, "platform").post("/v1/cosign", _cosign_terms(net))
    assert r.status_code == 404


CASES = [
    pytest.param(name, caller, id=f"{name} as {caller or 'anonymous'}")
    for name in ENDPOINTS
    for caller in CALLERS
]


@pytest.mark.parametrize(("endpoint", "caller"), CASES)
def test_access_matrix(net: Consortium, endpoint: str, caller: str | None) -> None:
    node, method, path, body, expected = ENDPOINTS[endpoint]
    session = net.session(caller, node)
    if method == "GET":
        r = session.get(path(net))
    else:
        r = session.post(path(net), body(net) if body else None)
    want = expected[caller]
    assert r.status_code == want, f"{endpoint} as {caller}: {r.status_code} {r.text}"
    if want >= 400:
        p = problem(r)
        if want == 401:
            assert p["code"] == "Unauthenticated" and r.headers["www-authenticate"] == "Bearer"
        if want == 404:
            assert p["code"] == "LoanNotFound"
