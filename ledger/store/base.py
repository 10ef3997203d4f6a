"""What every read-model table is built from: the metadata with its naming convention, the base
class, the column helper and the column groups several tables share (ledger.store.models,
ledger.store.servicing)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, MetaData, String
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

# Explicit constraint and index names, so migrations and create_all name everything alike.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)
_registry = registry(metadata=metadata)

ADDRESS = String(42)


def col(type_: Any, *, pk: bool = False, null: bool = False, fk: str | None = None) -> Any:
    # a type rather than a Column: a mixin's fields become a column of each table that has it
    kw: dict[str, Any] = {"foreign_key": fk} if fk else {}
    return Field(
        sa_type=type_,
        primary_key=pk,
        nullable=null,
        sa_column_kwargs={"autoincrement": False},
        **kw,
    )


class StoreModel(SQLModel, registry=_registry):
    """Base of every read-model table; its own metadata, apart from any other SQLModel tables."""


# Column groups that several tables share. A table's columns are its bases', the last base's
# first, then its own: the order the migrations created them in.


class Logged(SQLModel):
    """Rows keyed by the log that created them."""

    block_number: int = col(BigInteger, pk=True)
    log_index: int = col(Integer, pk=True)
