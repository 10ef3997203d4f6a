"""CreditLine to and from its signed terms (JSON) and a read-model row."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.domain import ZERO32, CreditLine, to_hex
from ledger.records.names import product_name, product_of
from ledger.records.shares import shares_json, tranches_of


def line_terms(line: CreditLine) -> dict[str, Any]:
    """The line exactly as every party signs it, as JSON (ids and digests in 0x-hex)."""
    return {
        "line_id": to_hex(line.line_id),
        "borrower_key": to_hex(line.borrower_key),
        "platform": line.platform,
        "product": product_name(line.product),
        "limit": line.limit,
        "expires_at": line.expires_at,
        "document_digest": to_hex(line.document_digest),
        "deadline": line.deadline,
        "shares": shares_json(line.shares),
    }


# Fields that are the same in every form (ids and digests: bytes, or 0x-hex CreditLine reads).
_SAME = ("line_id", "borrower_key", "platform", "expires_at", "deadline")


def line_from_terms(t: Mapping[str, Any]) -> CreditLine:
    """The CreditLine exactly as given (validated terms), shares in the order given."""
    return CreditLine(
        **{k: t[k] for k in _SAME},
        product=product_of(t["product"]),
        limit=t["limit"],
        shares=tranches_of(t["shares"]),
        document_digest=t["document_digest"],
    )


def line_from_row(r: Mapping[str, Any], shares: Sequence[Mapping[str, Any]]) -> CreditLine:
    """From a `credit_lines` row and its `line_shares` rows (in share order)."""
    return CreditLine(
        **{k: r[k] for k in _SAME},
        product=r["product"],
        limit=r["limit_amount"],
        shares=tranches_of(shares),
        document_digest=r["document_digest"] or ZERO32,
    )
