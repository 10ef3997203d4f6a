"""Bad input over real HTTP, against real node processes.

1. Schemathesis against each node role's OpenAPI document (platform, bank-a as a lender, auditor,
   a guarantor), signed in as that node's own member: no 5xx, and every response conforms to the
   document
   (status code, content type, body schema, headers).
2. Hypothesis over bodies of POST /v1/loans on the platform node: every bad body is a 4xx
   problem+json naming the field, and nothing reaches the chain.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.chain.deployment import fund
from ledger.domain import MAX_AMOUNT, Role
from tests.api_support import (
    Consortium,
    account,
    address,
    loan_body,
    problem,
    running_consortium,
    start_node,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
# Bounded: a few dozen requests per operation keep the whole module to a couple of minutes.
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    with running_consortium(tmp_path_factory.mktemp("bad-input")) as c:
        g = account("guarantor")  # a guarantor the council admitted, on a node of its own
        fund(c.chain.url, [g.address])
        c.cx.gov.admit_member(g.address, Role.GUARANTOR, "Guarantor (dev)")
        start_node(c, "guarantor", "guarantor")
        yield c


def _fuzz(net: Consortium, node: str) -> list[str]:
    """Every operation of `node`'s OpenAPI, positive and negative examples; the failures.

    No operation is excluded. Driven through `as_strategy` rather than schemathesis' pytest
    integration (`from_fixture(...).parametrize()`), which sets `Function._nodeid`, an attribute
    pytest 9.2 no longer has."""
    schema = schemathesis.openapi.from_url(f"{net.urls[node]}/openapi.json")
    token = net.session(node, node).token
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    nothing_to_negate: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 5
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                # An "invalid" extra query parameter whose value is an empty list is sent as
                # nothing at all, so the request on the wire is valid: not a case to judge.
                assume(not any(v == [] for v in (case.query or {}).values()))
                case.call_and_validate(
                    base_url=net.urls[node], headers=headers, checks=CHECKS, timeout=60
                )

            try:
                run()
            except Unsatisfiable:
                # No parameters and no body: there is no invalid request to make.
                if mode is GenerationMode.NEGATIVE:
                    nothing_to_negate.append(op.label)
                else:
                    failures.append(f"{op.label} ({mode.value}): no example could be generated")
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
                failures.append(f"{op.label} ({mode.value}): {exc}")
    assert sorted(nothing_to_negate) == ["GET /healthz", "GET /metrics", "GET /readyz"]
    return failures


@pytest.mark.parametrize("node", ["platform", "bank-a", "auditor", "guarantor"])
def test_node_conforms_to_its_openapi(net: Consortium, node: str) -> None:
    failures = _fuzz(net, node)
    assert not failures, "\n\n".join(failures)


# ---------------------------------------------------------------- POST /v1/loans bodies

_ids = itertools.count()
Mutation = tuple[Callable[[dict[str, Any]], None], str]  # (change the body, field it breaks)


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target = body
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value

    return change


def _sum_off(delta: int) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        body["principal"] += delta

    return change


def _duplicate_lender(body: dict[str, Any]) -> None:
    body["tranches"][1]["lender"] = body["tranches"][0]["lender"]


bad_amounts = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_AMOUNT + 1, max_value=2**128),
    st.integers(min_value=2**128 + 1, max_value=2**512),
)
not_ascii = st.text(min_size=1, max_size=40).filter(lambda t: not t.isascii())
too_long = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=81)
bad_ids = st.one_of(not_ascii, too_long, st.just(""), st.just("loan 1"), st.integers())
bad_hex = st.one_of(
    st.text(max_size=70).filter(lambda t: not t.startswith("0x") or len(t) != 66),
    st.from_regex(r"\A0x[0-9a-fA-F]{0,63}[g-zG-Z]?\Z"),
    st.from_regex(r"\A0x[0-9a-fA-F]{65,70}\Z"),
)
bad_addresses = st.one_of(
    st.text(max_size=50),
    st.from_regex(r"\A0x[0-9a-fA-F]{39}\Z"),
    st.from_regex(r"\A0x[0-9a-fA-F]{38}[g-z]{2}\Z"),
    st.integers(min_value=0),
)
# Never a valid ID: too long, or not ASCII.
bad_national_ids = st.one_of(st.text(min_size=33, max_size=200), not_ascii)

mutations: st.SearchStrategy[Mutation] = st.one_of(
    bad_amounts.map(lambda v: (_set(("principal",), v), "principal")),
    bad_amounts.map(lambda v: (_set(("tranches", 1, "amount"), v), "tranches.1.amount")),
    st.integers(-500_000, 500_000).filter(bool).map(lambda d: (_sum_off(d), "tranches")),
    st.just((_duplicate_lender, "tranches")),
    bad_ids.map(lambda v: (_set(("loan_id",), v), "loan_id")),
    bad_ids.map(lambda v: (_set(("line_id",), v), "line_id")),
    bad_hex.map(lambda v: (_set(("borrower_key",), v), "borrower_key")),
    bad_addresses.map(lambda v: (_set(("tranches", 0, "lender"), v), "tranches.0.lender")),
    not_ascii.map(lambda v: (_set(("product",), v), "product")),
    not_ascii.map(lambda v: (_set(("repayment",), v), "repayment")),
    st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)).map(
        lambda v: (_set(("apr_bps",), v), "apr_bps")
    ),
    st.one_of(st.integers(max_value=0), st.integers(min_value=2**32)).map(
        lambda v: (_set(("term_days",), v), "term_days")
    ),
    not_ascii.map(lambda v: (_set(("document",), v), "document")),
)


def _named(p: dict[str, Any], field: str) -> bool:
    return any(e["field"] == field for e in p.get("errors", []))


def test_bad_loan_bodies_are_4xx_problems_naming_the_field_and_reach_no_chain(
    net: Consortium,
) -> None:
    plat = net.session("platform", "platform")
    w3 = net.cx.plat.w3
    nonce = w3.eth.get_transaction_count(address("platform"))
    start = w3.eth.block_number

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(mutation=mutations, national_id=st.one_of(st.none(), bad_national_ids))
    def bad_body(mutation: Mutation, national_id: str | None) -> None:
        change, field = mutation
        body = loan_body(f"bad-{next(_ids)}", {"platform": 400_000, "bank-a": 600_000})
        change(body)
        if national_id is not None and field != "borrower_key":
            # a bad national ID as well: refused too, and never echoed
            del body["borrower_key"]
            body["borrower_id"] = national_id
        r = plat.post("/v1/loans", body)
        p = problem(r)
        assert r.status_code in (400, 422), p
        if national_id is None:
            assert _named(p, field), (field, p)
        else:
            assert _named(p, field) or _named(p, "borrower_id"), (field, p)
        if national_id is not None and len(national_id) >= 4:
            assert national_id not in r.text

    bad_body()
    assert w3.eth.get_transaction_count(address("platform")) == nonce
    head = w3.eth.block_number
    if head > start:  # anything mined meanwhile holds no new loan
        event = net.cx.plat.ledger.events.LoanOriginated()
        assert list(event.get_logs(from_block=start + 1, to_block=head)) == []
