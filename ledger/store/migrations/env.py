"""Alembic environment: runs on the connection ``ledger.store.db.migrate`` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ledger.store.models import Base

config = context.config
target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


conn = config.attributes.get("connection")
if conn is None:
    from ledger.store.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as c:
        run(c)
else:
    run(conn)
