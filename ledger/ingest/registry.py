"""Registry events into members, the consortium row, capital attestations and policy
versions. They are few, so a rollback rebuilds all of this by replaying them
(`ledger.ingest.rollback.rebuild_registry`) instead of undoing each one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ledger.chain.events import ChainEvent
from ledger.domain import MemberStatus
from ledger.ingest.common import book_member, unhex

if TYPE_CHECKING:
    from ledger.ingest.projection import Projection


def member_admitted(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    row = {
        "address": a["account"],
        "member_index": a["index"],
        "role": a["role"],
        "status": int(MemberStatus.ACTIVE),
        "frozen": False,
        "name": a["name"],
        "licence_hash": unhex(a["licenceHash"]),
        "tier1_capital": 0,
        "total_loan_balance": 0,
        "attested_at": 0,
        "attested_until": 0,
        "block_number": ev.block_number,
    }
    p.members[a["account"]] = row
    p.touched_members.add(a["account"])
    p.book.members[a["account"]] = book_member(row)


def member_status(p: Projection, ev: ChainEvent) -> None:
    row = p.member_row(ev.args["account"])
    row["status"] = ev.args["to"]
    p.book.members[row["address"]].status = MemberStatus(ev.args["to"])


def member_frozen(p: Projection, ev: ChainEvent) -> None:
    row = p.member_row(ev.args["account"])
    row["frozen"] = ev.args["frozen"]
    p.book.members[row["address"]].frozen = ev.args["frozen"]


def capital(p: Projection, ev: ChainEvent) -> None:
    a = ev.args
    row = p.member_row(a["lender"])
    row["tier1_capital"] = a["tier1Capital"]
    row["total_loan_balance"] = a["totalLoanBalance"]
    row["attested_at"] = ev.timestamp
    row["attested_until"] = a["validUntil"]
    p.book.members[a["lender"]] = book_member(row)
    p.insert(
        "capital_attestations",
        {
            "block_number": ev.block_number,
            "log_index": ev.log_index,
            "lender": a["lender"],
            "tier1_capital": a["tier1Capital"],
            "total_loan_balance": a["totalLoanBalance"],
            "valid_until": a["validUntil"],
            "attested_at": ev.timestamp,
        },
    )


def policy(p: Projection, ev: ChainEvent) -> None:
    policy = ev.args["policy"]
    p.insert(
        "policy_versions",
        {
            "version": ev.args["version"],
            "effective_block": ev.args["effectiveBlock"],
            "consumer_cap": policy["consumerCap"],
            "business_cap": policy["businessCap"],
            "max_institutions": policy["maxInstitutions"],
            "min_platform_share_bps": policy["minPlatformShareBps"],
            "max_partner_capital_bps": policy["maxPartnerCapitalBps"],
            "max_joint_loan_bps": policy["maxJointLoanBps"],
            "max_consumer_bullet_days": policy["maxConsumerBulletDays"],
            "max_attestation_age": policy["maxAttestationAge"],
            "min_bank_tranches": policy["minBankTranches"],
            "max_all_in_apr_bps": policy["maxAllInAprBps"],
            "max_guarantee_multiple": policy["maxGuaranteeMultiple"],
            "special_mention_max_dpd": policy["specialMentionMaxDpd"],
            "substandard_max_dpd": policy["substandardMaxDpd"],
            "doubtful_max_dpd": policy["doubtfulMaxDpd"],
            "block_number": ev.block_number,
        },
    )
    p.consortium_row()["policy_version"] = ev.args["version"]


def ownership(p: Projection, ev: ChainEvent) -> None:
    row = p.consortium_row()
    if ev.name == "OwnershipTransferStarted":
        row["pending_governor"] = ev.args["newOwner"]
    else:  # OwnershipTransferred (also at deployment) and GovernorChanged
        row["governor"] = ev.args.get("newOwner") or ev.args.get("newGovernor")
        row["pending_governor"] = None


def pause(p: Projection, ev: ChainEvent) -> None:
    p.consortium_row()["paused"] = ev.name == "Paused"


HANDLERS: dict[str, Callable[[Projection, ChainEvent], None]] = {
    "MemberAdmitted": member_admitted,
    "MemberStatusChanged": member_status,
    "MemberFrozen": member_frozen,
    "CapitalAttested": capital,
    "PolicyUpdated": policy,
    "OwnershipTransferred": ownership,
    "OwnershipTransferStarted": ownership,
    "GovernorChanged": ownership,
    "Paused": pause,
    "Unpaused": pause,
}
