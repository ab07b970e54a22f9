"""One elected worker process per alliance: whoever holds the lock runs the background workers
(outbox, indexer, expiry sweep); the others wait and take over within seconds if it dies.

On PostgreSQL the lock is a session advisory lock (``pg_try_advisory_lock``) held on a
connection of its own: the server releases it the moment the holder's connection goes (a
crash, ``kill -9``, a lost network). On SQLite (one machine) it is an exclusive ``flock`` on
``<data_dir>/worker.lock``, released by the kernel when the process ends.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from .store.db import Store

log = logging.getLogger(__name__)

# pg advisory lock key: "alliance-workers" folded into a signed 64-bit integer.
ADVISORY_KEY = int.from_bytes(b"alliwork", "big", signed=True)
# The indexer's own election (``alliance indexer``, or the worker's indexer process): one
# process writes the read model, whichever process runs the other workers.
INDEXER_KEY = int.from_bytes(b"alliindx", "big", signed=True)
POLL_S = 1.0


class WorkerLock:
    """The worker election of one store (see the module docstring)."""

    def __init__(self, store: Store, data_dir: Path, *, name: str = "worker",
                 key: int = ADVISORY_KEY) -> None:
        self.store = store
        self.data_dir = data_dir
        self.name = name
        self.key = key
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None

    @property
    def postgres(self) -> bool:
        return self.store.engine.dialect.name == "postgresql"

    def try_acquire(self) -> bool:
        """Take the lock if it is free; give whether this process holds it now."""
        if self._conn is not None or self._file is not None:
            return True
        if self.postgres:
            conn = self.store.engine.connect()
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                    {"k": self.key}).scalar())
            conn.commit()
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        self.data_dir.mkdir(parents=True, exist_ok=True)
        f = (self.data_dir / f"{self.name}.lock").open("ab")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        f.write(f"{os.getpid()}\n".encode())
        f.flush()
        self._file = f
        return True

    def acquire(self, stop: threading.Event, poll_s: float = POLL_S) -> bool:
        """Wait until this process holds the lock (True) or ``stop`` is set (False)."""
        waited = False
        while not stop.is_set():
            try:
                got = self.try_acquire()
            except OperationalError as exc:
                # The database is away (a restart): a standby keeps standing by.
                log.warning("cannot reach the database to take the lock (%s); retrying",
                            str(exc).splitlines()[0])
                got = False
            if got:
                log.info("elected: this process (pid %d) runs the %ss", os.getpid(), self.name)
                return True
            if not waited:
                log.info("another process runs the %ss; standing by to take over", self.name)
                waited = True
            stop.wait(poll_s)
        return False

    def held(self) -> bool:
        """Whether the lock is still this process's: on PostgreSQL its connection must still
        answer (a server restart ends the session and frees the lock for a standby)."""
        if self._conn is None:
            return self._file is not None
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:  # noqa: BLE001 - any failure means the session (and lock) is gone
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except Exception:  # noqa: BLE001 - the session is gone, and the lock with it
                log.warning("the worker lock's session was already gone")
            finally:
                self._conn.close()
                self._conn = None
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
