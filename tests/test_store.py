"""The read model's schema and engines: migrations against create_all, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ledger.store import bulk, db
from ledger.store.models import SERVICING_TABLES, TABLES, metadata
from tests.dbs import Databases, dbs_fixture  # noqa: F401 - the `dbs` fixture

BASE_TABLES = {
    "indexer_cursor", "blocks", "raw_events", "consortium", "members", "policy_versions",
    "capital_attestations", "credit_lines", "line_shares", "loans", "tranches", "repayments",
    "repayment_allocations", "loan_status_changes", "loan_rejections",
}  # fmt: skip
AGGREGATE_TABLES = {"borrower_exposure", "borrower_lenders", "lender_usage", "lender_partner_usage"}
SERVICING = set(SERVICING_TABLES)


def schema(engine: sa.Engine) -> dict:
    """Tables, columns (in order, with type and nullability), keys, indexes and constraints."""
    insp = sa.inspect(engine)
    out = {}
    for t in sorted(insp.get_table_names()):
        if t == "alembic_version":
            continue
        pk = insp.get_pk_constraint(t)
        out[t] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in insp.get_columns(t)
            ],
            "pk": (pk.get("name"), tuple(pk["constrained_columns"])),
            "fks": sorted(
                (
                    f["name"],
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                )
                for f in insp.get_foreign_keys(t)
            ),  # fmt: skip
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(t)
                if not i.get("duplicates_constraint")  # PostgreSQL lists a UNIQUE's index too
            ),
            "uniques": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)
            ),
        }
    return out


def _create_all(dbs: Databases) -> sa.Engine:
    engine = dbs.engine()
    metadata.create_all(engine)
    return engine


def test_fresh_migration_equals_create_all(dbs: Databases) -> None:
    migrated = dbs.engine()
    db.upgrade(migrated)
    created = _create_all(dbs)
    assert set(schema(migrated)) == BASE_TABLES | AGGREGATE_TABLES | SERVICING
    assert schema(migrated) == schema(created)
    assert db.current_revision(migrated) == "0006"
    # alembic's own comparison of the migrated database with the models finds nothing either
    with migrated.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, metadata) == []


def test_upgrade_from_first_migration_equals_fresh_create(dbs: Databases) -> None:
    engine = dbs.engine()
    db.upgrade(engine, "0001")
    first = schema(engine)
    assert set(first) == BASE_TABLES
    assert not any(i for t in first.values() for i in t["indexes"])  # indexes come with 0002
    with engine.begin() as conn:  # data written under 0001 survives the upgrade
        conn.execute(
            TABLES["policy_versions"].insert(),
            {
                "version": 1, "effective_block": 7, "consumer_cap": 20_000_000,
                "business_cap": 100_000_000, "max_institutions": 3, "min_platform_share_bps": 3000,
                "max_partner_capital_bps": 2500, "max_joint_loan_bps": 5000,
                "max_consumer_bullet_days": 365, "max_attestation_age": 7_776_000,
                "block_number": 7,
            },
        )  # fmt: skip
    db.upgrade(engine)
    assert schema(engine) == schema(_create_all(dbs))
    with engine.connect() as conn:
        assert conn.execute(sa.select(TABLES["policy_versions"].c.version)).scalars().all() == [1]
    # and back down to the first migration and up again
    db.downgrade(engine, "0001")
    assert schema(engine) == first
    db.upgrade(engine)
    assert schema(engine) == schema(_create_all(dbs))


def test_two_nodes_upgrading_at_once_take_turns(dbs: Databases) -> None:
    url = dbs.new()
    engines = [dbs.engine(url), dbs.engine(url)]
    errors: list[BaseException] = []

    def run(e: sa.Engine) -> None:
        try:
            db.upgrade(e)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db.current_revision(engines[0]) == "0006"
    db.upgrade(engines[0])  # idempotent
    assert set(schema(engines[0])) == BASE_TABLES | AGGREGATE_TABLES | SERVICING


def test_chain_uint64_and_bytes_round_trip(dbs: Databases) -> None:
    """A uint64 capital figure or deadline above SQL's signed 64 bits is kept exactly."""
    engine = dbs.engine()
    db.upgrade(engine)
    top = 2**64 - 1
    row = {
        "address": "0x" + "ab" * 20, "member_index": 9, "role": 3, "status": 1, "frozen": False,
        "name": "Bank 銀行", "licence_hash": b"\x00\xff" * 16, "tier1_capital": top,
        "total_loan_balance": 2**63, "attested_at": 1, "attested_until": 2, "block_number": 3,
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(TABLES["members"].insert(), row)
    with engine.connect() as conn:
        got = dict(conn.execute(sa.select(TABLES["members"])).mappings().one())
    assert got == row
    with pytest.raises(sa.exc.StatementError), engine.begin() as conn:
        conn.execute(TABLES["members"].update().values(tier1_capital=2**64))


def test_database_url_defaults_and_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert db.database_url() == "sqlite:///.ledger/node.db"
    assert db.database_url(sqlite_path=Path("/x/n.db")) == "sqlite:////x/n.db"
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5432/d")
    assert db.database_url() == "postgresql+psycopg://u@h:5432/d"
    assert db.database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.database_url("sqlite:///a.db") == "sqlite:///a.db"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'sub' / 'n.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.upgrade(engine)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            TABLES["tranches"].insert(),
            {
                "loan_id": b"\x01" * 32, "idx": 0, "lender": "0x" + "00" * 20, "amount": 1,
                "signature": b"", "outstanding": 1, "principal_repaid": 0, "interest_paid": 0,
                "block_number": 1,
            },
        )  # fmt: skip
    engine.dispose()


def test_bulk_writes_keep_the_columns_checks(dbs: Databases) -> None:
    """The indexer's one-statement-per-table writes (`ledger.store.bulk`): the same rows as
    SQLAlchemy's own statements would leave, and the same refusals."""
    engine = dbs.engine()
    db.upgrade(engine)
    members, top = TABLES["members"], 2**64 - 1
    rows = [
        {
            "address": f"0x{i:040x}", "member_index": i, "role": 2, "status": 1, "frozen": i == 1,
            "name": f"Bank {i} 銀行", "licence_hash": bytes([i]) * 32, "tier1_capital": top - i,
            "total_loan_balance": 2**63 + i, "attested_at": i, "attested_until": 2 * i,
            "block_number": 3,
        }
        for i in range(1, 4)
    ]  # fmt: skip
    later = {**rows[2], "name": "renamed", "tier1_capital": 5}
    with engine.begin() as conn:
        bulk.insert_rows(conn, members, rows[:2])
        bulk.upsert(conn, members, [rows[1], rows[2], later], ["address"])  # the last one wins
        bulk.update_rows(
            conn, members, ["address"], [{"address": rows[0]["address"], "frozen": True}]
        )
        bulk.delete_rows(conn, members, ["address"], [(rows[1]["address"],)])
        got = {r["address"]: dict(r) for r in bulk.select_in(conn, members, "address", [
            r["address"] for r in rows])}  # fmt: skip
    assert got == {rows[0]["address"]: {**rows[0], "frozen": True}, later["address"]: later}
    with engine.connect() as conn:
        assert {r["address"]: dict(r) for r in conn.execute(sa.select(members)).mappings()} == got

    def refusal(write: Callable[[sa.Connection], object]) -> type[BaseException] | None:
        try:
            with engine.begin() as conn:
                write(conn)
        except Exception as exc:  # noqa: BLE001 - compared below
            return type(exc)
        return None

    too_long = {**rows[0], "address": "0x" + "ab" * 21}  # VARCHAR(42)
    for bad in ({**rows[0], "tier1_capital": 2**64}, {**rows[0], "member_index": 2**63}, too_long):
        mine = refusal(lambda c, bad=bad: bulk.insert_rows(c, members, [bad]))
        assert mine == refusal(lambda c, bad=bad: c.execute(members.insert(), [bad]))
        # SQLite does not enforce VARCHAR lengths
        assert mine is not None or (bad is too_long and engine.dialect.name == "sqlite")
