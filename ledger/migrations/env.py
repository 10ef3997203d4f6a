"""Alembic environment: runs on the connection ledger.store.db.upgrade hands over."""

from __future__ import annotations

from alembic import context

from ledger.store.models import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ledger.store.db.upgrade(engine)")


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    # The node's other tables (the API's, say) share the database; autogenerate must not see
    # them as tables to drop.
    return not (type_ == "table" and reflected and compare_to is None)


context.configure(
    connection=connection,
    target_metadata=metadata,
    include_object=_ours,
    # SQLite cannot ALTER most things; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
