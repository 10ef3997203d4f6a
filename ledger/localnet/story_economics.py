"""The loan-economics chapter of the demo (issue 16): a loan with its schedule and all-in APR,
an instalment repaid, a loan refused because its IRR APR is over R9 though its simple rate is
not, a loan with instalments past due that the platform node's keeper moves to overdue (special
mention), and a default with a guarantor's compensatory payment, then a write-off and a recovery.

The guarantor is a member `ledger up` admits at bootstrap and runs a node for, like the banks;
it acts only through that node (api/routes/guarantees.py): it attests its net assets, offers
cover and records its compensatory payment there, each signed with the node's key. The platform
accepts the guarantee and records the recovery through its node.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ledger.localnet.story import _fen, _outcome, _Story, story_id
from ledger.localnet.story_council import _chain_url, _fast_forward

TWELVE = {"kind": "equal_instalment", "months": 12, "rate_bps": 1_200}
DAY = 86_400


def _sched_loan(s: _Story, loan_id: str, nid: str, schedule: dict[str, Any]) -> dict[str, Any]:
    body = s.loan(
        loan_id, nid, 1_000_000, {"platform": 400_000, "bank-a": 300_000, "bank-b": 300_000}
    )
    body.pop("apr_bps")
    body.pop("term_days")  # both follow from the schedule
    body["schedule"] = schedule
    return body


def _chain(
    state_dir: Path, role: str, rpc_url: str | None = None, account: Any | None = None
) -> Any:
    """A client on the story's chain with `account` (a member's own key on the production-like
    chain), else the `role` member's DEV-ONLY key."""
    from ledger.chain.client import LedgerClient
    from ledger.chain.deployment import Deployment
    from ledger.keys import dev_account

    url = rpc_url or _chain_url(state_dir)
    assert url is not None
    key = account if account is not None else dev_account(role, 0)
    return LedgerClient(url, Deployment.load(state_dir / "deployment.json"), key)


def _wait(s: _Story, loan_id: str, want: str) -> None:
    for _ in range(60):
        if s.on("platform").get(f"/v1/loans/{loan_id}").json().get("status") == want:
            return
        time.sleep(0.5)


def play_economics(
    s: _Story, state_dir: Path, run: int, rpc_url: str | None = None, delay_s: int = 60
) -> None:
    lid = f"demo-{run}-" + "{}"
    plat = s.on("platform")
    ids = (story_id(run * 10 + 5), story_id(run * 10 + 6), story_id(run * 10 + 9))  # 7: council
    body = _sched_loan(s, lid.format("schedule"), ids[0], TWELVE)
    made = s.originate(
        "co-originates 10,000 CNY over 12 equal monthly instalments at 12% a year",
        "201; the node computes the schedule, its IRR APR (1,200 bps) and signs its digest",
        body,
        describe=lambda st, b: f"{st} recorded in block {b['block_number']}",
    )
    loan_id = made.get("loan_id", "0x")
    view = s.step(
        "bank-a",
        "reads the loan on its own node: the schedule it checked before signing",
        "apr 1,200 bps, 12 instalments, the first 888.49 CNY due",
        lambda: s.on("bank-a").get(f"/v1/loans/{loan_id}"),
        lambda st, b: (
            st == 200 and b["apr_bps"] == 1_200 and len(b["schedule"]["instalments"]) == 12
        ),
        lambda st, b: (
            f"{st} apr {b['apr_bps']} bps, first instalment "
            f"{_fen(b['schedule']['instalments'][0]['total'])} due"
        ),
    )
    first = (view.get("schedule") or {"instalments": [{"principal": 1, "interest": 0}]})[
        "instalments"
    ][0]
    s.step(
        "platform",
        "records the first instalment (principal and interest)",
        "201; the instalment shows as paid, the second as due",
        lambda: plat.post(
            f"/v1/loans/{loan_id}/repayments",
            {
                "repayment_id": lid.format("instalment-1"),
                "principal": first["principal"],
                "interest": first["interest"],
            },
        ),
        lambda st, b: st == 201,
        lambda st, b: f"{st} interest split per tranche {b.get('interest_allocation', '')}",
    )
    s.refused(
        "tries 2.2% a month: a simple annual rate of 14.86%, an IRR APR of 26.40%",
        "409 AllInAprTooHigh (R9): the cap judges the IRR, not the simple rate",
        _sched_loan(s, lid.format("too-dear"), ids[1], {**TWELVE, "rate_bps": 2_640}),
        "AllInAprTooHigh",
        aprBps=2_640,
        capBps=2_400,
    )
    late = _sched_loan(s, lid.format("late"), ids[2], TWELVE)
    made = s.originate(
        "co-originates a loan whose schedule started 70 days ago (standing in for months passing)",
        "201; two instalments are already past due",
        late | {"schedule": TWELVE | {"start": _now(state_dir, rpc_url) - 70 * DAY}},
    )
    late_id = made.get("loan_id", "0x")
    _wait(s, late_id, "overdue")
    s.step(
        "platform",
        "its node's keeper has followed days past due",
        "overdue; the floor classifies it special mention",
        lambda: plat.get(f"/v1/loans/{late_id}"),
        lambda st, b: (
            st == 200
            and b["status"] == "overdue"
            and b["schedule"]["floor_category"] == "special_mention"
        ),
        lambda st, b: (
            f"{st} {b['status']}, {b['schedule']['days_past_due']} days past due, "
            f"floor {b['schedule']['floor_category']}"
        ),
    )
    _guarantor_and_recovery(s, state_dir, late_id, rpc_url, delay_s)


def _now(state_dir: Path, rpc_url: str | None) -> int:
    c = _chain(state_dir, "platform", rpc_url)
    try:
        return int(c.w3.eth.get_block("latest")["timestamp"])
    finally:
        c.close()


def _guarantor_and_recovery(
    s: _Story, state_dir: Path, loan_id: str, rpc_url: str | None, delay_s: int
) -> None:
    from ledger.domain import MemberStatus, Role

    gov = "/v1/governance/proposals"
    # the platform's client reads the registry only; nothing here is sent with a guarantor key
    plat = _chain(state_dir, "platform", rpc_url, s._accounts.get("platform"))
    try:
        if "guarantor" not in s.urls:
            raise RuntimeError("no guarantor node is running (`ledger up` starts one)")
        me = s.addr["guarantor"]
        node = s.on("guarantor")
        if plat.member(me)["role"] != Role.GUARANTOR:
            # a consortium `ledger up` deployed before it admitted a guarantor at bootstrap:
            # the council admits it now, over the members' nodes
            from ledger.chain.deployment import fund

            fund(plat.rpc_url, [me])
            admit = {"action": "admit", "address": me, "role": "guarantor",
                     "name": "Guarantor (dev)"}  # fmt: skip
            body = s.on("platform").post(gov, admit).json()
            pid = body.get("id")
            for bank in ("bank-a", "bank-b"):
                s.on(bank).post(f"{gov}/{pid}/approve")
            _fast_forward(state_dir, delay_s, rpc_url)
            s.on("auditor").post(f"{gov}/{pid}/execute")

        def admitted(st: int, b: dict[str, Any]) -> bool:
            m = plat.member(me)
            return (
                st == 200
                and (b["role"], b["node"]["address"]) == ("guarantor", me)
                and m["role"] == Role.GUARANTOR
                and m["status"] == MemberStatus.ACTIVE
            )

        s.step(
            "guarantor",
            "signs in on its own node: a guarantee company the consortium admitted",
            "role guarantor, active; the node acts for it with its own key",
            lambda: node.get("/v1/console/me"),
            admitted,
            lambda st, b: f"{st} {b['role']} {b['name']} on its node {s.urls['guarantor']}",
        )
        until = _now(state_dir, rpc_url) + 30 * DAY
        s.step(
            "guarantor",
            "attests its net assets on its node: 500,000 CNY for 30 days (R10's base)",
            "201; it may guarantee up to 10x, 5,000,000 CNY",
            lambda: node.post(
                "/v1/attestations/net-assets", {"net_assets": 50_000_000, "valid_until": until}
            ),
            lambda st, b: st == 201 and b["guarantor"] == me and b["cap"] == 500_000_000,
            lambda st, b: f"{st}, cap {_fen(b['cap'])}",
        )
        s.step(
            "guarantor",
            "offers on its node to cover 80% of the overdue loan's bank tranches",
            "201, 480,000 fen offered, R10 pre-checked",
            lambda: node.post(f"/v1/loans/{loan_id}/guarantee-offer", {"cover_bps": 8_000}),
            lambda st, b: st == 201 and b["amount"] == 480_000,
            lambda st, b: f"{st}, {_fen(b['amount'])} offered",
        )
        s.step(
            "platform",
            "accepts the guarantor's offer to cover 80% of the bank tranches (R10 checked)",
            "201, 480,000 fen covered",
            lambda: s.on("platform").post(
                f"/v1/loans/{loan_id}/guarantee", {"guarantor": me, "cover_bps": 8_000}
            ),
            lambda st, b: st == 201 and b["amount"] > 0,
            lambda st, b: f"{st}, {_fen(b['amount'])} covered",
        )
        s.step(
            "platform",
            "marks the overdue loan defaulted",
            "200 defaulted",
            lambda: s.on("platform").post(
                f"/v1/loans/{loan_id}/status", {"status": "defaulted", "reason": "DPD"}
            ),
            lambda st, b: st == 200,
        )
        s.step(
            "guarantor",
            "records on its node its payment of 80% of the banks' outstanding (代偿)",
            "201; each bank's tranche paid; the borrower's exposure unchanged",
            lambda: node.post(f"/v1/loans/{loan_id}/compensation"),
            lambda st, b: st == 201 and b["total"] > 0 and b["guarantor"] == me,
            lambda st, b: f"{st} paid {_fen(b['total'])}: {[x['amount'] for x in b['payouts']]}",
        )
        s.on("platform").post(
            f"/v1/loans/{loan_id}/status", {"status": "written_off", "reason": "LOSS"}
        )
        s.step(
            "platform",
            "records a recovery of 1,000 CNY on the written-off loan",
            "split pro rata across the tranches; exposure not added back",
            lambda: s.on("platform").post(
                f"/v1/loans/{loan_id}/recoveries",
                {"recovery_id": f"recovery|{loan_id}", "amount": 100_000},
            ),
            lambda st, b: st == 201 and sum(x["amount"] for x in b["split"]) == 100_000,
            lambda st, b: f"{st}, split {[x['amount'] for x in b['split']]}",
        )
    except Exception as exc:  # noqa: BLE001 - a demo step that fails is reported, not raised
        s.steps.append(
            {
                "actor": "guarantor",
                "action": "guarantee, default, recovery",
                "expected": "done",
                "outcome": _outcome(500, {"code": type(exc).__name__, "detail": str(exc)}),
                "ok": False,
                "status": 500,
                "response": {},
            }
        )
    finally:
        plat.close()
