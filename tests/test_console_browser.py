"""The web console in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, installed by scripts/setup.sh) driven with Selenium, against one running
consortium (real anvil, the node processes):

a bank signs in with its browser wallet (EIP-4361 through an EIP-1193 provider the test injects,
which hands the message to the test to sign with the member's key; a signature by another key is
refused), looks up a borrower by national ID (gone from the page at once), sees the alert arrive
live when the platform marks that borrower's loan at another bank overdue, freezes its share of a
line from the console and the platform's next draw on it is refused (`LineFrozen`); the
auditor's page shows the audit verdict and the exposure chart; the platform's page shows a loan
in its origination queue while the chain does not mine, and no longer once it is recorded.

Screenshots go to docs/screenshots/ (the README shows them). Each page's HTML is also saved under
the test's temporary directory, so the suite's closing canary scan (tests/test_personal_data.py)
covers the console, and each is checked here for the national ID at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from ledger.localnet.nodes import recorded
from tests.api_support import (
    Consortium,
    account,
    address,
    loan_body,
    problem,
    running_consortium,
)
from tests.personal_data import find_ids

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium / chromium-driver missing: run scripts/setup.sh"
)
SHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
P, A, B = "platform", "bank-a", "bank-b"
NATIONAL_ID = "11010519491231002X"  # GB 11643-1999's worked example, a canary for the scan
FAST = {"alerts": {"poll_s": 0.2}}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    overrides = {m: FAST for m in (P, A, B, "bank-c", "auditor")}
    overrides[P] = {**FAST, "peer_timeout_s": 60}  # the co-signature awaited while a node stops
    with running_consortium(tmp_path_factory.mktemp("console"), overrides) as c:
        c.data["pages"] = tmp_path_factory.mktemp("console-pages")
        plat = c.session(P, P)
        # bank A funds one loan of the borrower, bank B another; bank A also shares a line
        for loan_id, bank in (("cb-a-1", A), ("cb-b-1", B)):
            r = plat.post("/v1/loans", loan_body(loan_id, {P: 400_000, bank: 600_000},
                                                 borrower_id=NATIONAL_ID))  # fmt: skip
            assert r.status_code == 201, r.text
            c.data[loan_id] = r.json()
        line = {
            "line_id": "cb-line-1", "borrower_key": "0x" + "5a" * 32, "product": "consumer",
            "limit": 2_000_000, "expires_at": c.cx.now() + 30 * 86_400,
            "shares": [{"lender": address(P), "amount": 800_000},
                       {"lender": address(A), "amount": 1_200_000}],
        }  # fmt: skip
        r = plat.post("/v1/credit-lines", line)
        assert r.status_code == 201, r.text
        c.data["line"] = r.json()
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    opts = Options()
    opts.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,1400", "--disable-gpu"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, condition: Any, timeout: float = 60) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _sign_in(net: Consortium, driver: Any, member: str) -> None:
    driver.get(f"{net.urls[member]}/console")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{net.urls[member]}/console/")
    driver.find_element(By.ID, "token").send_keys(net.session(member, member).token)
    driver.find_element(By.ID, "signin-btn").click()
    _wait(driver, ec.invisibility_of_element_located((By.ID, "signin")))


# A minimal EIP-1193 provider (what a browser wallet puts at window.ethereum): it shares one
# account, and hands a personal_sign request to the test, which answers it with the signature.
PROVIDER = """
const account = arguments[0];
window.__wallet = { asked: null, resolve: null };
window.ethereum = {
  request({ method, params }) {
    if (method === "eth_requestAccounts") return Promise.resolve([account]);
    if (method === "personal_sign") {
      return new Promise((resolve) => {
        window.__wallet.asked = params;
        window.__wallet.resolve = resolve;
      });
    }
    return Promise.reject(new Error(`unsupported ${method}`));
  },
};
"""


def _wallet_sign_in(net: Consortium, driver: Any, member: str, signer: str) -> None:
    """Sign in with the wallet button; the wallet holds `member`'s account and the test signs
    the node's EIP-4361 message with `signer`'s key."""
    driver.get(f"{net.urls[member]}/console")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{net.urls[member]}/console/")
    me = account(member)
    driver.execute_script(PROVIDER, me.address.lower())  # wallets share lower-case addresses
    driver.find_element(By.ID, "wallet-btn").click()
    data, who = _wait(driver, lambda d: d.execute_script("return window.__wallet.asked"))
    assert who == me.address.lower()
    text = bytes.fromhex(data.removeprefix("0x")).decode()
    # the node's one-time sign-in message for that account, on this node's domain and chain
    lines = text.splitlines()
    assert lines[0].endswith("wants you to sign in with your Ethereum account:")
    assert lines[1] == me.address and f"URI: {net.urls[member]}" in lines
    signed = Account.sign_message(encode_defunct(text=text), account(signer).key)
    driver.execute_script("window.__wallet.resolve(arguments[0])", signed.signature.to_0x_hex())


def _keep(net: Consortium, driver: Any, name: str) -> None:
    """Save the page for the canary scan and a screenshot for the README; the page must hold no
    national ID now."""
    html = driver.page_source
    (net.data["pages"] / f"{name}.html").write_text(html)
    assert find_ids(html) == set(), f"a national ID on the {name} page"
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def test_bank_looks_up_a_borrower_sees_an_alert_live_and_freezes_a_line(
    net: Consortium, browser: Any
) -> None:
    d = browser
    # a wallet that signs bank A's sign-in message with another member's key is refused
    _wallet_sign_in(net, d, A, signer=B)
    refused = _wait(d, lambda drv: drv.find_element(By.ID, "signin-problem").text)
    assert refused.startswith("InvalidSignature"), refused
    assert d.find_element(By.ID, "signin").is_displayed()
    # bank A's own key: signed in, no token pasted anywhere
    _wallet_sign_in(net, d, A, signer=A)
    _wait(d, ec.invisibility_of_element_located((By.ID, "signin")))
    assert "Bank A (dev)" in d.find_element(By.ID, "who").text
    # the borrower: the ID is typed once and cleared before anything is shown
    field = d.find_element(By.ID, "national-id")
    field.send_keys(NATIONAL_ID)
    d.find_element(By.ID, "lookup-btn").click()
    key = _wait(d, ec.visibility_of_element_located((By.ID, "borrower-key"))).text
    assert key == net.data["cb-a-1"]["borrower_key"]
    assert field.get_attribute("value") == ""
    text = d.find_element(By.ID, "exposure").text
    assert "¥20,000.00" in text  # two loans of 10,000.00 CNY, exact to the fen
    assert "Bank A (dev)" in text and "as of block" in text
    # R5/R6 gauges and the line with its freeze button
    _wait(d, ec.text_to_be_present_in_element((By.ID, "limits"), "R6"))
    # its portfolio by the five categories: its one tranche, 6,000.00 CNY, is normal
    _wait(d, ec.text_to_be_present_in_element((By.ID, "portfolio"), "special mention"))
    rows = d.find_element(By.ID, "portfolio").text.splitlines()
    assert "normal 1 ¥6,000.00" in rows and "loss 0 ¥0.00" in rows, rows
    assert "total 1 ¥6,000.00" in rows, rows
    _wait(d, ec.presence_of_element_located((By.CSS_SELECTOR, "#lines button")))
    _keep(net, d, "bank-lookup")
    # the platform marks bank B's loan of this borrower overdue: the alert arrives live
    r = net.session(P, P).post(
        f"/v1/loans/{net.data['cb-b-1']['loan_id']}/status",
        {"status": "overdue", "reason": "DPD30"},
    )
    assert r.status_code == 200, r.text
    alert = _wait(
        d, ec.visibility_of_element_located((By.CSS_SELECTOR, "#alerts li.alert-borrower-overdue"))
    )
    assert "overdue" in alert.text and net.data["cb-b-1"]["loan_id"][:14] not in alert.text
    _keep(net, d, "bank-alert")
    # bank A freezes its share of the line from the console
    d.find_element(By.CSS_SELECTOR, "#lines button").click()
    outcome = _wait(d, lambda drv: drv.find_element(By.ID, "freeze-problem").text)
    assert "frozen in block" in outcome, outcome
    _wait(d, ec.text_to_be_present_in_element((By.ID, "lines"), "Unfreeze my share"))
    assert "Bank A (dev)" in d.find_element(By.ID, "lines").text  # frozen by
    # the platform's next draw on it with a tranche from bank A is refused
    draw = loan_body("cb-draw-1", {P: 300_000, A: 500_000}, borrower_key="0x" + "5a" * 32,
                     line_id=net.data["line"]["line_id"])  # fmt: skip
    r = net.session(P, P).post("/v1/loans", draw)
    body = problem(r)
    assert r.status_code == 409 and body["code"] == "LineFrozen", body
    assert body["lender"] == address(A)
    lid = net.data["line"]["line_id"]
    r = net.session(P, P).get(f"/v1/credit-lines/{lid}/freeze")
    assert r.status_code == 200 and r.json()["frozen_by"] == [address(A)], r.text
    # another bank's node cannot freeze bank A's line for it: it holds no share
    r = net.session(B, B).post(f"/v1/credit-lines/{lid}/freeze", {"frozen": True})
    assert r.status_code == 403 and problem(r)["code"] == "NotLineShareHolder"
    _keep(net, d, "bank-freeze")


def test_auditor_sees_the_verdict_members_by_name_and_the_exposure_chart(
    net: Consortium, browser: Any
) -> None:
    d = browser
    _sign_in(net, d, "auditor")
    members = _wait(d, ec.visibility_of_element_located((By.ID, "members"))).text
    assert all(n in members for n in ("Platform (dev)", "Bank A (dev)", "Bank B (dev)"))
    _wait(d, ec.text_to_be_present_in_element((By.ID, "series-asof"), "as of block"))
    assert "¥" in d.find_element(By.ID, "series-asof").text
    d.find_element(By.ID, "audit-btn").click()
    verdict = _wait(d, ec.visibility_of_element_located((By.ID, "verdict")), 180)
    assert verdict.text == "PASS: no violations"
    assert "Bank A (dev)" in d.find_element(By.ID, "audit").text
    _keep(net, d, "auditor")


def test_platform_page_and_the_pages_call_only_their_own_node(
    net: Consortium, browser: Any
) -> None:
    d = browser
    # bank A's partnership terms in force, then a repayment with interest on its loan: the
    # ledger's ServiceFees give the platform 30% of bank A's 6,000-fen interest share
    now = net.cx.now()
    terms = {"fee_bps": 3_000, "min_fee_bps": 1_000, "max_fee_bps": 4_000, "valid_from": now,
             "valid_until": now + 86_400}  # fmt: skip
    r = net.session(A, A).post("/v1/partnerships", {"platform": address(P), **terms})
    assert r.status_code == 201, r.text
    r = net.session(P, P).post("/v1/partnerships/accept", {"bank": address(A), **terms})
    assert r.status_code == 201, r.text
    loan = net.data["cb-a-1"]["loan_id"]
    paid = {"repayment_id": "cb-a-1-r1", "principal": 0, "interest": 10_000}
    r = net.session(P, P).post(f"/v1/loans/{loan}/repayments", paid)
    assert r.status_code == 201, r.text
    _sign_in(net, d, P)
    _wait(d, ec.presence_of_element_located((By.ID, "pending-none")))
    # a loan in flight: bank B's node is stopped (SIGSTOP), so its co-signature is awaited
    answer: dict[str, Any] = {}
    body = loan_body("cb-inflight-1", {P: 400_000, B: 600_000})
    info = next(i for i in recorded(net.state) if i.name == B)
    os.killpg(info.pgid, signal.SIGSTOP)
    worker = threading.Thread(
        target=lambda: answer.update(r=net.session(P, P).post("/v1/loans", body))
    )
    try:
        worker.start()
        _wait(d, ec.text_to_be_present_in_element((By.ID, "pending"), "gathering co-signatures"))
        _wait(d, ec.text_to_be_present_in_element((By.ID, "pending"), "1 in flight"))
        queued = d.find_element(By.ID, "pending").text
        _keep(net, d, "platform-queue")
    finally:
        os.killpg(info.pgid, signal.SIGCONT)
        worker.join(timeout=120)
    r = answer["r"]
    assert r.status_code == 201, r.text
    assert r.json()["loan_id"] in queued, queued  # what the queue showed: this loan
    _wait(d, ec.presence_of_element_located((By.ID, "pending-none")))  # gone once recorded
    _wait(d, ec.text_to_be_present_in_element((By.ID, "recent"), "as of block"))
    assert "¥" in d.find_element(By.ID, "recent").text
    fees = _wait(d, ec.visibility_of_element_located((By.ID, "fee-total")))
    assert fees.text == "¥18.00"
    assert loan[:14] in d.find_element(By.ID, "fees").text
    _keep(net, d, "platform")
    # every resource the page loaded came from its own node
    own = net.urls[P]
    urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(own) for u in urls), urls


def test_a_guarantors_page_shows_who_it_is_and_its_guarantees(
    net: Consortium, browser: Any
) -> None:
    """A guarantor (admitted by the council, on a node of its own, as `ledger up` runs one)
    signs in: its identity, its R10 figures and the guarantee it gave, the members; no alert
    feed (its node serves none) and nothing fetched from another node."""
    from ledger.chain.deployment import fund
    from ledger.domain import Role
    from tests.api_support import start_node

    d, cx, g = browser, net.cx, account("guarantor")
    fund(net.chain.url, [g.address])
    cx.gov.admit_member(g.address, Role.GUARANTOR, "Guarantor (dev)")
    cx.client(g).attest_capital(10**8, 0, cx.now() + 30 * 86_400)
    start_node(net, "guarantor", "guarantor")
    loan = net.data["cb-b-1"]["loan_id"]
    r = net.session("guarantor", "guarantor").post(
        f"/v1/loans/{loan}/guarantee-offer", {"cover_bps": 5_000}
    )
    assert r.status_code == 201, r.text
    r = net.session(P, P).post(
        f"/v1/loans/{loan}/guarantee", {"guarantor": g.address, "cover_bps": 5_000}
    )
    assert r.status_code == 201, r.text
    _sign_in(net, d, "guarantor")
    _wait(d, ec.text_to_be_present_in_element((By.ID, "who"), "(guarantor)"))
    _wait(d, ec.text_to_be_present_in_element((By.ID, "guarantees"), "as of block"))
    text = d.find_element(By.ID, "guarantees").text
    # 50% of bank B's 6,000 CNY tranche; net assets 1,000,000 CNY, cap 10x
    assert loan[:14] in text and "50%" in text and "¥3,000.00" in text, text
    assert "¥1,000,000.00" in text and "¥10,000,000.00" in text, text
    assert d.find_element(By.ID, "members").is_displayed()
    assert not d.find_element(By.ID, "alerts-section").is_displayed()
    assert d.find_element(By.ID, "signin-problem").text == ""
    _keep(net, d, "guarantor")
    own = net.urls["guarantor"]
    urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(own) for u in urls), urls
