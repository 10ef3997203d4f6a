"""Early-warning alerts for one member, derived from its node's read model (ledger.store).

Every node computes the alerts of its own member only, from chain data it has indexed, so any
node rebuilt from the chain finds the same alerts under the same ids. An alert's id is a hash of
what it is about, never of where it happened to land:

* events (a loan marked overdue, a member suspended) are named by the transaction that emitted
  them: a reorg that re-includes the same signed transaction in another block yields the same id,
  so a delivered alert is never delivered again;
* thresholds (R5/R6 usage past 80% or 95%) are named by the capital attestation they are measured
  against: one alert per threshold per attestation, however often usage dips and rises again;
* deadlines (an attestation or a credit line ending within 7 days) by the deadline itself.

"now" is the timestamp of the newest indexed block, not the wall clock, so the same chain gives
the same alerts whenever it is read.

What a member may learn is what its node already shows it (api/service/reads.py): a borrower
slipping at another lender is reported by borrower key and status, without that loan's id, amount
or lenders, unless the member funds that loan itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, select

from ledger.domain import LineStatus, LoanStatus, MemberStatus, Policy, Role, to_hex
from ledger.economics import CATEGORY_NAMES, Category
from ledger.rules import BPS
from ledger.store.models import TABLES

__all__ = [
    "DAY",
    "WARN_WITHIN",
    "Alert",
    "AlertInputs",
    "QueuedProposal",
    "alert_id",
    "classification_alerts",
    "compute",
    "council_alerts",
]

DAY = 86_400
WARN_WITHIN = 7 * DAY  # attestations and lines ending within this are announced
USAGE_THRESHOLDS = ((8_000, "warning"), (9_500, "critical"))  # bps of the limit
_SLIPS = {
    LoanStatus.OVERDUE: ("borrower.overdue", "warning"),
    LoanStatus.DEFAULTED: ("borrower.defaulted", "critical"),
    LoanStatus.WRITTEN_OFF: ("borrower.written_off", "critical"),
}

# The policy fields each role's records are judged by (DESIGN §4), for council proposals.
_RULES = {
    "consumer_cap": "R1",
    "business_cap": "R2",
    "max_institutions": "R3",
    "min_platform_share_bps": "R4",
    "max_partner_capital_bps": "R5",
    "max_joint_loan_bps": "R6",
    "max_consumer_bullet_days": "R7",
    "max_attestation_age": "R8",
    "min_bank_tranches": "R0",
}
_SUBJECT_TO = {
    Role.PLATFORM: {"R0", "R1", "R2", "R3", "R4", "R7"},
    Role.LENDER: {"R0", "R1", "R2", "R3", "R5", "R6", "R8"},
    Role.AUDITOR: set(_RULES.values()),  # judges every rule's replay
}


@dataclass(frozen=True, slots=True)
class Alert:
    id: str  # 0x + 64 hex digits
    type: str
    severity: str  # info | warning | critical
    block: int  # the block the alert is as of (its event's, or the head's for a threshold)
    subject: str  # borrower key, line id, member address or proposal id
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "severity": self.severity,
            "block": self.block,
            "subject": self.subject,
            "figures": self.figures,
        }


@dataclass(frozen=True, slots=True)
class QueuedProposal:
    """A council proposal the timelock has scheduled, with the registry call it will make."""

    id: bytes
    block: int
    ready_at: int
    function: str  # the registry function, e.g. setPolicy
    args: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AlertInputs:
    """Where the member stands: the newest indexed block and its timestamp, and the oldest block
    whose events must be looked at again (the caller's previous head, less a reorg margin)."""

    member: str
    role: Role
    head: int
    now: int
    since: int = 0


def alert_id(kind: str, *parts: bytes | str | int) -> str:
    h = hashlib.sha256(kind.encode())
    for p in parts:
        h.update(b"|")
        h.update(p if isinstance(p, bytes) else str(p).encode())
    return "0x" + h.hexdigest()


def compute(conn: Connection, inp: AlertInputs, policy: Policy) -> list[Alert]:
    """Every alert of `inp.member` the read model supports at `inp.head` (duplicates of alerts
    already known are expected: the caller keeps them by id). Council proposals are read from
    the chain by the caller (council_alerts): the read model does not index the council."""
    out: list[Alert] = []
    if inp.role in (Role.LENDER, Role.PLATFORM):
        out += _borrower_slips(conn, inp)
        out += classification_alerts(conn, inp)
        out += _lines_expiring(conn, inp)
        out += _line_freezes(conn, inp)
    if inp.role == Role.LENDER:
        out += _usage(conn, inp, policy)
        out += _attestation(conn, inp, policy)
    out += _members(conn, inp)
    return out


def classification_alerts(conn: Connection, inp: AlertInputs) -> list[Alert]:
    """A borrower the member is exposed to classified worse (五级分类) at any lender: a lender's
    category for its tranche made stricter than its previous one (than normal, for its first),
    from the read model's LoanServicing classifications. Named by the classifying transaction
    like the slips below; the loan, its amounts and the classifying lender are shown only to a
    member that funds that loan itself."""
    cl, loans, tranches, bl = (
        TABLES["classifications"],
        TABLES["loans"],
        TABLES["tranches"],
        TABLES["borrower_lenders"],
    )
    worse = conn.execute(
        select(
            cl.c.block_number,
            cl.c.tx_hash,
            cl.c.loan_id,
            cl.c.lender,
            cl.c.category,
            cl.c.previous,
            cl.c.dpd,
            loans.c.borrower_key,
            loans.c.principal,
            loans.c.outstanding,
        )
        .join(loans, loans.c.loan_id == cl.c.loan_id)
        .where(
            cl.c.block_number >= inp.since,
            cl.c.lender != inp.member,
            cl.c.category > func.coalesce(cl.c.previous, 0),
        )
        .order_by(cl.c.block_number, cl.c.log_index)
    ).all()
    if not worse:
        return []
    ids = {bytes(c.loan_id) for c in worse}
    own = {
        bytes(r.loan_id): r.amount
        for r in conn.execute(
            select(tranches.c.loan_id, tranches.c.amount).where(
                tranches.c.lender == inp.member, tranches.c.loan_id.in_(ids)
            )
        )
    }
    keys = {c.borrower_key for c in worse}
    exposed = {
        r.borrower_key
        for r in conn.execute(
            select(bl.c.borrower_key).where(
                bl.c.lender == inp.member, bl.c.open_records > 0, bl.c.borrower_key.in_(keys)
            )
        )
    }
    out = []
    for c in worse:
        loan_id = bytes(c.loan_id)
        funds = loan_id in own
        if not funds and c.borrower_key not in exposed:
            continue
        category = Category(c.category)
        figures: dict[str, Any] = {
            "borrower_key": to_hex(c.borrower_key),
            "category": CATEGORY_NAMES[category],
            "previous": CATEGORY_NAMES[Category(c.previous or 0)],
            "days_past_due": c.dpd,
            "own_loan": funds,
        }
        if funds:
            figures |= {
                "loan_id": to_hex(loan_id),
                "lender": c.lender,
                "principal": c.principal,
                "outstanding": c.outstanding,
                "own_share": own[loan_id],
            }
        out.append(
            Alert(
                alert_id("borrower.classified", bytes(c.tx_hash), loan_id, c.lender),
                "borrower.classified",
                "critical" if category >= Category.SUBSTANDARD else "warning",  # NPL or not
                c.block_number,
                to_hex(c.borrower_key),
                figures,
            )
        )
    return out


# ------------------------------------------------------------------ a borrower slipping


def _borrower_slips(conn: Connection, inp: AlertInputs) -> list[Alert]:
    sc, loans, tranches, bl = (
        TABLES["loan_status_changes"],
        TABLES["loans"],
        TABLES["tranches"],
        TABLES["borrower_lenders"],
    )
    rows = conn.execute(
        select(
            sc.c.block_number,
            sc.c.tx_hash,
            sc.c.loan_id,
            sc.c.to_status,
            loans.c.borrower_key,
            loans.c.platform,
            loans.c.product,
            loans.c.principal,
            loans.c.outstanding,
        )
        .join(loans, loans.c.loan_id == sc.c.loan_id)
        .where(sc.c.block_number >= inp.since, sc.c.to_status.in_([int(s) for s in _SLIPS]))
        .order_by(sc.c.block_number, sc.c.log_index)
    ).all()
    if not rows:
        return []
    keys = {r.borrower_key for r in rows}
    exposed = {
        r.borrower_key
        for r in conn.execute(
            select(bl.c.borrower_key).where(
                bl.c.lender == inp.member, bl.c.open_records > 0, bl.c.borrower_key.in_(keys)
            )
        )
    }
    own = {
        r.loan_id: r.amount
        for r in conn.execute(
            select(tranches.c.loan_id, tranches.c.amount).where(
                tranches.c.lender == inp.member,
                tranches.c.loan_id.in_({r.loan_id for r in rows}),
            )
        )
    }
    out = []
    for r in rows:
        if r.platform == inp.member:
            continue  # it marked the loan itself
        funds = r.loan_id in own
        if not funds and r.borrower_key not in exposed:
            continue
        kind, severity = _SLIPS[LoanStatus(r.to_status)]
        figures: dict[str, Any] = {
            "borrower_key": to_hex(r.borrower_key),
            "status": LoanStatus(r.to_status).name.lower(),
            "own_loan": funds,
        }
        if funds:
            figures |= {
                "loan_id": to_hex(r.loan_id),
                "principal": r.principal,
                "outstanding": r.outstanding,
                "own_share": own[r.loan_id],
            }
        out.append(
            Alert(
                alert_id(kind, bytes(r.tx_hash), bytes(r.loan_id)),
                kind,
                severity,
                r.block_number,
                to_hex(r.borrower_key),
                figures,
            )
        )
    return out


# ------------------------------------------------------------------ R5/R6 usage, R8


def _usage(conn: Connection, inp: AlertInputs, policy: Policy) -> list[Alert]:
    me = _member(conn, inp.member)
    if me is None:
        return []
    usage, partners = TABLES["lender_usage"], TABLES["lender_partner_usage"]
    measured: list[tuple[str, str, int, int, dict[str, Any]]] = []
    total = conn.execute(select(usage.c.total).where(usage.c.lender == inp.member)).scalar()
    measured.append(
        (
            "usage.r6",
            inp.member,
            total or 0,
            me["total_loan_balance"] * policy.max_joint_loan_bps // BPS,
            {},
        )
    )
    for r in conn.execute(
        select(partners.c.partner, partners.c.outstanding).where(partners.c.lender == inp.member)
    ):
        limit = me["tier1_capital"] * policy.max_partner_capital_bps // BPS
        measured.append(("usage.r5", r.partner, r.outstanding, limit, {"partner": r.partner}))
    out = []
    for kind, subject, used, limit, extra in measured:
        for threshold, severity in USAGE_THRESHOLDS:
            if used <= 0 or used * BPS < limit * threshold:
                continue
            out.append(
                Alert(
                    alert_id(kind, subject, threshold, me["attested_at"]),
                    kind,
                    severity,
                    inp.head,
                    subject,
                    {
                        "outstanding": used,
                        "limit": limit,
                        "threshold_bps": threshold,
                        "usage_bps": used * BPS // limit if limit else BPS,
                        **extra,
                    },
                )
            )
    return out


def _attestation(conn: Connection, inp: AlertInputs, policy: Policy) -> list[Alert]:
    me = _member(conn, inp.member)
    if me is None or me["attested_at"] == 0:
        return []
    until = min(me["attested_until"], me["attested_at"] + policy.max_attestation_age)
    if until - inp.now > WARN_WITHIN:
        return []
    left = until - inp.now
    return [
        Alert(
            alert_id("attestation.expiring", inp.member, until),
            "attestation.expiring",
            "critical" if left <= 0 else "warning",
            inp.head,
            inp.member,
            {"valid_until": until, "seconds_left": max(left, 0), "attested_at": me["attested_at"]},
        )
    ]


def _member(conn: Connection, address: str) -> Mapping[str, Any] | None:
    m = TABLES["members"]
    return conn.execute(select(m).where(m.c.address == address)).mappings().first()


# ------------------------------------------------------------------ lines, members


def _lines_expiring(conn: Connection, inp: AlertInputs) -> list[Alert]:
    lines, shares = TABLES["credit_lines"], TABLES["line_shares"]
    rows = conn.execute(
        select(
            lines.c.line_id,
            lines.c.borrower_key,
            lines.c.limit_amount,
            lines.c.drawn,
            lines.c.expires_at,
            shares.c.amount,
        )
        .join(shares, and_(shares.c.line_id == lines.c.line_id, shares.c.lender == inp.member))
        .where(
            lines.c.status == int(LineStatus.ACTIVE), lines.c.expires_at <= inp.now + WARN_WITHIN
        )
    ).all()
    return [
        Alert(
            alert_id("line.expiring", bytes(r.line_id), r.expires_at),
            "line.expiring",
            "info",
            inp.head,
            to_hex(r.line_id),
            {
                "line_id": to_hex(r.line_id),
                "borrower_key": to_hex(r.borrower_key),
                "limit": r.limit_amount,
                "drawn": r.drawn,
                "own_share": r.amount,
                "expires_at": r.expires_at,
                "seconds_left": max(r.expires_at - inp.now, 0),
            },
        )
        for r in rows
    ]


def _line_freezes(conn: Connection, inp: AlertInputs) -> list[Alert]:
    """A bank froze or unfroze its share of a line the member is a party to (its platform or
    another share holder): the next draws it would fund are refused."""
    raw, lines, shares = TABLES["raw_events"], TABLES["credit_lines"], TABLES["line_shares"]
    rows = conn.execute(
        select(raw.c.block_number, raw.c.tx_hash, raw.c.args)
        .where(
            raw.c.contract == "ledger",
            raw.c.block_number >= inp.since,
            raw.c.event == "LineShareFrozen",
        )
        .order_by(raw.c.block_number, raw.c.log_index)
    ).all()
    out = []
    for r in rows:
        a = r.args
        lid = bytes.fromhex(a["lineId"].removeprefix("0x"))
        if a["lender"] == inp.member:
            continue  # its own act
        line = conn.execute(select(lines).where(lines.c.line_id == lid)).mappings().first()
        if line is None:
            continue
        party = (
            line["platform"] == inp.member
            or conn.execute(
                select(shares.c.idx).where(shares.c.line_id == lid, shares.c.lender == inp.member)
            ).first()
        )
        if not party:
            continue
        kind = "line.frozen" if a["frozen"] else "line.unfrozen"
        out.append(
            Alert(
                alert_id(kind, bytes(r.tx_hash), lid),
                kind,
                "warning" if a["frozen"] else "info",
                r.block_number,
                to_hex(lid),
                {
                    "line_id": to_hex(lid),
                    "lender": a["lender"],
                    "frozen": a["frozen"],
                    "limit": line["limit_amount"],
                    "drawn": line["drawn"],
                },
            )  # fmt: skip
        )
    return out


def _members(conn: Connection, inp: AlertInputs) -> list[Alert]:
    raw = TABLES["raw_events"]
    rows = conn.execute(
        select(raw.c.block_number, raw.c.tx_hash, raw.c.event, raw.c.args)
        .where(
            raw.c.contract == "registry",
            raw.c.block_number >= inp.since,
            raw.c.event.in_(["MemberStatusChanged", "MemberFrozen"]),
        )
        .order_by(raw.c.block_number, raw.c.log_index)
    ).all()
    out = []
    for r in rows:
        a = r.args
        if r.event == "MemberFrozen":
            if not a["frozen"]:
                continue
            kind = "member.frozen"
        elif a["to"] == MemberStatus.SUSPENDED:
            kind = "member.suspended"
        else:
            continue
        account = a["account"]
        out.append(
            Alert(
                alert_id(kind, bytes(r.tx_hash), account),
                kind,
                "critical" if account == inp.member else "warning",
                r.block_number,
                account,
                {"member": account, "self": account == inp.member},
            )
        )
    return out


# ------------------------------------------------------------------ the council's queue


def council_alerts(
    proposals: Iterable[QueuedProposal], inp: AlertInputs, current: Policy
) -> list[Alert]:
    """Scheduled proposals that change a rule the member is subject to (a new policy), or its
    own standing (its status or freeze)."""
    out = []
    mine = _SUBJECT_TO.get(inp.role, set())
    for p in proposals:
        figures: dict[str, Any] = {
            "proposal_id": to_hex(p.id),
            "ready_at": p.ready_at,
            "function": p.function,
        }
        if p.function == "setPolicy":
            changes = _policy_changes(current, p.args["policy"])
            rules = sorted({_RULES[f] for f in changes} & mine)
            if not rules:
                continue
            figures |= {"rules": rules, "changes": changes}
        elif p.args.get("account") == inp.member:
            figures |= {"member": inp.member}
        else:
            continue
        out.append(
            Alert(
                alert_id("council.queued", p.id),
                "council.queued",
                "warning",
                p.block,
                to_hex(p.id),
                figures,
            )
        )
    return out


def _policy_changes(current: Policy, proposed: Policy) -> dict[str, Any]:
    return {
        n: {"from": getattr(current, n), "to": getattr(proposed, n)}
        for n in _RULES
        if getattr(proposed, n) != getattr(current, n)
    }
