"""Issue 14 item 7 through the nodes: a bank that signed nothing for a line cannot draw on it,
and a line past its signed expiry stops counting without anyone having to remember a call (the
platform node expires a borrower's due lines before it judges a record for that borrower; every
platform and lender node runs a keeper that expires due lines: api/service/keeper.py).

The keepers of the running nodes are off here (line_keeper_s 0), so the platform node's own
expiry on demand is what is tested through HTTP; the keeper is driven directly, tick by tick.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from api.service.consortium import ConsortiumView
from ledger.domain import LineStatus, Product
from tests.api_support import Consortium, address, loan_body, problem, running_consortium
from tests.conftest import advance_time
from tests.contract_lifecycle_support import grant

P, A, B = "platform", "bank-a", "bank-b"
NODES = ("platform", "bank-a", "bank-b", "bank-c")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    off = {name: {"line_keeper_s": 0} for name in NODES}
    with running_consortium(tmp_path_factory.mktemp("lines"), off) as c:
        yield c


def post(net: Consortium, path: str, body: dict) -> tuple[int, dict]:
    r = net.session(P, "platform").post(path, body)
    return r.status_code, (problem(r) if r.status_code >= 400 else r.json())


def _line(net: Consortium, line_id: str, key: str, shares: dict[str, int], expires_in: int):
    body = {
        "line_id": line_id, "borrower_key": key, "product": "consumer",
        "limit": sum(shares.values()), "expires_at": net.cx.now() + expires_in,
        "shares": [{"lender": address(m), "amount": a} for m, a in shares.items()],
    }  # fmt: skip
    status, out = post(net, "/v1/credit-lines", body)
    assert status == 201, out
    return out


def test_node_refuses_a_draw_funded_by_a_bank_without_a_share(net: Consortium) -> None:
    key = "0x" + "e1" * 32
    line = _line(net, "line-outsider", key, {P: 400_000, A: 600_000}, 86_400)
    # bank B signed nothing for the line; the platform node asks it to fund a draw on it
    draw = loan_body("draw-outsider", {P: 300_000, B: 700_000}, borrower_key=key,
                     line_id="line-outsider")  # fmt: skip
    status, out = post(net, "/v1/loans", draw)
    assert status == 403 and out["code"] == "NotLineShareHolder", out
    assert out["lender"] == address(B) and out["lineId"] == line["line_id"]
    lid = bytes.fromhex(line["line_id"][2:])
    assert net.cx.plat.line_state(lid)["drawn"] == 0
    # a share holder's draw goes through
    ok = loan_body("draw-holder", {P: 300_000, A: 700_000}, borrower_key=key,
                   line_id="line-outsider")  # fmt: skip
    assert post(net, "/v1/loans", ok)[0] == 201
    assert net.cx.plat.line_state(lid)["drawn"] == 1_000_000


def test_expired_line_no_longer_blocks_a_loan_through_the_node(net: Consortium) -> None:
    key = "0x" + "e2" * 32
    line = _line(net, "line-dies", key, {P: 6_000_000, A: 9_000_000}, 100)
    lid = bytes.fromhex(line["line_id"][2:])
    advance_time(net.cx, 101)
    # nobody called expireLine: on chain the dead line's 15,000,000 still counts
    assert net.cx.plat.borrower_exposure(bytes.fromhex(key[2:]))["consumer"] == 15_000_000
    # 10,000,000 fits the 20,000,000 cap only without the expired line
    status, out = post(net, "/v1/loans", loan_body("after-expiry", {P: 4_000_000, A: 6_000_000},
                                                   borrower_key=key))  # fmt: skip
    assert status == 201, out
    assert net.cx.plat.line_state(lid)["status"] == LineStatus.EXPIRED
    assert net.cx.plat.borrower_exposure(bytes.fromhex(key[2:]))["consumer"] == 10_000_000
    # every node's exposure answer (read model) agrees with the chain
    for node, who in (("bank-a", A), ("platform", P)):
        session = net.session(who, node)
        deadline = time.monotonic() + 20
        while True:
            expo = session.get(f"/v1/borrowers/{key}/exposure").json()
            if expo["total_exposure"] == 10_000_000 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert expo["total_exposure"] == 10_000_000, (node, expo)


def test_keeper_expires_lines_past_their_signed_expiry(cx) -> None:
    from api.service.keeper import LineKeeper  # here: the module is new with this test

    line, _ = grant(cx, 2_000_000, product=Product.BUSINESS, expires_in=100)
    later, _ = grant(cx, 1_000_000, product=Product.BUSINESS, expires_in=10_000)
    client = cx.client(cx.lenders[2])  # a bank that holds no share of either line
    chain = ConsortiumView(client, None, cx.deployment.deployment_block)  # type: ignore[arg-type]
    keeper = LineKeeper(SimpleNamespace(client=client), chain, 0)  # type: ignore[arg-type]
    assert keeper.tick() == []  # nothing due yet
    advance_time(cx, 101)
    assert keeper.tick() == [line.line_id]
    assert cx.plat.line_state(line.line_id)["status"] == LineStatus.EXPIRED
    assert cx.plat.line_state(later.line_id)["status"] == LineStatus.ACTIVE
    assert cx.plat.borrower_exposure(line.borrower_key)["business"] == 0
    assert keeper.tick() == []  # done once
    advance_time(cx, 10_000)
    assert keeper.tick() == [later.line_id]
