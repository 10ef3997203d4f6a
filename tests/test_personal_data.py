"""No raw national ID in anything the suite writes (DESIGN: only keyed pseudonyms leave the
caller). The suite's own test IDs are the canaries: every log record of the test process is
watched while the suite runs, every PostgreSQL test schema is scanned before it is dropped, and
the last test of the session scans every file the suite left under its temporary directory
(node logs, SQLite databases, configs, document stores, chain state, and the web console's pages
as the browser rendered them: tests/test_console_browser.py keeps each one there) and every node
schema left in PostgreSQL. tests/conftest.py moves that test to the end of the run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.dbs import PG_URL, Databases
from tests.personal_data import LEAKS, PLANTED, Leaks, LogWatch, find_ids

VALID = "11010519491231002X"  # GB 11643-1999's worked example
MISTYPED = "110105194912310021"  # wrong check digit: still a canary


def test_scanner_finds_ids_and_ignores_hex_and_longer_numbers() -> None:
    assert find_ids(f"borrower {VALID} asked") == {VALID}
    assert find_ids(f"id={VALID.lower()};") == {VALID.lower()}
    assert find_ids(MISTYPED) == {MISTYPED}
    assert find_ids("0xab" + VALID[:-1] + "9cd") == set()  # inside a hex word
    assert find_ids("1" + VALID) == set()  # part of a longer number
    assert find_ids("440305199001011234") == set()  # ID-shaped, invalid, not a canary


def test_scanner_sees_a_planted_id_in_a_file_a_log_record_and_a_database(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp_path = tmp_path_factory.mktemp(PLANTED)
    leaks = Leaks()
    (tmp_path / "clean.log").write_text("INFO key 0x" + "ab" * 32 + "\n")
    (tmp_path / "node.log").write_text(f"INFO lookup of {VALID}\n")
    db = tmp_path / "x.db"
    with sa.create_engine(f"sqlite:///{db}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (v TEXT)"))
        conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": VALID})
    leaks.scan_tree(tmp_path)
    assert {p for p, _ in leaks.seen} == {str(tmp_path / "node.log"), f"{db} t"}
    assert all(i == "110105…" for _, i in leaks.seen)  # the report doesn't repeat the ID

    watch = LogWatch(Leaks())
    logger = logging.getLogger("canary-test")
    logger.addHandler(watch)
    logger.propagate = False  # planted: keep it from the suite-wide watch
    try:
        logger.warning("refused %s", MISTYPED)
    finally:
        logger.removeHandler(watch)
    assert watch.leaks.seen == {("log record canary-test", "110105…")}


@pytest.mark.skipif(PG_URL is None, reason="PostgreSQL: set TEST_DATABASE_URL")
def test_scanner_sees_a_planted_id_in_a_postgresql_schema(tmp_path: Path) -> None:
    dbs = Databases("postgresql", tmp_path)
    engine = dbs.engine()
    schema = dbs._schemas[-1]
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (n INTEGER, v JSON)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1, :v)"), {"v": f'{{"id": "{VALID}"}}'})
    leaks = Leaks()
    leaks.scan_schema(engine, schema)
    assert leaks.seen == {(f"postgresql {schema}.t", "110105…")}
    dbs._schemas.remove(schema)  # not a leak of the suite: drop it without the scan
    engine.dispose()
    with sa.create_engine(PG_URL).begin() as conn:  # type: ignore[arg-type]
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def test_nothing_written_in_the_suite_holds_a_raw_national_id(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    LEAKS.scan_tree(tmp_path_factory.getbasetemp(), skip_planted=True)
    if PG_URL is not None:
        LEAKS.scan_schemas(PG_URL, "test\\_api\\_%")
    assert sorted(LEAKS.seen) == []
