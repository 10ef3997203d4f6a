"""What the web console shows (api/console/), read from this node's read model: who is who (the
registry's names), a member's own portfolio and lines, the platform's recent records and
refusals, the policy history, the council's queue, and consortium exposure over blocks. Every
answer says the block it is as of."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Engine, desc, func, select

from api.problems import Problem
from api.service.context import MemberContext
from ledger.domain import LineStatus, LoanStatus, Role, to_hex
from ledger.store.models import TABLES

ROLE_NAMES = {int(r): r.name.lower() for r in Role}
STATUS = {0: "none", 1: "active", 2: "suspended", 3: "removed"}


def engine_of(reads: Any) -> Engine:
    engine = getattr(reads, "engine", None)
    if engine is None:
        raise Problem(503, "ConsoleNeedsIndex", "the console reads this node's indexed read model")
    return engine


def as_of(conn: Connection) -> int:
    return conn.execute(select(TABLES["indexer_cursor"].c.last_block)).scalar() or 0


def members(engine: Engine) -> dict[str, Any]:
    m = TABLES["members"]
    with engine.connect() as conn:
        rows = conn.execute(select(m).order_by(m.c.member_index)).mappings().all()
        return {
            "as_of_block": as_of(conn),
            "members": [
                {
                    "address": r["address"],
                    "name": r["name"],
                    "role": ROLE_NAMES[r["role"]],
                    "status": STATUS.get(r["status"], str(r["status"])),
                    "frozen": r["frozen"],
                    "tier1_capital": r["tier1_capital"],
                    "total_loan_balance": r["total_loan_balance"],
                    "attested_at": r["attested_at"],
                    "attested_until": r["attested_until"],
                }
                for r in rows
            ],
        }


def _frozen_by(conn: Connection, line_ids: list[bytes]) -> dict[bytes, set[str]]:
    raw = TABLES["raw_events"]
    frozen: dict[bytes, set[str]] = defaultdict(set)
    for r in conn.execute(
        select(raw.c.args)
        .where(raw.c.contract == "ledger", raw.c.event == "LineShareFrozen")
        .order_by(raw.c.block_number, raw.c.log_index)
    ):
        lid = bytes.fromhex(r.args["lineId"].removeprefix("0x"))
        if lid in line_ids:
            (frozen[lid].add if r.args["frozen"] else frozen[lid].discard)(r.args["lender"])
    return frozen


def lines(engine: Engine, member: str) -> dict[str, Any]:
    """Active lines the member is a party to, with its share and who has frozen theirs."""
    cl, sh = TABLES["credit_lines"], TABLES["line_shares"]
    with engine.connect() as conn:
        own = {
            r.line_id: r.amount
            for r in conn.execute(select(sh.c.line_id, sh.c.amount).where(sh.c.lender == member))
        }
        rows = (
            conn.execute(
                select(cl)
                .where(cl.c.status == int(LineStatus.ACTIVE))
                .order_by(desc(cl.c.block_number))
            )
            .mappings()
            .all()
        )
        mine = [r for r in rows if r["line_id"] in own or r["platform"] == member]
        frozen = _frozen_by(conn, [r["line_id"] for r in mine])
        return {
            "as_of_block": as_of(conn),
            "lines": [
                {
                    "line_id": to_hex(r["line_id"]),
                    "borrower_key": to_hex(r["borrower_key"]),
                    "limit": r["limit_amount"],
                    "drawn": r["drawn"],
                    "expires_at": r["expires_at"],
                    "own_share": own.get(r["line_id"], 0),
                    "frozen_by": sorted(frozen.get(r["line_id"], set())),
                }
                for r in mine
            ],
        }


def activity(ctx: MemberContext, engine: Engine, limit: int = 20) -> dict[str, Any]:
    """The platform's latest records and the chain's refusals of its batch items."""
    loans, rej = TABLES["loans"], TABLES["loan_rejections"]
    decoder = ctx.client.errors
    with engine.connect() as conn:
        recent = conn.execute(
            select(
                loans.c.loan_id,
                loans.c.principal,
                loans.c.status,
                loans.c.block_number,
                loans.c.line_id,
            )
            .where(loans.c.platform == ctx.address)
            .order_by(desc(loans.c.block_number), desc(loans.c.log_index))
            .limit(limit)
        ).all()
        refused = conn.execute(
            select(rej.c.loan_id, rej.c.reason, rej.c.block_number)
            .order_by(desc(rej.c.block_number), desc(rej.c.log_index))
            .limit(limit)
        ).all()
        out_refused = []
        for r in refused:
            err = decoder.decode(bytes(r.reason))
            out_refused.append(
                {
                    "loan_id": to_hex(r.loan_id),
                    "block": r.block_number,
                    "code": err.code,
                    "values": {
                        k: (to_hex(v) if isinstance(v, bytes) else v) for k, v in err.values.items()
                    },
                }
            )
        return {
            "as_of_block": as_of(conn),
            "recent": [
                {
                    "loan_id": to_hex(r.loan_id),
                    "principal": r.principal,
                    "status": LoanStatus(r.status).name.lower(),
                    "block": r.block_number,
                    "drawn_from_line": r.line_id is not None,
                }
                for r in recent
            ],
            "refusals": out_refused,
        }


def policies(engine: Engine) -> dict[str, Any]:
    pv = TABLES["policy_versions"]
    with engine.connect() as conn:
        rows = conn.execute(select(pv).order_by(pv.c.version)).mappings().all()
        return {"as_of_block": as_of(conn), "versions": [dict(r) for r in rows]}


def exposure_series(engine: Engine) -> dict[str, Any]:
    """Consortium exposure (DESIGN §4, both products) after each block that changed it, replayed
    from the read model's records the way the contract counts it: a line's limit while it is
    active, a loan's outstanding principal unless it was drawn under a line that is still
    active. The last point equals the sum of the borrower_exposure aggregate."""
    t = TABLES
    deltas: dict[int, int] = defaultdict(int)
    with engine.connect() as conn:
        ended = {
            r.line_id: r.ended_block
            for r in conn.execute(
                select(t["credit_lines"].c.line_id, t["credit_lines"].c.ended_block)
            )
        }
        for r in conn.execute(
            select(t["credit_lines"].c.block_number, t["credit_lines"].c.limit_amount)
        ):
            deltas[r.block_number] += r.limit_amount
        raw = t["raw_events"]
        for r in conn.execute(
            select(raw.c.block_number, raw.c.args).where(
                raw.c.contract == "ledger", raw.c.event == "LineEnded"
            )
        ):
            deltas[r.block_number] += int(r.args["drawn"]) - int(r.args["limit"])

        def counts_alone(line_id: bytes | None, block: int) -> bool:
            end = ended.get(line_id) if line_id is not None else None
            return line_id is None or (end is not None and end <= block)

        loans = t["loans"]
        for r in conn.execute(select(loans.c.block_number, loans.c.principal, loans.c.line_id)):
            if r.line_id is None:
                deltas[r.block_number] += r.principal
        rp = t["repayments"]
        for r in conn.execute(
            select(rp.c.block_number, rp.c.principal, loans.c.line_id).join(
                loans, loans.c.loan_id == rp.c.loan_id
            )
        ):
            if counts_alone(r.line_id, r.block_number):
                deltas[r.block_number] -= r.principal
        sc = t["loan_status_changes"]
        for r in conn.execute(
            select(sc.c.block_number, sc.c.released_principal, loans.c.line_id)
            .join(loans, loans.c.loan_id == sc.c.loan_id)
            .where(sc.c.to_status == int(LoanStatus.WRITTEN_OFF))
        ):
            if counts_alone(r.line_id, r.block_number):
                deltas[r.block_number] -= r.released_principal
        be = t["borrower_exposure"]
        total_now = conn.execute(select(func.sum(be.c.consumer + be.c.business))).scalar() or 0
        head = as_of(conn)
    points, running = [], 0
    for block in sorted(deltas):
        running += deltas[block]
        points.append([block, running])
    return {"as_of_block": head, "points": points, "total_now": int(total_now)}


def council_queue(ctx: MemberContext) -> list[dict[str, Any]]:
    dep = ctx.deployment
    if not dep.council:
        return []
    from ledger.chain.events import find_events
    from ledger.chain.rpc import Rpc
    from ledger.governance import Council

    council = Council(ctx.client)
    found = find_events(
        Rpc(ctx.settings.rpc_url),
        council.decoder,
        "ProposalCreated",
        from_block=dep.deployment_block,
    )
    out = []
    for ev in found[-50:]:
        st = council.status(bytes(ev.args["id"])).to_json()
        try:
            fn, _ = ctx.client.registry.decode_function_input(st["data"])
            st["action"] = fn.fn_name
        except Exception:  # noqa: BLE001 - a call to another contract
            st["action"] = "call"
        st["block"] = ev.block_number
        out.append(st)
    return out
