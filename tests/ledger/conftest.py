"""Fixtures of the ledger-layer tests.

Store fixtures: ``pg_url`` (one throwaway PostgreSQL server per test session), ``store`` (a
freshly migrated store, once on SQLite and once on its own PostgreSQL database) and
``master`` (a master key in the test's data dir)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger.crypto import MasterKey
from ledger.settings import Settings
from ledger.store.db import Store, migrate
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


def fresh_pg_database(base_url: str) -> str:
    """Create an empty database on the server of ``base_url``; give its URL."""
    name = f"t{uuid.uuid4().hex[:12]}"
    admin = Store(base_url)
    try:
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text(f"CREATE DATABASE {name}"))
    finally:
        admin.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store migrated from empty: a SQLite file, then a database of its own on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = fresh_pg_database(request.getfixturevalue("pg_url"))
    migrate(url)
    s = Store(url)
    yield s
    s.dispose()


@pytest.fixture
def master(tmp_path: Path) -> MasterKey:
    return MasterKey.load(Settings(data_dir=tmp_path))
