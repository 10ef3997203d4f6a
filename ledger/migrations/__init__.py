"""Alembic migrations of the read model; run by ledger.store.db.upgrade (no alembic.ini)."""
