"""The worker election when PostgreSQL is away (found by scripts/faults.py: a standby
``alliance worker`` died on the server's restart, leaving no process to take over)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger.election import WorkerLock
from ledger.store.db import Store
from tests.pg import postgres_server
from tests.servers import free_port


def test_a_standby_keeps_waiting_while_the_database_is_unreachable(tmp_path: Path) -> None:
    store = Store(f"postgresql+psycopg://alliance@127.0.0.1:{free_port()}/alliance")
    lock = WorkerLock(store, tmp_path)
    stop = threading.Event()
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    try:
        assert lock.acquire(stop, poll_s=0.2) is False  # waited, did not raise
    finally:
        timer.cancel()
        store.engine.dispose()


@pytest.mark.postgres
def test_the_holder_sees_it_lost_the_lock_when_its_session_ends(tmp_path: Path) -> None:
    with postgres_server() as url:
        store = Store(url)
        lock = WorkerLock(store, tmp_path)
        try:
            assert lock.try_acquire() and lock.held()
            with store.engine.connect() as c:  # the server ends the holder's session
                c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks "
                               "WHERE locktype = 'advisory'"))
                c.commit()
            assert not lock.held()
            assert WorkerLock(Store(url), tmp_path).try_acquire()  # a standby can take it
        finally:
            lock.release()
            store.engine.dispose()
