"""The consortium story, told over HTTP against the five running nodes (`ledger demo`).

Co-origination with the banks' co-signatures, a bank's exposure query, refusals by R1/R2, R3 and
R4 with their numbers and by a bank's own appetite, a repayment that makes the blocked loan fit,
an idempotent retry, object-level scoping, the auditor's read-everything, write-nothing role, a
policy change adopted by the council (a majority of the members, each on its own node, then the
timelock's delay), the loan economics (ledger.localnet.story_economics), and a servicing
transfer: a second platform admitted by the council records a loan, is removed, and the council
hands its open loan to the platform, whose node repays it. Each step records what was expected
and what happened.

Resident IDs are synthetic (valid check digits, made-up numbers) and new on every run, so the
story plays the same way every time on the same chain. DEV-ONLY keys sign the members in.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.identity import _check_digit

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount


def story_id(n: int) -> str:
    """A synthetic resident ID, distinct for every n below 20 million (region 440305, born
    between 1960 and 2014, sequence number n mod 1000)."""
    born = date(1960, 1, 1) + timedelta(days=(n // 1000) % 20_000)
    first17 = f"440305{born:%Y%m%d}{n % 1000:03d}"
    return first17 + _check_digit(first17)


def _next_run(state_dir: Path) -> int:
    path = state_dir / "demo-runs"
    try:
        n = int(path.read_text().strip()) + 1
    except (OSError, ValueError):
        n = 1
    path.write_text(f"{n}\n")
    return n


def _fen(v: int) -> str:
    return f"{v:,} fen ({v / 100:,.0f} CNY)" if v % 100 == 0 else f"{v:,} fen"


def _names() -> dict[str, str]:
    from ledger.localnet import nodes

    return {m.address: m.name for m in nodes.UP_MEMBERS}


# numbers in a refusal that are counts, shares or states rather than money
_COUNTS = frozenset(
    {"institutions", "max", "minBps", "banks", "min", "state", "approvals", "threshold"}
)


def _outcome(status: int, body: Any) -> str:
    if not isinstance(body, dict):
        return f"HTTP {status}"
    if "code" in body and status >= 400:
        nums = [
            f"{k} {v if k in _COUNTS else _fen(v)}"
            for k, v in body.items()
            if isinstance(v, int) and not isinstance(v, bool) and k != "status"
        ]
        rule = f" ({body['rule']})" if body.get("rule") else ""
        lender = f" by {_names().get(body['lender'], body['lender'])}" if body.get("lender") else ""
        return f"{status} {body['code']}{rule}{lender}: " + (", ".join(nums) or body["detail"])
    return f"HTTP {status}"


def _created(st: int, b: Any) -> bool:
    return st == 201 and b["status"] == "active"


def _recorded(st: int, b: Any) -> str:
    return f"{st} recorded in block {b['block_number']}"


def _refused(code: str, **fields: Any) -> Callable[[int, Any], bool]:
    """A step's check: refused with 409 `code`, the problem carrying these fields."""
    return lambda st, b: (
        st == 409 and b["code"] == code and all(b[k] == v for k, v in fields.items())
    )


class _Story:
    def __init__(self, urls: dict[str, str], accounts: dict[str, LocalAccount] | None) -> None:
        from ledger.keys import dev_account
        from ledger.localnet import nodes
        from ledger.nodeclient import NodeSession

        # the members' own keys on the production-like chain, else the DEV-ONLY ones
        self._accounts = accounts or {
            m.name: dev_account(m.key_role, m.key_index) for m in nodes.UP_MEMBERS
        }
        self.addr = {name: a.address for name, a in self._accounts.items()}
        self.sessions: dict[tuple[str, str], NodeSession] = {}
        self.urls = urls
        self._session = NodeSession
        self.steps: list[dict[str, Any]] = []

    def on(self, member: str, node: str | None = None):  # noqa: ANN201 - NodeSession
        key = (member, node or member)
        if key not in self.sessions:
            self.sessions[key] = self._session.signed_in(self.urls[key[1]], self._accounts[member])
        return self.sessions[key]

    def close(self) -> None:
        for s in self.sessions.values():
            s.close()

    def step(
        self,
        actor: str,
        action: str,
        expected: str,
        call: Callable[[], Any],
        check: Callable[[int, Any], bool],
        describe: Callable[[int, Any], str] = _outcome,
    ) -> Any:
        r = call()
        body = r.json() if r.headers.get("content-type", "").endswith("json") else r.text
        try:
            ok = bool(check(r.status_code, body))
        except (KeyError, TypeError, IndexError):
            ok = False
        try:
            outcome = describe(r.status_code, body)
        except (KeyError, TypeError, IndexError):
            outcome = _outcome(r.status_code, body)  # not the shape expected: show the problem
        self.steps.append(
            {
                "actor": actor,
                "action": action,
                "expected": expected,
                "outcome": outcome,
                "ok": ok,
                "status": r.status_code,
                "response": body,
            }
        )
        return body

    def originate(
        self,
        action: str,
        expected: str,
        body: dict[str, Any],
        check: Callable[[int, Any], bool] = _created,
        describe: Callable[[int, Any], str] = _recorded,
    ) -> Any:
        """The platform posts the loan `body` to its node."""
        plat = self.on("platform")
        return self.step(
            "platform", action, expected, lambda: plat.post("/v1/loans", body), check, describe
        )

    def refused(
        self, action: str, expected: str, body: dict[str, Any], code: str, **fields: Any
    ) -> Any:
        """The platform posts the loan `body`, which must be refused with 409 `code`."""
        return self.originate(action, expected, body, _refused(code, **fields), _outcome)

    def loan(
        self,
        loan_id: str,
        nid: str,
        principal: int,
        shares: dict[str, int],
        product: str = "consumer",
    ) -> dict[str, Any]:
        return {
            "loan_id": loan_id,
            "borrower_id": nid,
            "product": product,
            "principal": principal,
            "apr_bps": 1_200,
            "term_days": 180,
            "repayment": "instalment",
            "tranches": [{"lender": self.addr[m], "amount": a} for m, a in shares.items()],
        }


def _play(s: _Story, run: int) -> None:
    x, y, z, w, v = (story_id(run * 10 + i) for i in range(5))
    lid = f"demo-{run}-" + "{}"
    plat = s.on("platform")

    first = s.loan(
        lid.format("consumer"),
        x,
        12_000_000,
        {"platform": 4_800_000, "bank-a": 3_600_000, "bank-b": 3_600_000},
    )
    # the signed loan agreement: stored encrypted by the platform node, its digest on chain
    first["document"] = base64.b64encode(
        f"DEMO loan agreement {lid.format('consumer')}: 120,000 CNY, 12% APR, 180 days".encode()
    ).decode()
    r1 = s.originate(
        "co-originates a consumer loan of 120,000 CNY with bank-a and bank-b",
        "201, every co-signature collected over HTTP",
        first,
    )
    key_x = r1.get("borrower_key")
    business = s.loan(
        lid.format("business"),
        y,
        60_000_000,
        {"platform": 24_000_000, "bank-a": 30_000_000, "bank-b": 6_000_000},
        product="business",
    )
    s.originate(
        "co-originates a business loan of 600,000 CNY",
        "201",
        business,
    )

    bank = s.on("bank-a")
    s.step(
        "bank-a",
        "derives the borrower key from the national ID on its own node",
        "the same key the platform's node derived",
        lambda: bank.post("/v1/borrowers/key", {"national_id": x}),
        lambda st, b: st == 200 and b["borrower_key"] == key_x,
        lambda st, b: f"{st} {b.get('borrower_key', '')[:18]}…",
    )
    expo = lambda st, b: (  # noqa: E731
        f"{st} total {_fen(b['total_exposure'])}, headroom {_fen(b['headroom']['consumer'])}, "
        f"{b['lender_count']} institutions, own {_fen(b['own_exposure'])}"
    )
    s.step(
        "bank-a",
        "queries the borrower's consortium-wide exposure and headroom",
        "total 12,000,000 fen, headroom 8,000,000, 3 institutions, own 3,600,000",
        lambda: bank.get(f"/v1/borrowers/{key_x}/exposure"),
        lambda st, b: (
            st == 200
            and b["total_exposure"] == 12_000_000
            and b["headroom"]["consumer"] == 8_000_000
            and b["lender_count"] == 3
            and b["own_exposure"] == 3_600_000
        ),
        expo,
    )

    blocked = s.loan(
        lid.format("blocked"), x, 10_000_000, {"platform": 4_000_000, "bank-a": 6_000_000}
    )
    s.refused(
        "a further 100,000 CNY for the same borrower, past the consumer cap",
        "409 BorrowerCapExceeded (R1/R2) with exposure, requested, cap, headroom",
        blocked,
        "BorrowerCapExceeded",
        rule="R1/R2",
        exposure=12_000_000,
        requested=10_000_000,
        cap=20_000_000,
        headroom=8_000_000,
    )

    three = s.loan(
        lid.format("three"),
        z,
        3_000_000,
        {"platform": 1_200_000, "bank-a": 900_000, "bank-b": 900_000},
    )
    s.originate(
        "a loan with 3 institutions (platform, bank-a, bank-b)",
        "201",
        three,
    )
    fourth = s.loan(
        lid.format("fourth"), z, 3_000_000, {"platform": 1_200_000, "bank-c": 1_800_000}
    )
    s.refused(
        "the same borrower with bank-c, a 4th institution",
        "409 TooManyInstitutions (R3), institutions 4, max 3",
        fourth,
        "TooManyInstitutions",
        rule="R3",
        institutions=4,
        max=3,
    )
    low = s.loan(lid.format("share"), w, 5_000_000, {"platform": 1_000_000, "bank-a": 4_000_000})
    s.refused(
        "a loan where the platform funds only 20%",
        "409 PlatformShareTooLow (R4), minBps 3000",
        low,
        "PlatformShareTooLow",
        rule="R4",
        platformAmount=1_000_000,
        minBps=3_000,
    )
    alone = s.loan(lid.format("alone"), w, 5_000_000, {"platform": 5_000_000})
    s.refused(
        "a loan the platform funds alone, with no bank",
        "409 TooFewBankTranches (R0), banks 0, min 1",
        alone,
        "TooFewBankTranches",
        rule="R0",
        banks=0,
        min=1,
    )

    loan_x = r1.get("loan_id")
    repay = {"repayment_id": lid.format("repayment"), "principal": 4_000_000, "interest": 60_000}
    s.step(
        "platform",
        "records a repayment of 40,000 CNY principal on the first loan",
        "201, split pro rata: platform 1,600,000, each bank 1,200,000",
        lambda: plat.post(f"/v1/loans/{loan_x}/repayments", repay),
        lambda st, b: (
            st == 201
            and b["outstanding"] == 8_000_000
            and sorted(a["principal"] for a in b["allocation"]) == [1_200_000, 1_200_000, 1_600_000]
        ),
        lambda st, b: (
            f"{st} outstanding {_fen(b['outstanding'])}; "
            + ", ".join(
                f"{_names().get(a['lender'], a['lender'])} {a['principal']:,}"
                for a in b["allocation"]
            )
        ),
    )
    s.step(
        "bank-a",
        "queries the exposure again",
        "total 8,000,000 fen, headroom 12,000,000",
        lambda: bank.get(f"/v1/borrowers/{key_x}/exposure"),
        lambda st, b: (
            st == 200
            and b["total_exposure"] == 8_000_000
            and b["headroom"]["consumer"] == 12_000_000
        ),
        expo,
    )
    s.originate(
        "retries the blocked loan (same loan id, same request)",
        "201: it fits now",
        blocked,
    )

    big_c = s.loan(
        lid.format("appetite"), v, 10_000_000, {"platform": 4_000_000, "bank-c": 6_000_000}
    )
    s.refused(
        "asks bank-c to fund a 60,000 CNY tranche",
        "409 AppetiteExceeded from bank-c's node (its maximum tranche is 20,000 CNY)",
        big_c,
        "AppetiteExceeded",
        lender=s.addr["bank-c"],
        max_tranche=2_000_000,
    )
    s.step(
        "platform",
        "retries the first loan request (network retry)",
        "201, the original result: same transaction, no second record",
        lambda: plat.post("/v1/loans", first),
        lambda st, b: st == 201 and b["tx_hash"] == r1["tx_hash"],
        _recorded,
    )

    bank_c = s.on("bank-c")
    s.step(
        "bank-c",
        "reads the first loan, which it does not fund",
        "404: loan-level data only for its own tranches",
        lambda: bank_c.get(f"/v1/loans/{loan_x}"),
        lambda st, b: st == 404,
    )
    audit = s.on("auditor")
    s.step(
        "auditor",
        "lists every loan of the first borrower",
        "200, both loans, all tranches",
        lambda: audit.get("/v1/loans", params={"borrower_key": key_x}),
        lambda st, b: st == 200 and b["count"] == 2,
        lambda st, b: (
            f"{st} {b['count']} loans, "
            + ", ".join(f"{ln['status']} {_fen(ln['outstanding'])}" for ln in b["loans"])
        ),
    )
    s.step(
        "auditor",
        "reads bank-a's R5/R6 usage",
        "200",
        lambda: audit.get(f"/v1/lenders/{s.addr['bank-a']}/limits"),
        lambda st, b: st == 200 and b["joint_loans"]["outstanding"] > 0,
        lambda st, b: (
            f"{st} outstanding {_fen(b['joint_loans']['outstanding'])}, "
            f"attestation fresh: {b['attestation_fresh']}"
        ),
    )
    audit_p = s.on("auditor", "platform")
    s.step(
        "auditor",
        "tries to originate a loan on the platform's node",
        "403: it writes nothing",
        lambda: audit_p.post(
            "/v1/loans",
            s.loan(lid.format("auditor"), v, 1_000_000, {"platform": 400_000, "bank-a": 600_000}),
        ),
        lambda st, b: st == 403 and b["code"] == "RoleForbidden",
    )
