"""The Core table of a mapped class, typed as a :class:`~sqlalchemy.Table`.

Bulk writes of the indexer go through Core statements on the table: the ORM's bulk insert
of a mapped class builds an insert command per row, which under load cost a third of a
follower round."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .models import Base


def table_of(model: type[Base]) -> Table:
    """The table ``model`` is mapped to."""
    return cast(Table, model.__table__)


def insert_for(session: Session) -> Callable[..., Any]:
    """The INSERT of the session's database that has ON CONFLICT (PostgreSQL's or SQLite's)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


# Statements of insert_new, built once per (table, keys, dialect, RETURNING or not).
_INSERTS: dict[tuple[str, tuple[str, ...], str], Any] = {}


@dataclass(frozen=True)
class _DriverInsert:
    """An ``insert_new`` statement compiled once for one set of columns, executed on the
    driver: its SQL, and per parameter (in the driver's order) the column and the column
    type's bind processor (None: the value as is)."""

    sql: str
    params: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    positional: bool

    def rows(self, rows: Sequence[dict[str, Any]]) -> list[Any]:
        """The driver's parameters of ``rows``: tuples (qmark, SQLite) or dicts (named)."""
        names = [c for c, _ in self.params]
        get = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
        processed = [(i, p) for i, (_, p) in enumerate(self.params) if p is not None]
        out: list[Any] = []
        for row in rows:
            values = get(row)
            if processed:
                values = list(values)
                for i, p in processed:
                    values[i] = p(values[i])
            out.append(tuple(values) if self.positional else dict(zip(names, values,
                                                                      strict=True)))
        return out


# insert_new's statements without RETURNING, compiled for the driver, by (table, keys, dialect,
# the rows' columns).
_DRIVER: dict[tuple[str, tuple[str, ...], str, tuple[str, ...]], _DriverInsert] = {}


def _driver_insert(session: Session, table: Table, stmt: Any, keys: tuple[str, ...],
                   columns: tuple[str, ...]) -> _DriverInsert:
    dialect = session.get_bind().dialect
    key = (table.name, keys, dialect.name, columns)
    known = _DRIVER.get(key)
    if known is None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        names = list(compiled.positiontup) if compiled.positional else list(columns)
        if set(names) != set(columns):
            raise ValueError(f"insert_new: parameters {names} are not the columns {columns}")
        known = _DRIVER[key] = _DriverInsert(
            str(compiled), tuple((n, bind_processor(table.c[n], dialect)) for n in names),
            bool(compiled.positional))
    return known


def bind_processor(column: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """What SQLAlchemy does to a value of ``column`` before the driver gets it, on ``dialect``
    (None: nothing): the processor of the column type's implementation on that dialect, as
    SQLAlchemy's own execution takes it (the generic type's would miss, e.g., PostgreSQL's JSON
    serialisation)."""
    processor: Callable[[Any], Any] | None = \
        dialect.type_descriptor(column.type).bind_processor(dialect)
    return processor


def insert_new(session: Session, model: type[Base], rows: Sequence[dict[str, Any]],
               keys: Sequence[str], *, count: bool = True) -> int:
    """Insert the rows not stored before (ON CONFLICT DO NOTHING on ``keys``), in the order
    given; give how many went in (0 when not ``count``). One statement on the table (Core),
    built once per process, executed over the rows (every row has the same columns): a
    multi-row VALUES built from the rows is compiled anew every time, and the ORM's bulk insert
    builds a command per row.

    On SQLite, and uncounted on PostgreSQL, the statement has no RETURNING: compiled once per
    set of columns and run by one ``executemany`` of the driver, each row's values put through
    the columns' own bind processors here (SQLAlchemy's execution of the compiled statement
    built and processed every row's parameters through its generic layers: ~a fifth of an
    indexer round under 200-line redemption batches); SQLite's row count adds the rows each
    execution changed (a row skipped on conflict changes none). Counted on PostgreSQL (whose
    driver's row count after executemany is not relied on), RETURNING gives the rows
    inserted, through SQLAlchemy's execution."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    table = table_of(model)
    returning = dialect == "postgresql" and count
    key = (table.name, tuple(keys), dialect + ("+returning" if returning else ""))
    stmt = _INSERTS.get(key)
    if stmt is None:
        stmt = insert_for(session)(table).on_conflict_do_nothing(index_elements=list(keys))
        if returning:
            stmt = stmt.returning(table.c.id)
        _INSERTS[key] = stmt
    session.flush()
    if returning:
        return len(session.connection().execute(stmt, list(rows)).all())
    driver = _driver_insert(session, table, stmt, tuple(keys), tuple(rows[0]))
    result = session.connection().exec_driver_sql(driver.sql, driver.rows(rows))
    return int(result.rowcount) if count else 0
