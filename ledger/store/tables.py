"""The Core table of a mapped class, typed as a :class:`~sqlalchemy.Table`.

Bulk writes of the indexer go through Core statements on the table: the ORM's bulk insert
of a mapped class builds an insert command per row, which under load cost a third of a
follower round."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .models import Base


def table_of(model: type[Base]) -> Table:
    """The table ``model`` is mapped to."""
    return cast(Table, model.__table__)


def insert_new(session: Session, model: type[Base], rows: Sequence[dict[str, Any]],
               keys: list[str]) -> int:
    """Insert the rows not stored before (ON CONFLICT DO NOTHING on ``keys``), in the order
    given; give how many went in. One statement on the table (Core), compiled once per process
    and cached by SQLAlchemy, executed over the rows (sent as multi-row VALUES batches): a
    multi-row VALUES built from the rows is compiled anew every time, and the ORM's bulk insert
    builds a command per row. Every row has the same columns."""
    if not rows:
        return 0
    insert_fn = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = table_of(model)
    stmt = insert_fn(table).on_conflict_do_nothing(index_elements=keys).returning(table.c.id)
    # RETURNING gives only the rows inserted (rowcount is not reliable here on psycopg).
    session.flush()
    return len(session.connection().execute(stmt, list(rows)).all())
