"""Writing many rows at once: what the indexer does with every block range.

The statements are built here and run with `exec_driver_sql`, so errors, disconnects and
transactions are handled by SQLAlchemy as usual, but without its per-row parameter processing
(which had become the largest cost on SQLite). Values still go through each column's own bind
processing where it has any (a uint64 out of range is still refused, JSON is serialised as
SQLAlchemy would); bytes go to the driver as they are.

* SQLite runs in the process: one executemany per call.
* PostgreSQL would take a statement per row with executemany (psycopg pipelines them, but the
  server still plans and executes each), which made the writes most of the indexer's time.
  There each call is one statement over arrays, a column each, sent in binary:
  `INSERT ... SELECT * FROM unnest(...)`, `UPDATE ... FROM unnest(...)`,
  `DELETE ... USING unnest(...)`, and reads by key are `WHERE key = ANY(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, LargeBinary, Table, select
from sqlalchemy.exc import StatementError

Rows = Sequence[Mapping[str, Any]]

_CHUNK = 500  # keys per SQLite `IN (...)`


@dataclass(frozen=True, slots=True)
class _Cols:
    names: list[str]
    quoted: list[str]
    procs: list[Callable[[Any], Any] | None]
    types: list[str]  # SQL types without length or precision, for the PostgreSQL array casts


def _cols(conn: Connection, table: Table, names: Sequence[str]) -> _Cols:
    dialect = conn.dialect
    q = dialect.identifier_preparer
    procs, types = [], []
    for name in names:
        impl = table.c[name].type.dialect_impl(dialect)
        # the drivers take bytes as they are; the DBAPI Binary wrapper would be an object a value
        procs.append(None if isinstance(impl, LargeBinary) else impl.bind_processor(dialect))
        # An explicit cast to VARCHAR(n) truncates where storing into the column refuses: the
        # arrays are of the unconstrained type, so the column's own limits still apply.
        types.append(impl.compile(dialect=dialect).split("(")[0])
    return _Cols(list(names), [q.quote(n) for n in names], procs, types)


def _column(rows: Rows, name: str, proc: Callable[[Any], Any] | None) -> list[Any]:
    values = [r[name] for r in rows]
    if proc is None:
        return values
    try:
        return [proc(v) for v in values]
    except Exception as exc:  # noqa: BLE001 - as SQLAlchemy reports a value its type refuses
        raise StatementError(f"({type(exc).__name__}) {exc}", None, None, exc) from exc


def _pg_source(rows: Rows, c: _Cols) -> tuple[str, dict[str, list[Any]]]:
    """`unnest(%(c0)b::TYPE[], ...) AS v (cols)` and its parameters."""
    columns = zip(c.names, c.procs, strict=True)
    params = {f"c{i}": _column(rows, n, p) for i, (n, p) in enumerate(columns)}
    # binary (%b): psycopg writes a text array with a regular expression per element
    arrays = ", ".join(f"%(c{i})b::{t}[]" for i, t in enumerate(c.types))
    return f"unnest({arrays}) AS v ({', '.join(c.quoted)})", params


def _tuples(rows: Rows, c: _Cols, order: Sequence[int] | None = None) -> list[tuple[Any, ...]]:
    columns = [_column(rows, n, p) for n, p in zip(c.names, c.procs, strict=True)]
    if order is not None:
        columns = [columns[i] for i in order]
    return list(zip(*columns, strict=True))


def _table(conn: Connection, table: Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)


def _last_per_key(rows: Rows, keys: Sequence[str]) -> Rows:
    # One PostgreSQL statement cannot change a row twice (ON CONFLICT DO UPDATE, UPDATE ...
    # FROM); rows one by one would leave the last, so the last is kept.
    by_key = {tuple(r[k] for k in keys): r for r in rows}
    return rows if len(by_key) == len(rows) else list(by_key.values())


def _insert(conn: Connection, table: Table, rows: Rows, tail: Callable[[_Cols], str]) -> None:
    c = _cols(conn, table, list(rows[0]))
    head = f"INSERT INTO {_table(conn, table)} ({', '.join(c.quoted)}) "
    if conn.dialect.name == "postgresql":
        source, params = _pg_source(rows, c)
        conn.exec_driver_sql(f"{head}SELECT * FROM {source}{tail(c)}", params)
    else:
        marks = ", ".join("?" for _ in c.names)
        conn.exec_driver_sql(f"{head}VALUES ({marks}){tail(c)}", _tuples(rows, c))


def insert_rows(conn: Connection, table: Table, rows: Rows) -> None:
    """INSERT every row (all with the same columns)."""
    if rows:
        _insert(conn, table, rows, lambda _c: "")


def upsert(conn: Connection, table: Table, rows: Rows, keys: Sequence[str]) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE the other columns, for many rows at once."""
    if not rows:
        return

    def tail(c: _Cols) -> str:
        conflict = ", ".join(q for n, q in zip(c.names, c.quoted, strict=True) if n in keys)
        sets = ", ".join(
            f"{q} = excluded.{q}" for n, q in zip(c.names, c.quoted, strict=True) if n not in keys
        )
        return f" ON CONFLICT ({conflict}) " + (f"DO UPDATE SET {sets}" if sets else "DO NOTHING")

    _insert(conn, table, _last_per_key(rows, keys), tail)


def update_rows(conn: Connection, table: Table, keys: Sequence[str], rows: Rows) -> None:
    """UPDATE the rows found by `keys` to the other columns' values (the same columns in every
    row)."""
    if not rows:
        return
    rows = _last_per_key(rows, keys)
    c = _cols(conn, table, list(rows[0]))
    name = _table(conn, table)
    is_key = [n in keys for n in c.names]
    if conn.dialect.name == "postgresql":
        source, params = _pg_source(rows, c)
        sets = ", ".join(f"{q} = v.{q}" for q, k in zip(c.quoted, is_key, strict=True) if not k)
        match = " AND ".join(f"t.{q} = v.{q}" for q, k in zip(c.quoted, is_key, strict=True) if k)
        conn.exec_driver_sql(f"UPDATE {name} AS t SET {sets} FROM {source} WHERE {match}", params)
        return
    sets = ", ".join(f"{q} = ?" for q, k in zip(c.quoted, is_key, strict=True) if not k)
    match = " AND ".join(f"{q} = ?" for q, k in zip(c.quoted, is_key, strict=True) if k)
    order = [i for i, k in enumerate(is_key) if not k] + [i for i, k in enumerate(is_key) if k]
    conn.exec_driver_sql(f"UPDATE {name} SET {sets} WHERE {match}", _tuples(rows, c, order))


def delete_rows(conn: Connection, table: Table, keys: Sequence[str], rows: Sequence[tuple]) -> None:
    """DELETE the rows whose `keys` columns hold one of the tuples in `rows`."""
    if not rows:
        return
    as_rows = [dict(zip(keys, r, strict=True)) for r in rows]
    c = _cols(conn, table, keys)
    name = _table(conn, table)
    if conn.dialect.name == "postgresql":
        source, params = _pg_source(as_rows, c)
        match = " AND ".join(f"t.{q} = v.{q}" for q in c.quoted)
        conn.exec_driver_sql(f"DELETE FROM {name} AS t USING {source} WHERE {match}", params)
        return
    match = " AND ".join(f"{q} = ?" for q in c.quoted)
    conn.exec_driver_sql(f"DELETE FROM {name} WHERE {match}", _tuples(as_rows, c))


def select_in(
    conn: Connection, table: Table, column: str, values: Collection[Any]
) -> Iterator[Mapping[str, Any]]:
    """The rows whose `column` is one of `values`."""
    if not values:
        return
    col = table.c[column]
    if conn.dialect.name != "postgresql":
        items = list(values)
        for i in range(0, len(items), _CHUNK):
            yield from conn.execute(select(table).where(col.in_(items[i : i + _CHUNK]))).mappings()
        return
    # One statement with the keys as one binary array: with IN (...), psycopg parses a statement
    # of thousands of placeholders in Python, and the keys would be sent in chunks.
    dialect = conn.dialect
    names = [c.name for c in table.c]
    c = _cols(conn, table, names)
    key = _cols(conn, table, [column])
    params = {"k": _column([{column: v} for v in values], column, key.procs[0])}
    sql = (
        f"SELECT {', '.join(c.quoted)} FROM {_table(conn, table)} "
        f"WHERE {key.quoted[0]} = ANY(%(k)b::{key.types[0]}[])"
    )
    result = conn.exec_driver_sql(sql, params)
    # the columns' own result processing (a uint64 comes back from NUMERIC as an int)
    codes = [d[1] for d in result.cursor.description]
    procs = [
        table.c[n].type.dialect_impl(dialect).result_processor(dialect, code)
        for n, code in zip(names, codes, strict=True)
    ]
    for row in result:
        yield {
            n: (v if p is None or v is None else p(v))
            for n, p, v in zip(names, procs, row, strict=True)
        }
