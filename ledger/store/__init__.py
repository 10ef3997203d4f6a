"""The SQL read model (SQLModel tables) and its engines; see models.py and db.py."""

from ledger.store.db import database_url, make_engine, upgrade
from ledger.store.models import metadata

__all__ = ["database_url", "make_engine", "metadata", "upgrade"]
