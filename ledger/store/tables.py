"""The Core table of a mapped class, typed as a :class:`~sqlalchemy.Table`.

Bulk writes of the indexer go through Core statements on the table: the ORM's bulk insert
of a mapped class builds an insert command per row, which under load cost a third of a
follower round."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def insert_new(session: Session, model: type[Base], rows: Sequence[dict[str, Any]],
               keys: Sequence[str], *, count: bool = True) -> int:
    """Insert the rows not stored before (ON CONFLICT DO NOTHING on ``keys``), in the order
    given; give how many went in (0 when not ``count``). One statement on the table (Core),
    built once per process, executed over the rows (every row has the same columns): a
    multi-row VALUES built from the rows is compiled anew every time, and the ORM's bulk insert
    builds a command per row.

    On SQLite, and uncounted on PostgreSQL, the statement has no RETURNING: one
    ``executemany`` of the driver, whose row count on SQLite adds the rows each execution
    changed (a row skipped on conflict changes none), where RETURNING made SQLAlchemy build and
    send multi-row VALUES batches row by row (~a fifth of an indexer round under 200-line
    redemption batches). Counted on PostgreSQL (whose driver's row count after executemany is
    not relied on), RETURNING gives the rows inserted."""
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
    result = session.connection().execute(stmt, list(rows))
    if returning:
        return len(result.all())
    return int(result.rowcount) if count else 0
