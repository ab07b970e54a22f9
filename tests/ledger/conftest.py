"""Fixtures of the ledger-layer tests.

Store fixtures: ``pg_url`` (one throwaway PostgreSQL server per test session), ``store`` (a
freshly migrated store, once on SQLite and once on its own PostgreSQL database) and
``master`` (a master key in the test's data dir)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from ledger.crypto import MasterKey
from ledger.settings import Settings
from ledger.store.db import Store, alembic_config, make_engine, migrate
from tests.pg import postgres_server

from .ledger_fixtures import (  # noqa: F401 - re-exported fixtures
    alliance,
    alliance_unbatched,
    cafe_merchant,
    store_merchant,
    store_merchant_unbatched,
)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A URL of an empty database on a PostgreSQL server started for this test session."""
    with postgres_server() as url:
        yield url


def fresh_pg_database(base_url: str, template: str | None = None) -> str:
    """Create a database on the server of ``base_url`` (empty, or a copy of the database named
    ``template``); give its URL."""
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = Store(base_url)
    try:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text(f"CREATE DATABASE {name}"
                           + (f" TEMPLATE {template}" if template else "")))
    finally:
        admin.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated from empty, once per session (``store`` copies it)."""
    path = tmp_path_factory.mktemp("migrated") / "store.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def migrated_pg(pg_url: str) -> str:
    """The name of a PostgreSQL database migrated from empty, once per session (``store``
    creates its database from it: CREATE DATABASE ... TEMPLATE)."""
    url = fresh_pg_database(pg_url)
    migrate(url)
    return url.rsplit("/", 1)[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store migrated from empty: a SQLite file, then a database of its own on PostgreSQL
    (each a copy of the session's migrated one, which is what migrating it would give; a test
    marked ``migrate_from_empty`` gets its store migrated from empty itself)."""
    from_empty = request.node.get_closest_marker("migrate_from_empty") is not None
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        if not from_empty:
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        url = f"sqlite:///{path}"
    else:
        url = fresh_pg_database(request.getfixturevalue("pg_url"), template=None if from_empty
                                else request.getfixturevalue("migrated_pg"))
    migrate(url)  # from empty with the marker; else already at head (a no-op that proves it)
    s = Store(url)
    yield s
    s.dispose()


@pytest.fixture
def master(tmp_path: Path) -> MasterKey:
    return MasterKey.load(Settings(data_dir=tmp_path))


def migrate_to(url: str, target: str, *, down: bool = False) -> None:
    """Alembic up (or ``down``) to the revision ``target`` on the database at ``url``."""
    cfg = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, target)
    finally:
        engine.dispose()


def table_indexes(store: Store, table: str) -> dict[str, list[str | None]]:
    """The indexes of ``table`` as the database has them: name -> columns."""
    return {str(ix["name"]): list(ix["column_names"])
            for ix in inspect(store.engine).get_indexes(table)}
