"""The key service (DESIGN §3, issue 14 item 3): the only holder of the consortium pepper.

Insider tests with real member keys: no member node holds the pepper (configs, databases, logs,
process environments and settings scanned for it); a member calling the key service directly
needs a purpose, is rate-limited per second and per day, cannot read the derivation log unless
it is the auditor, and loses access when suspended; a bad ID is refused on the node and never
sent; every derivation is logged (member, time, purpose, key; never the ID) in an append-only,
hash-chained log whose gaps the auditor detects."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.domain import Role
from ledger.keyclient import KeyClient, KeyServiceError, LogRow, check_log, check_url
from ledger.keys import dev_account
from ledger.localnet import nodes
from ledger.nodeclient import NodeSession, SignInError, sign_in
from tests.api_support import Consortium, account, address, problem, running_consortium
from tests.dbs import Databases
from tests.personal_data import Leaks

VALID_ID = "11010519491231002X"
OTHER_ID = "110105198001010032"
BAD_ID = "110105194912310021"  # wrong check digit
KS = nodes.KEY_SERVICE.name
RATE, BURST, PER_DAY = 5.0, 10, 40


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    limits = {"rate_per_s": RATE, "burst": BURST, "per_day": PER_DAY}
    with running_consortium(tmp_path_factory.mktemp("keys"), {KS: {"limits": limits}}) as c:
        yield c


def _pepper(net: Consortium) -> bytes:
    return bytes.fromhex((net.state / "nodes" / KS / "pepper.hex").read_text().strip())


def _auditor_log(net: Consortium) -> list[LogRow]:
    kc = KeyClient(net.urls[KS], account("auditor"))
    try:
        return list(kc.log(page=7))
    finally:
        kc.close()


def test_no_member_node_holds_the_pepper(net: Consortium) -> None:
    from api.service.context import MemberContext
    from api.settings import NodeSettings

    pepper = _pepper(net)
    assert len(pepper) == 32
    # the node's answer is HMAC(pepper, ID): the key service keys it, with this pepper
    r = net.session("bank-a", "bank-a").post("/v1/borrowers/key", {"national_id": VALID_ID})
    assert r.status_code == 200, r.text
    want = hmac.new(pepper, VALID_ID.encode(), hashlib.sha256).hexdigest()
    assert r.json()["borrower_key"] == "0x" + want
    needles = [pepper, pepper.hex().encode(), pepper.hex().upper().encode()]
    infos = {i.name: i for i in nodes.recorded(net.state)}
    for m in nodes.MEMBERS:
        home = net.state / "nodes" / m.name
        files = [p for p in home.rglob("*") if p.is_file()]
        assert any(p.name == "config.json" for p in files)
        for p in files:  # config, node.log, SQLite database and its WAL, documents
            data = p.read_bytes()
            assert not any(n in data for n in needles), f"the pepper is in {p}"
        proc = Path("/proc") / str(infos[m.name].pid)
        for part in ("environ", "cmdline"):
            data = (proc / part).read_bytes()
            assert not any(n in data for n in needles), f"the pepper is in {m.name}'s {part}"
        settings = NodeSettings.load(home / "config.json")
        assert settings.key_service.url == net.urls[KS]
    assert not [f for f in NodeSettings.model_fields if "pepper" in f]
    assert not [f.name for f in dataclasses.fields(MemberContext) if "pepper" in f.name]
    # and nothing a node process was started with names one
    assert "LEDGER_PEPPER" not in os.environ


def test_a_node_keys_through_the_key_service_and_the_auditor_reads_each_derivation(
    net: Consortium,
) -> None:
    before = len(_auditor_log(net))
    r = net.session("bank-b", "bank-b").post(
        "/v1/borrowers/key", {"national_id": OTHER_ID, "purpose": "servicing"}
    )
    assert r.status_code == 200, r.text
    rows = _auditor_log(net)
    assert len(rows) == before + 1
    last = rows[-1]
    assert (last.member, last.purpose, last.borrower_key) == (
        address("bank-b"),
        "servicing",
        r.json()["borrower_key"],
    )
    assert check_log(rows, nodes.KEY_SERVICE.address) == []
    # a bad ID is refused on the node and never reaches the key service
    bad = net.session("bank-b", "bank-b").post("/v1/borrowers/key", {"national_id": BAD_ID})
    assert bad.status_code == 422 and problem(bad)["code"] == "InvalidResidentId"
    assert len(_auditor_log(net)) == before + 1
    # no ID anywhere the key service writes (its log file, its database rows)
    leaks = Leaks()
    leaks.scan_tree(net.state / "nodes" / KS)
    assert leaks.seen == set()
    db = net.state / "nodes" / KS / "node.db"
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM keyservice_derivation")).scalar()


def test_insider_calling_the_key_service_directly_needs_a_purpose_and_a_role(
    net: Consortium,
) -> None:
    url = net.urls[KS]
    with NodeSession.signed_in(url, account("bank-a")) as s:
        r = s.post("/v1/keys", {"national_id": VALID_ID})
        assert r.status_code == 422 and problem(r)["code"] == "ValidationFailed"
        r = s.post("/v1/keys", {"national_id": VALID_ID, "purpose": "curiosity"})
        assert r.status_code == 422
        r = s.post("/v1/keys", {"national_id": BAD_ID, "purpose": "enquiry"})
        assert r.status_code == 422 and BAD_ID not in r.text
        ok = s.post("/v1/keys", {"national_id": VALID_ID, "purpose": "enquiry"})
        assert ok.status_code == 200 and VALID_ID not in ok.text
        # a lender does not originate: it may not state that purpose
        r = s.post("/v1/keys", {"national_id": VALID_ID, "purpose": "origination"})
        assert r.status_code == 403 and problem(r)["code"] == "PurposeNotAllowed"
        # a lender may not read who asked for which key
        r = s.get("/v1/log")
        assert r.status_code == 403 and problem(r)["code"] == "WrongRole"
    with NodeSession(url) as anon:
        r = anon.post("/v1/keys", {"national_id": VALID_ID, "purpose": "enquiry"})
        assert r.status_code == 401
    # the deployer (removed since it handed the registry to the council) and an outsider are
    # refused at sign-in, before any key could be asked for
    for outsider in (account("governor"), dev_account("mallory")):
        with pytest.raises(SignInError) as err:
            sign_in(url, outsider)
        assert err.value.status == 403


def test_a_suspended_member_loses_the_key_service_on_its_next_request(net: Consortium) -> None:
    newcomer = dev_account("lender", 3)
    gov = net.cx.gov
    gov.admit_member(newcomer.address, Role.LENDER, "Bank D (dev)")
    body = {"national_id": VALID_ID, "purpose": "enquiry"}
    with NodeSession.signed_in(net.urls[KS], newcomer) as s:
        assert s.post("/v1/keys", body).status_code == 200
        gov.suspend_member(newcomer.address)
        r = s.post("/v1/keys", body)  # the same, still unexpired token
        assert r.status_code == 403 and problem(r)["code"] == "MemberNotActive"  # as on every node


def test_insider_is_rate_limited_per_second_and_per_day(net: Consortium) -> None:
    body = {"national_id": VALID_ID, "purpose": "enquiry"}
    with NodeSession.signed_in(net.urls[KS], account("bank-c")) as s:
        codes = [s.post("/v1/keys", body).status_code for _ in range(BURST + 5)]
        assert codes.count(429) >= 4, codes
        r = s.post("/v1/keys", body)
        assert r.status_code == 429 and problem(r)["code"] == "RateLimited"
        # the day's cap holds however slowly it is approached
        done = codes.count(200)
        last = None
        while done < PER_DAY + 1:
            last = s.post("/v1/keys", body)
            if last.status_code == 200:
                done += 1
            elif problem(last)["code"] == "DailyQuotaExceeded":
                break
            else:
                time.sleep(1 / RATE)
        assert last is not None and last.status_code == 429
        assert problem(last)["code"] == "DailyQuotaExceeded" and done == PER_DAY
    # through bank-c's node the refusal keeps its code (once the per-second bucket has a token
    # again, so that the day's cap is what answers)
    time.sleep(2 / RATE)
    r = net.session("bank-c", "bank-c").post("/v1/borrowers/key", {"national_id": VALID_ID})
    assert r.status_code == 429 and problem(r)["code"] == "DailyQuotaExceeded"


def test_ledger_keylog_checks_the_chain_as_the_auditor(net: Consortium) -> None:
    import json

    from tests.test_cli import ledger

    r = ledger("keylog", "--state-dir", str(net.state), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True and report["rows"] == len(_auditor_log(net)) > 0
    members = {c["member"] for c in report["by_member_and_purpose"]}
    assert {address("bank-a"), address("bank-b")} <= members


def test_key_service_down_is_a_503_and_its_log_continues_after_a_restart(
    net: Consortium,
) -> None:
    """Last of the module's consortium tests: it kills the key service."""
    import signal
    import subprocess
    import sys

    import httpx

    info = nodes.recorded(net.state, nodes.KEY_SERVICE_FILE)[0]
    os.killpg(info.pgid, signal.SIGKILL)
    s = net.session("bank-a", "bank-a")
    r = s.post("/v1/borrowers/key", {"national_id": OTHER_ID})
    assert r.status_code == 503 and problem(r)["code"] == "KeyServiceUnavailable"
    assert OTHER_ID not in r.text and "Traceback" not in r.text
    with open(info.log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keyservice", "--config", info.config],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the key service exited with {proc.returncode}"
            try:
                if httpx.get(f"{info.url}/readyz", trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the key service is not ready again"
            time.sleep(0.1)
        # the node signs in again by itself (the old process's tokens are in its database)
        r = s.post("/v1/borrowers/key", {"national_id": OTHER_ID})
        assert r.status_code == 200, r.text
        rows = _auditor_log(net)
        assert rows[-1].borrower_key == r.json()["borrower_key"]
        assert check_log(rows, nodes.KEY_SERVICE.address) == []
    finally:
        proc.kill()
        proc.wait(10)


def test_key_client_refuses_a_plain_http_url_off_loopback() -> None:
    assert check_url("https://keys.example/") == "https://keys.example"
    assert check_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    with pytest.raises(ValueError):
        check_url("http://keys.example")
    kc = KeyClient("http://127.0.0.1:9", account("bank-a"))
    try:
        with pytest.raises(KeyServiceError) as err:
            kc.derive(VALID_ID, "enquiry")
        assert VALID_ID not in str(err.value)
    finally:
        kc.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_derivation_log_is_append_only_and_a_gap_is_detected(kind: str, tmp_path: Path) -> None:
    from keyservice.store import DerivationLog, make_engine
    from ledger import siwe
    from ledger.identity import GENESIS_HASH, derivation_hash, derivation_statement
    from tests.dbs import PG_URL

    if kind == "postgresql" and PG_URL is None:
        pytest.skip("PostgreSQL: set TEST_DATABASE_URL")
    dbs = Databases(kind, tmp_path)
    try:
        engine = make_engine(dbs.new())
        service = dev_account("keyservice")

        def sign(text: str) -> str:
            return siwe.sign(text, service.key)

        log = DerivationLog(engine, sign)
        key = "0x" + "ab" * 32
        for purpose in ("origination", "enquiry", "servicing"):
            log.append(address("platform"), purpose, key)
        rows = [LogRow(**r.model_dump()) for r in log.page(0, 10)]
        assert check_log(rows, service.address) == []
        for stmt in (
            "UPDATE keyservice_derivation SET purpose = 'audit' WHERE seq = 2",
            "DELETE FROM keyservice_derivation WHERE seq = 2",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                with engine.begin() as conn:
                    conn.execute(sa.text(stmt))
        assert len(log.page(0, 10)) == 3
        # a restarted service continues the chain
        log2 = DerivationLog(engine, sign)
        log2.append(address("bank-a"), "audit", key)
        rows = [LogRow(**r.model_dump()) for r in log2.page(0, 10)]
        assert check_log(rows, service.address) == [] and rows[-1].seq == 4
        # someone with the database's owner rights drops the trigger and removes a row:
        # the auditor's replay of the chain shows it
        assert check_log(rows[:1] + rows[2:]) != []
        altered = dataclasses.replace(rows[1], purpose="audit")
        assert check_log([rows[0], altered, *rows[2:]]) != []
        # a chain rewritten end to end (every hash recomputed, without the service's key) holds
        # together but carries no signature of the key service
        forged, prev = [], GENESIS_HASH
        for r in [rows[0], *rows[2:]]:
            seq = len(forged) + 1
            h = derivation_hash(prev, seq, r.member, r.at, r.purpose, r.borrower_key)
            sig = siwe.sign(derivation_statement(h), dev_account("mallory").key)
            forged.append(
                dataclasses.replace(r, seq=seq, prev_hash=prev, row_hash=h, signature=sig)
            )
            prev = h
        assert check_log(forged) == []
        assert len(check_log(forged, service.address)) == len(forged)
        engine.dispose()
    finally:
        dbs.close()


def test_with_the_pepper_one_key_falls_to_a_search_of_its_region_and_birth_year() -> None:
    """What the pepper in a member's hands would allow (ledger.bench.inversion, SECURITY.md)."""
    from ledger.bench.inversion import _ids, invert

    pepper = os.urandom(32)
    key = hmac.digest(pepper, OTHER_ID.encode(), hashlib.sha256)
    # born 1 January, sequence number 003: the fourth candidate
    assert invert(key, pepper, OTHER_ID[:6], int(OTHER_ID[6:10])) == (OTHER_ID, 4)
    assert sum(1 for _ in _ids("110105", 1990)) == 365_000
