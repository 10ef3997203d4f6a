"""What the projection modules share."""

from __future__ import annotations

from typing import Any

from ledger.domain import MemberStatus, Role
from ledger.rules import MemberState


class ProjectionError(Exception):
    """The events disagree with the state built from earlier events, or with the Python model."""


def unhex(value: str) -> bytes:
    """Bytes from the 0x-hex form events are stored in."""
    return bytes.fromhex(value[2:])


def book_member(row: dict[str, Any]) -> MemberState:
    """The rules' view of a members row."""
    return MemberState(
        role=Role(row["role"]),
        status=MemberStatus(row["status"]),
        frozen=row["frozen"],
        index=row["member_index"],
        tier1_capital=row["tier1_capital"],
        total_loan_balance=row["total_loan_balance"],
        attested_until=row["attested_until"],
        attested_at=row["attested_at"],
    )
