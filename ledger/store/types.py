"""Column types for chain values that SQL's signed 64-bit integers cannot hold."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, LargeBinary, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# A bytes32 (ids, borrower keys, hashes): BYTEA in PostgreSQL, BLOB in SQLite.
Bytes32 = LargeBinary(32)
# Decoded event arguments; JSONB in PostgreSQL so they can be queried and indexed there.
EventArgs = JSON().with_variant(JSONB(), "postgresql")


class Uint64(TypeDecorator[int]):
    """A chain `uint64` (capital figures, signature deadlines, line expiries), stored losslessly.

    Any value up to 2^64 - 1 is valid on chain, and a value the database refused would stop the
    indexer for good. PostgreSQL gets NUMERIC(20, 0); SQLite, whose INTEGER is signed 64-bit
    and whose NUMERIC turns large values into floats, gets the decimal digits as text.
    """

    impl = Numeric(20, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(20))
        return dialect.type_descriptor(Numeric(20, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = int(value)
        if not 0 <= value < 1 << 64:
            raise ValueError(f"{value} is not a uint64")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)
