"""The node's pure parts, without processes: the EIP-4361 message format, the idempotency
runner's claim/replay/resume rules, and problem documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from api import store
from api.problems import Problem, rule_problem
from api.service import idem
from api.service.context import KeyedLocks
from ledger import siwe
from ledger.chain.errors import error_class
from ledger.keys import dev_account

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _message(**change: object) -> siwe.SiweMessage:
    fields: dict = {
        "domain": "127.0.0.1:8101",
        "address": dev_account("lender", 0).address,
        "statement": "Sign in to the node bank-a.",
        "uri": "http://127.0.0.1:8101",
        "chain_id": 31337,
        "nonce": "a1b2c3d4e5f6",
        "issued_at": NOW,
        "expiration_time": NOW + timedelta(minutes=5),
    } | change
    return siwe.SiweMessage(**fields)


def test_siwe_round_trip_and_signature() -> None:
    msg = _message(resources=("https://example.org/terms",), request_id="r-1")
    text = msg.text()
    assert text.splitlines()[0] == "127.0.0.1:8101 wants you to sign in with your Ethereum account:"
    assert siwe.parse(text) == msg
    no_statement = _message(statement=None)
    assert siwe.parse(no_statement.text()) == no_statement
    acct = dev_account("lender", 0)
    assert siwe.recover(text, siwe.sign(text, acct.key)) == acct.address


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.replace("Version: 1", "Version: 2"),
        lambda t: t.replace("Chain ID: 31337", "Chain ID: x"),
        lambda t: t.replace("Nonce: a1b2c3d4e5f6", "Nonce: short"),
        lambda t: t.replace(
            dev_account("lender", 0).address, dev_account("lender", 0).address.lower()
        ),
        lambda t: t.replace("URI: ", "Uri: "),
        lambda t: t + "\nExtra: field",
        lambda t: t.replace("\n", "\r\n"),
        lambda t: t.replace("2025-01-01T00:00:00Z", "yesterday"),
        lambda t: "\n".join(t.splitlines()[1:]),
    ],
)
def test_siwe_parser_is_strict(mutate) -> None:  # noqa: ANN001
    with pytest.raises(siwe.SiweError):
        siwe.parse(mutate(_message().text()))


def test_siwe_recover_refuses_malformed_signatures() -> None:
    for bad in ("nothex", "0x" + "00" * 10, "0x" + "00" * 65):
        with pytest.raises(siwe.SiweError):
            siwe.recover("hello", bad)


@pytest.fixture
def node(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(engine=store.make_engine(f"sqlite:///{tmp_path / 'n.db'}"),
                           locks=KeyedLocks())  # fmt: skip


def test_idempotency_replays_conflicts_and_frees_refused_ids(node: SimpleNamespace) -> None:
    calls = []

    def work(pending, save):  # noqa: ANN001, ANN202
        calls.append(pending)
        return 201, {"n": len(calls)}

    assert idem.run(node, "loan", "k1", {"a": 1}, work) == (201, {"n": 1}, False)
    assert idem.run(node, "loan", "k1", {"a": 1}, work) == (201, {"n": 1}, True)
    assert len(calls) == 1
    with pytest.raises(Problem) as err:
        idem.run(node, "loan", "k1", {"a": 2}, work)
    assert err.value.status == 409 and err.value.code == "IdempotencyConflict"
    # the same id under another kind is another record
    assert idem.run(node, "repayment", "k1", {"a": 2}, work)[0] == 201

    def refused(pending, save):  # noqa: ANN001, ANN202
        save({"submitted": True})
        raise rule_problem("BorrowerCapExceeded", {"exposure": 1, "requested": 2, "cap": 2}, "t")

    with pytest.raises(Problem):
        idem.run(node, "loan", "k2", {"a": 1}, refused)
    assert store.get_record(node.engine, "loan", "k2") is None  # free to try again


def test_idempotency_resumes_what_was_sent_before_an_unknown_failure(node: SimpleNamespace) -> None:
    def lost(pending, save):  # noqa: ANN001, ANN202
        save({"terms": {"x": 1}, "submitted": True})
        raise TimeoutError("no receipt")

    with pytest.raises(TimeoutError):
        idem.run(node, "loan", "k3", {"a": 1}, lost)
    seen = []

    def resume(pending, save):  # noqa: ANN001, ANN202
        seen.append(pending)
        return 201, {"ok": True}

    assert idem.run(node, "loan", "k3", {"a": 1}, resume) == (201, {"ok": True}, False)
    assert seen == [{"terms": {"x": 1}, "submitted": True}]

    def early(pending, save):  # noqa: ANN001, ANN202
        raise TimeoutError("before anything was sent")

    with pytest.raises(TimeoutError):
        idem.run(node, "loan", "k4", {"a": 1}, early)
    assert store.get_record(node.engine, "loan", "k4") is None


def test_rule_problem_carries_rule_numbers_and_headroom() -> None:
    p = rule_problem(
        "BorrowerCapExceeded",
        {"borrowerKey": b"\x01" * 32, "exposure": 12, "requested": 10, "cap": 20},
        "the contract",
    )
    body = p.body("/v1/loans")
    assert (p.status, body["code"], body["rule"], body["headroom"]) == (
        409, "BorrowerCapExceeded", "R1/R2", 8,
    )  # fmt: skip
    assert body["borrowerKey"] == "0x" + "01" * 32 and body["instance"] == "/v1/loans"
    # an argument named like a standard member never overwrites it
    panic = rule_problem("Panic", {"code": 17}, "the contract").body()
    assert panic["code"] == "Panic" and panic["codeValue"] == 17 and panic["status"] == 400
    assert error_class("WrongRole")().code == "WrongRole"
    assert rule_problem("WrongRole", {}, "x").status == 403
