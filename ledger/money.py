"""Amounts for people: integer fen shown as CNY, exactly (no float on the way)."""

from __future__ import annotations


def cny(fen: int) -> str:
    """12345678 -> '¥123,456.78'; negative amounts keep their sign."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{yuan:,}.{cents:02d}"
