"""The worker election when PostgreSQL is away (found by scripts/faults.py: a standby
``alliance worker`` died on the server's restart, leaving no process to take over)."""

from __future__ import annotations

import threading
from pathlib import Path

from ledger.election import WorkerLock
from ledger.store.db import Store
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
