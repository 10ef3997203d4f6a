"""The nodes on PostgreSQL: one database, a schema per node (as `ledger up --database-url`),
each with its own tokens, idempotency records and read model. Runs when TEST_DATABASE_URL
names a PostgreSQL database (CI sets it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.api_support import Consortium, loan_body, running_consortium

URL = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
pytestmark = pytest.mark.skipif(
    not URL or not URL.startswith("postgres"), reason="TEST_DATABASE_URL is not PostgreSQL"
)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    with running_consortium(tmp_path_factory.mktemp("pg"), database_url=URL) as c:
        yield c


def test_co_origination_reads_and_idempotency_on_postgres(net: Consortium) -> None:
    plat = net.session("platform", "platform")
    body = loan_body("pg-1", {"platform": 400_000, "bank-a": 300_000, "bank-b": 300_000})
    first = plat.post("/v1/loans", body)
    assert first.status_code == 201, first.text
    again = plat.post("/v1/loans", body)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    key = first.json()["borrower_key"]
    for member in ("bank-a", "auditor"):
        s = net.session(member, member)
        listed = s.get("/v1/loans", params={"borrower_key": key}).json()
        assert listed["count"] == 1 and listed["loans"][0]["outstanding"] == 1_000_000
    expo = net.session("bank-a", "bank-a").get(f"/v1/borrowers/{key}/exposure").json()
    assert expo["total_exposure"] == 1_000_000 and expo["own_exposure"] == 300_000
    assert net.session(None, "platform").get("/readyz").status_code == 200
