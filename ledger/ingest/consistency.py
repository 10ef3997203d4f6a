"""The read model against the chain: every maintained aggregate and record, view by view.

Checked at one block (the indexer's last), with batched eth_calls:

* borrower exposure and open records per institution: `borrowerExposure`;
* per borrower and institution, outstanding principal and active line limits: the sum of the
  contract's `trancheOutstanding` over the borrower's loans, and of the shares of the lines
  `lineState` reports active (these amounts are not kept on chain by design);
* lender usage in total (R6) and with each platform (R5): `lenderUsage`;
* each loan's commitment to its terms, outstanding principal and status: `loanState`, and its
  tranches' outstanding principal: `trancheOutstanding`;
* each line's limit, drawn amount, status and borrower: `lineState`;
* each member's record (`member`), the member count, policy version, pause flag and governor;
* every field of every policy version, R0's minBankTranches included (`policyAt`);
* LoanServicing (when the deployment has one): each bank's latest classification of each loan
  (`classificationOf`), each loan's guarantee (`guaranteeOf`: guarantor, cover, amount,
  settled), compensation per tranche (`compensationOf`) and recoveries (`recovered`), and each
  guarantor's unsettled guarantees (`guaranteedOutstanding`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select

from ledger.chain.abi import Function
from ledger.chain.rpc import Rpc, RpcError
from ledger.domain import CoLoan, LineStatus, Policy, Role, to_checksum_address
from ledger.provenance import commitment
from ledger.records import loan_from_row
from ledger.store.models import TABLES

if TYPE_CHECKING:
    from ledger.chain.client import LedgerClient

Pairs = dict[tuple[bytes, str], list[int]]  # (borrower, institution) -> [outstanding, limits]


@dataclass(frozen=True, slots=True)
class Mismatch:
    kind: str  # borrower_exposure, borrower_lender, lender_usage, loan, tranches, line, member...
    key: str
    field: str
    db: Any
    chain: Any

    def __str__(self) -> str:
        return f"{self.kind} {self.key} {self.field}: database {self.db!r}, chain {self.chain!r}"


@dataclass
class _Check:
    rpc: Rpc
    block: str
    ledger: str
    registry: str
    ledger_abi: list[dict]
    registry_abi: list[dict]
    servicing: str = ""
    servicing_abi: list[dict] = field(default_factory=list)
    out: list[Mismatch] = field(default_factory=list)

    def diff(self, kind: str, key: Any, what: str, db: Any, chain: Any) -> None:
        if db != chain:
            k = "0x" + key.hex() if isinstance(key, bytes) else str(key)
            self.out.append(Mismatch(kind, k, what, db, chain))

    def calls(self, contract: str, fn: str, args: Iterable[tuple]) -> list[tuple | RpcError]:
        to, abi = {
            "ledger": (self.ledger, self.ledger_abi),
            "registry": (self.registry, self.registry_abi),
            "servicing": (self.servicing, self.servicing_abi),
        }[contract]
        f = Function(abi, fn)
        batch = [("eth_call", [{"to": to, "data": f.data(*a)}, self.block]) for a in args]
        raw = self.rpc.batch(batch, return_errors=True)
        return [r if isinstance(r, RpcError) else f.decode(r) for r in raw]

    def failed(self, kind: str, key: Any, result: Any) -> bool:
        if isinstance(result, RpcError):
            self.diff(kind, key, "view call", None, str(result))
            return True
        return False


def check(
    engine: Engine, rpc: Rpc, client: LedgerClient, block: int | None = None
) -> list[Mismatch]:
    """Everything that differs between the database and the chain at `block` (default: the
    block the database is indexed to, read in the same snapshot as the rows, so an indexer
    writing meanwhile cannot cause a false mismatch)."""
    dep = client.deployment
    db = _snapshot(engine)
    at = db["block"] if block is None else block
    c = _Check(rpc, hex(at), dep.ledger, dep.registry, client.ledger.abi, client.registry.abi)
    if dep.servicing:
        c.servicing, c.servicing_abi = dep.servicing, client.servicing.abi
    _registry(c, db)
    pairs: Pairs = defaultdict(lambda: [0, 0])
    _loans(c, db, pairs)
    _lines(c, db, pairs)
    _borrowers(c, db, pairs)
    _lenders(c, db)
    if dep.servicing:
        _servicing(c, db)
    return c.out


def _snapshot(engine: Engine) -> dict[str, Any]:
    t = TABLES
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot for every query below
            conn.execution_options(isolation_level="REPEATABLE READ")

        def rows(name: str) -> list[Any]:
            return list(conn.execute(select(t[name])).mappings())

        db: dict[str, Any] = {
            n: rows(n) for n in ("members", "loans", "credit_lines", "consortium")
        }
        db["tranches"] = defaultdict(list)
        for r in conn.execute(select(t["tranches"]).order_by(t["tranches"].c.idx)).mappings():
            db["tranches"][r["loan_id"]].append(r)
        db["shares"] = defaultdict(list)
        for r in rows("line_shares"):
            db["shares"][r["line_id"]].append(r)
        db["exposure"] = {r["borrower_key"]: r for r in rows("borrower_exposure")}
        db["pairs"] = {(r["borrower_key"], r["lender"]): r for r in rows("borrower_lenders")}
        db["usage"] = {r["lender"]: r["total"] for r in rows("lender_usage")}
        db["partner"] = {
            (r["lender"], r["partner"]): r["outstanding"] for r in rows("lender_partner_usage")
        }
        db["policy_rows"] = rows("policy_versions")
        db["policies"] = len(db["policy_rows"])
        db["block"] = conn.execute(select(t["indexer_cursor"].c.last_block)).scalar_one()
        for name in ("guarantees", "guarantee_releases", "classifications", "recoveries"):
            db[name] = rows(name)
        db["compensations"] = defaultdict(list)
        for r in conn.execute(
            select(t["compensations"]).order_by(t["compensations"].c.idx)
        ).mappings():
            db["compensations"][r["loan_id"]].append(r["payout"])
    return db


def _registry(c: _Check, db: dict[str, Any]) -> None:
    members = db["members"]
    for m, got in zip(
        members, c.calls("registry", "member", [(m["address"],) for m in members]), strict=True
    ):
        if c.failed("member", m["address"], got):
            continue
        role, status, frozen, index, tier1, total, _at, until = got[0]
        mine = (m["role"], m["status"], m["frozen"], m["member_index"], m["tier1_capital"],
                m["total_loan_balance"], m["attested_until"])  # fmt: skip
        c.diff(
            "member",
            m["address"],
            "record",
            mine,
            (role, status, frozen, index, tier1, total, until),
        )
    names = ("memberCount", "policyVersion", "paused", "owner")
    views = {n: c.calls("registry", n, [()])[0] for n in names}
    if any(c.failed("consortium", n, v) for n, v in views.items()):
        return
    count, version, paused, owner = (views[n][0] for n in names)  # type: ignore[index]
    cons = db["consortium"][0] if db["consortium"] else {}
    c.diff("consortium", "registry", "members", len(members), count)
    c.diff(
        "consortium",
        "registry",
        "policy versions",
        (db["policies"], cons.get("policy_version")),
        (version, version),
    )
    c.diff("consortium", "registry", "paused", cons.get("paused"), paused)
    _policies(c, db["policy_rows"])
    c.diff("consortium", "registry", "governor", cons.get("governor"), to_checksum_address(owner))


def _policies(c: _Check, rows: list[Any]) -> None:
    """Every field of every policy version (R0's minBankTranches included) and its block."""
    got = c.calls("registry", "policyAt", [(r["version"],) for r in rows])
    for r, v in zip(rows, got, strict=True):
        if c.failed("policy", r["version"], v):
            continue
        chain = Policy.from_abi(v[0])
        mine = {f.name: r[f.name] for f in fields(Policy)}
        c.diff(
            "policy",
            r["version"],
            "fields",
            mine,
            {f.name: getattr(chain, f.name) for f in fields(Policy)},
        )


def _loans(c: _Check, db: dict[str, Any], pairs: Pairs) -> None:
    loans = db["loans"]
    terms = [_loan(r, db["tranches"][r["loan_id"]]) for r in loans]
    states = c.calls("ledger", "loanState", [(ln.loan_id,) for ln in terms])
    outs = c.calls("ledger", "trancheOutstanding", [(ln.as_abi(),) for ln in terms])
    for r, ln, st, tr in zip(loans, terms, states, outs, strict=True):
        if c.failed("loan", ln.loan_id, st) or c.failed("tranches", ln.loan_id, tr):
            continue
        c.diff("loan", ln.loan_id, "commitment", commitment(ln), bytes(st[0]))
        c.diff(
            "loan",
            ln.loan_id,
            "outstanding/status",
            (r["outstanding"], r["status"]),
            (st[1], st[2]),
        )
        mine = [x["outstanding"] for x in db["tranches"][ln.loan_id]]
        c.diff("tranches", ln.loan_id, "outstanding", mine, list(tr[0]))
        for tranche, amount in zip(ln.tranches, tr[0], strict=True):
            pairs[(ln.borrower_key, tranche.lender)][0] += amount


def _lines(c: _Check, db: dict[str, Any], pairs: Pairs) -> None:
    lines = db["credit_lines"]
    for r, st in zip(
        lines, c.calls("ledger", "lineState", [(r["line_id"],) for r in lines]), strict=True
    ):
        if c.failed("line", r["line_id"], st):
            continue
        (limit, drawn, _expires, status, _product, _pidx, _inst, _frozen), key = st
        mine = (r["limit_amount"], r["drawn"], r["status"], r["borrower_key"])
        c.diff(
            "line",
            r["line_id"],
            "limit/drawn/status/borrower",
            mine,
            (limit, drawn, status, bytes(key)),
        )
        if status == LineStatus.ACTIVE:
            for s in db["shares"][r["line_id"]]:
                pairs[(bytes(key), s["lender"])][1] += s["amount"]


def _borrowers(c: _Check, db: dict[str, Any], pairs: Pairs) -> None:
    # every borrower a record names, including those whose rows are now gone (all zero)
    keys = sorted(
        {r["borrower_key"] for r in db["loans"]} | {r["borrower_key"] for r in db["credit_lines"]}
    )
    opened: dict[bytes, dict[int, int]] = defaultdict(dict)
    for (key, _lender), p in db["pairs"].items():
        if p["open_records"]:
            opened[key][p["member_index"]] = p["open_records"]
    for key, v in zip(
        keys, c.calls("ledger", "borrowerExposure", [(k,) for k in keys]), strict=True
    ):
        if c.failed("borrower_exposure", key, v):
            continue
        consumer, business, idx, counts = v
        row = db["exposure"].get(key)
        mine = (row["consumer"], row["business"], row["institutions"]) if row else (0, 0, 0)
        c.diff(
            "borrower_exposure",
            key,
            "consumer/business/institutions",
            mine,
            (consumer, business, len(idx)),
        )
        c.diff(
            "borrower_exposure",
            key,
            "open records",
            opened.get(key, {}),
            dict(zip(idx, counts, strict=True)),
        )
    for key, lender in set(db["pairs"]) | set(pairs):
        row = db["pairs"].get((key, lender))
        mine = (row["loan_outstanding"], row["line_limit"]) if row else (0, 0)
        chain = tuple(pairs.get((key, lender), (0, 0)))
        c.diff("borrower_lender", key, f"{lender} outstanding/line limit", mine, chain)


def _lenders(c: _Check, db: dict[str, Any]) -> None:
    """R6 per bank and R5 per bank and platform."""
    members = db["members"]
    banks = [m["address"] for m in members if m["role"] == Role.LENDER]
    platforms = [m["address"] for m in members if m["role"] == Role.PLATFORM]
    combos = [(b, p) for b in banks for p in platforms]
    for (bank, plat), v in zip(combos, c.calls("ledger", "lenderUsage", combos), strict=True):
        if c.failed("lender_usage", bank, v):
            continue
        c.diff("lender_usage", bank, "total", db["usage"].get(bank, 0), v[0])
        c.diff(
            "lender_partner_usage", bank, f"with {plat}", db["partner"].get((bank, plat), 0), v[1]
        )


def _servicing(c: _Check, db: dict[str, Any]) -> None:
    """LoanServicing's state per loan the read model names (every loan, so a guarantee or
    classification the read model lacks is found too) and per guarantor."""
    ids = [r["loan_id"] for r in db["loans"]]
    latest: dict[tuple[bytes, str], int] = {}
    for r in sorted(db["classifications"], key=lambda r: (r["block_number"], r["log_index"])):
        latest[(r["loan_id"], r["lender"])] = r["category"]
    banks = {m["address"] for m in db["members"] if m["role"] == Role.LENDER}
    # a bank classifies only a tranche it funds
    pairs = [(i, t["lender"]) for i in ids for t in db["tranches"][i] if t["lender"] in banks]
    for (lid, bank), v in zip(
        pairs, c.calls("servicing", "classificationOf", pairs), strict=True
    ):  # fmt: skip
        if not c.failed("classification", lid, v):
            chain = int(v[1]) if v[0] else None
            c.diff("classification", lid, f"{bank} category", latest.get((lid, bank)), chain)
    guarantees = {r["loan_id"]: r for r in db["guarantees"]}
    settled = {r["loan_id"] for r in db["guarantee_releases"]} | set(db["compensations"])
    recovered: dict[bytes, int] = defaultdict(int)
    for r in db["recoveries"]:
        if r["idx"] == 0:  # each recovery's amount once
            recovered[r["loan_id"]] += r["amount"]
    per_loan = [(i,) for i in ids]
    views = zip(
        ids,
        c.calls("servicing", "guaranteeOf", per_loan),
        c.calls("servicing", "compensationOf", per_loan),
        c.calls("servicing", "recovered", per_loan),
        strict=True,
    )
    held: dict[str, int] = defaultdict(int)
    for lid, g, paid, rec in views:
        if c.failed("guarantee", lid, g) or c.failed("compensation", lid, paid):
            continue
        if c.failed("recovery", lid, rec):
            continue
        row = guarantees.get(lid)
        mine = None if row is None else (row["guarantor"], row["cover_bps"], row["amount"],
                                         lid in settled)  # fmt: skip
        guarantor, cover, amount, done = g[0]
        chain = (
            None
            if int(guarantor, 16) == 0
            else (to_checksum_address(guarantor), cover, amount, done)
        )
        c.diff("guarantee", lid, "guarantor/cover/amount/settled", mine, chain)
        if row is not None and lid not in settled:
            held[row["guarantor"]] += row["amount"]
        c.diff("compensation", lid, "payouts", db["compensations"].get(lid, []), list(paid[0]))
        c.diff("recovery", lid, "recovered", recovered.get(lid, 0), rec[0])
    guarantors = [m["address"] for m in db["members"] if m["role"] == Role.GUARANTOR]
    for g, v in zip(
        guarantors,
        c.calls("servicing", "guaranteedOutstanding", [(g,) for g in guarantors]),
        strict=True,
    ):
        if not c.failed("guarantor", g, v):
            c.diff("guarantor", g, "guaranteed outstanding", held.get(g, 0), v[0])


def _loan(r: Any, tranches: list[Any]) -> CoLoan:
    return loan_from_row(r, tranches)
