"""The council's part of the consortium story (`ledger demo`, ledger.localnet.story): a policy
change adopted by a majority of the members behind the timelock, and a servicing transfer of a
removed platform's open loan to the platform, whose node then repays it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ledger.localnet.story import _fen, _Story, story_id


def _fast_forward(state_dir: Path, seconds: int, rpc_url: str | None = None) -> None:
    """Get past the timelock's delay. DEV-ONLY on the local dev chain: move its clock and mine a
    block. On any other chain (interval mining, dev methods refused) wait for a block `seconds`
    later than the latest: nobody may move a real chain's clock."""
    from ledger.chain.connect import is_dev_chain
    from ledger.localnet.chains import rpc_call

    url = rpc_url or _chain_url(state_dir)
    if url is None:
        return
    if not is_dev_chain(int(rpc_call(url, "eth_chainId"), 16)):

        def latest() -> int:
            block = rpc_call(url, "eth_getBlockByNumber", ["latest", False], timeout=10)
            return int(block["timestamp"], 16)

        target, deadline = latest() + seconds + 1, time.monotonic() + seconds + 60
        while latest() < target and time.monotonic() < deadline:
            time.sleep(0.25)
        return
    rpc_call(url, "evm_increaseTime", [seconds], timeout=10)
    rpc_call(url, "evm_mine", [], timeout=10)


def _chain_url(state_dir: Path) -> str | None:
    from ledger.localnet.detached import status

    info = status(state_dir)
    return info.url if info is not None else None


def council(s: _Story, state_dir: Path, rpc_url: str | None = None, delay_s: int = 60) -> None:
    """The council adopts a policy change: R8's longest attestation from 90 to 60 days (a change
    that leaves the rest of the story, and a second run of it, as they were)."""
    gov = "/v1/governance/proposals"
    pending = lambda st, b: f"{st} {b['state']}, {b['approvals']} of {b['threshold']} approvals"  # noqa: E731
    body = s.step(
        "platform",
        "proposes on its node: R8's longest capital attestation 60 days instead of 90",
        "201 pending, 1 of 3 approvals (a majority of the 5 members)",
        lambda: s.on("platform").post(
            gov, {"action": "policy", "policy": {"max_attestation_age": 60 * 86_400}}
        ),
        lambda st, b: st == 201 and b["state"] == "pending" and b["approvals"] == 1,
        pending,
    )
    pid = body.get("id", "0x" + "00" * 32) if isinstance(body, dict) else "0x" + "00" * 32
    s.step(
        "platform",
        "tries to execute its own proposal alone",
        "409 UnexpectedProposalState: one member cannot change the rules",
        lambda: s.on("platform").post(f"{gov}/{pid}/execute"),
        lambda st, b: st == 409 and b["code"] == "UnexpectedProposalState",
    )
    for bank, expected, state in (
        ("bank-a", "200 pending, 2 of 3", "pending"),
        ("bank-b", "200 scheduled on the timelock", "scheduled"),
    ):
        s.step(
            bank,
            "approves on its own node, with its own key",
            expected,
            lambda bank=bank: s.on(bank).post(f"{gov}/{pid}/approve"),
            lambda st, b, state=state: st == 200 and b["state"] == state,
            pending,
        )
    s.step(
        "auditor",
        "executes before the timelock's delay",
        "409 TimelockUnexpectedOperationState: nobody skips the delay",
        lambda: s.on("auditor").post(f"{gov}/{pid}/execute"),
        lambda st, b: st == 409 and b["code"] == "TimelockUnexpectedOperationState",
    )
    _fast_forward(state_dir, delay_s, rpc_url)
    s.step(
        "auditor",
        "executes once the timelock's delay has passed",
        "200 executed: the new policy version is in force",
        lambda: s.on("auditor").post(f"{gov}/{pid}/execute"),
        lambda st, b: st == 200 and b["state"] == "executed",
        pending,
    )


_GOV = "/v1/governance/proposals"


def _pending(st: int, b: Any) -> str:
    return f"{st} {b['state']}, {b['approvals']} of {b['threshold']} approvals"


def _decide(
    s: _Story,
    state_dir: Path,
    action: str,
    body: dict[str, Any],
    rpc_url: str | None = None,
    delay_s: int = 60,
) -> bool:
    """One council decision over HTTP: the platform proposes on its node, the banks approve on
    theirs until it is scheduled, the clock passes the delay, the auditor executes."""
    made = s.step(
        "platform",
        f"proposes on its node: {action}",
        "201 pending",
        lambda: s.on("platform").post(_GOV, body),
        lambda st, b: st == 201 and b["state"] == "pending",
        _pending,
    )
    pid = made.get("id") if isinstance(made, dict) else None
    if pid is None:
        return False
    for bank in ("bank-a", "bank-b", "bank-c"):
        st = s.on(bank).get(f"{_GOV}/{pid}").json().get("state")
        if st != "pending":
            break
        s.step(
            bank,
            "approves on its own node",
            "200",
            lambda bank=bank: s.on(bank).post(f"{_GOV}/{pid}/approve"),
            lambda st, b: st == 200 and b["state"] in ("pending", "scheduled"),
            _pending,
        )
    _fast_forward(state_dir, delay_s, rpc_url)
    done = s.step(
        "auditor",
        f"executes once the delay has passed: {action}",
        "200 executed",
        lambda: s.on("auditor").post(f"{_GOV}/{pid}/execute"),
        lambda st, b: st == 200 and b["state"] == "executed",
        _pending,
    )
    return isinstance(done, dict) and done.get("state") == "executed"


def servicing(
    s: _Story, state_dir: Path, run: int, rpc_url: str | None = None, delay_s: int = 60
) -> None:
    """No stranded exposure: a second platform, admitted by the council, records a co-loan with
    bank-a and bank-b; the council removes it and transfers its servicing to the platform, whose
    node then repays the loan, releasing the borrower's exposure and the banks' usage.

    DEV-ONLY: the second platform has no node here; its loan is signed with the dev keys of its
    parties and submitted straight to the chain (over HTTP every tranche is co-signed by the
    bank's own node)."""
    from eth_account import Account

    from ledger.chain.client import LedgerClient
    from ledger.chain.connect import is_dev_chain
    from ledger.chain.deployment import Deployment, fund
    from ledger.domain import CoLoan, Product, RepaymentType, Tranche, record_id, sort_tranches
    from ledger.keys import dev_account
    from ledger.localnet.chains import rpc_call
    from ledger.provenance import sign

    url = rpc_url or _chain_url(state_dir)
    if url is None:
        return
    # a new second platform on every run; off the dev chain a fresh key, never a DEV-ONLY one
    dev = is_dev_chain(int(rpc_call(url, "eth_chainId"), 16))
    outgoing = dev_account("platform", 100 + run) if dev else Account.create()
    fund(url, [outgoing.address])
    name = f"Platform {run + 1} (dev)"
    if not _decide(
        s,
        state_dir,
        f"admit {name}, a second platform",
        {"action": "admit", "address": outgoing.address, "role": "platform", "name": name},
        rpc_url,
        delay_s,
    ):
        return
    dep = Deployment.load(state_dir / "deployment.json")
    client = LedgerClient(url, dep, outgoing)
    nid = story_id(run * 10 + 7)
    key = s.on("platform").post("/v1/borrowers/key", {"national_id": nid}).json()["borrower_key"]
    banks = {s.addr["bank-a"]: 3_000_000, s.addr["bank-b"]: 3_000_000}
    loan = CoLoan(
        loan_id=record_id(outgoing.address, f"demo-{run}-outgoing"),
        borrower_key=bytes.fromhex(key[2:]),
        platform=outgoing.address,
        product=Product.CONSUMER,
        principal=10_000_000,
        apr_bps=1_200,
        term_days=180,
        repayment=RepaymentType.INSTALMENT,
        deadline=int(client.w3.eth.get_block("latest")["timestamp"]) + 3_600,
        tranches=sort_tranches(
            [Tranche(outgoing.address, 4_000_000), *(Tranche(a, v) for a, v in banks.items())]
        ),
    )
    keys = {outgoing.address: outgoing.key}
    keys.update({s.addr[b]: s._accounts[b].key for b in ("bank-a", "bank-b")})
    client.originate(loan, [sign(keys[p], client.domain, loan) for p in loan.signers])
    lid = "0x" + loan.loan_id.hex()
    expo = lambda st, b: f"{st} total {_fen(b['total_exposure'])}"  # noqa: E731
    s.step(
        "bank-a",
        f"queries the exposure of {name}'s borrower (a 100,000 CNY co-loan)",
        "total 10,000,000 fen",
        lambda: s.on("bank-a").get(f"/v1/borrowers/{key}/exposure"),
        lambda st, b: st == 200 and b["total_exposure"] == 10_000_000,
        expo,
    )
    repay = {"repayment_id": f"demo-{run}-transferred", "principal": 10_000_000, "interest": 0}
    s.step(
        "platform",
        f"tries to repay {name}'s loan on its node",
        "404: not its loan (yet)",
        lambda: s.on("platform").post(f"/v1/loans/{lid}/repayments", repay),
        lambda st, b: st == 404,
    )
    if not _decide(
        s,
        state_dir,
        f"remove {name}",
        {"action": "remove", "address": outgoing.address},
        rpc_url,
        delay_s,
    ):
        return
    if not _decide(
        s,
        state_dir,
        f"transfer {name}'s servicing to the platform",
        {"action": "transfer-servicing", "address": outgoing.address, "to": s.addr["platform"]},
        rpc_url,
        delay_s,
    ):
        return
    s.step(
        "platform",
        f"repays the transferred loan of {name} on its own node",
        "201, outstanding 0: its exposure and the banks' usage are released",
        lambda: s.on("platform").post(f"/v1/loans/{lid}/repayments", repay),
        lambda st, b: st == 201 and b["outstanding"] == 0,
        lambda st, b: f"{st} outstanding {_fen(b['outstanding'])}",
    )
    s.step(
        "bank-a",
        "queries that borrower's exposure again",
        "total 0 fen",
        lambda: s.on("bank-a").get(f"/v1/borrowers/{key}/exposure"),
        lambda st, b: st == 200 and b["total_exposure"] == 0,
        expo,
    )
