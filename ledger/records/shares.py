"""Tranches and line shares (one type, ledger.domain.Tranche) as JSON and from rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ledger.domain import Tranche


def shares_json(ts: Iterable[Tranche]) -> list[dict[str, Any]]:
    return [{"lender": t.lender, "amount": t.amount} for t in ts]


def tranches_of(items: Iterable[Any]) -> tuple[Tranche, ...]:
    """Tranches, in the order given, from mappings or objects with `lender` and `amount` (JSON
    terms, request models, database rows)."""
    return tuple(
        Tranche(s["lender"], s["amount"]) if isinstance(s, Mapping) else Tranche(s.lender, s.amount)
        for s in items
    )
