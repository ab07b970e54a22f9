"""Engine and sessions of the store; migrations run programmatically at start-up.

SQLite (the default, in the data dir) runs in WAL mode with foreign keys on and a generous
busy timeout, so concurrent writers queue instead of failing. PostgreSQL is used by URL
(``postgresql+psycopg://…``).
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import select
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from ..errors import StoreUnavailableError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# Execution option marking the connections of read-only sessions.
READ_ONLY = "alliance_read_only"


# Any fixed 64-bit number: the key of the PostgreSQL advisory lock held while migrating.
_MIGRATION_LOCK = 0x616C6C69616E6365

# A SQLite store checkpoints its write-ahead log once it has grown this much since the last
# checkpoint (SQLite's own default: 1,000 pages of 4 KiB).
WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024

# ALLIANCE_WRITER_TIMING=<path>: every write session's wait for the writer and hold of it,
# by thread, appended to <path>.<pid> at exit (a measuring aid; off, it costs one test).
_TIMING_PATH = os.environ.get("ALLIANCE_WRITER_TIMING") or None
TIMING = _TIMING_PATH is not None  # the one flag (the batch route records its phases by it)
_timings: list[tuple[str, float, float, float]] = []


def _dump_timings() -> None:
    if _timings:
        with open(f"{_TIMING_PATH}.{os.getpid()}", "a") as f:
            f.writelines(f"{n}\t{t:.6f}\t{w * 1e3:.3f}\t{h * 1e3:.3f}\n"
                         for n, t, w, h in _timings)


def note_timing(label: str, t: float, a: float, b: float) -> None:
    """Record a measured phase (seconds) when ALLIANCE_WRITER_TIMING is set."""
    _timings.append((label, t, a, b))


if _TIMING_PATH is not None:
    atexit.register(_dump_timings)


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) for the service's data, readable by its owner only
    (0700); an existing directory of ours that is open to others is closed (with a warning)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty if missing, mode 0600; tighten it (with a warning) if it is open
    to others. SQLite gives its -wal and -shm files the mode of the database file."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    _tighten(path, 0o600)
    for side in ("-wal", "-shm", "-journal"):
        extra = Path(f"{path}{side}")
        if extra.exists():
            _tighten(extra, 0o600)


def _tighten(path: Path, mode: int) -> None:
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        log.warning("%s was open to others (mode %o): set to %o", path, st.st_mode & 0o777,
                    mode)
        os.chmod(path, mode)


def make_engine(url: str, *, busy_timeout_s: float = 30.0) -> Engine:
    """An engine for ``url`` with the pragmas and pool settings the service relies on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        memory = database in ("", ":memory:") or database.startswith("file::memory:")
        if memory:
            # One shared connection: each new connection would be a new, empty database.
            engine = create_engine(url, connect_args={"check_same_thread": False},
                                   poolclass=StaticPool)
        else:
            # The store holds encrypted secrets, pseudonyms and every merchant's operations:
            # owner-only, from the first byte (the data dir 0700, the files 0600).
            private_dir(Path(database).parent)
            private_file(Path(database))
            engine = create_engine(url, connect_args={"timeout": busy_timeout_s,
                                                     "check_same_thread": False},
                                   pool_size=20, max_overflow=40)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit off in the driver; SQLAlchemy emits BEGIN itself (see below), so a
            # write transaction takes the lock up front instead of failing on upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                # No checkpoint inside a commit: SQLite ran one (copying the log back into the
                # database and syncing both, 25-60 ms here) in the commit that took the log
                # past 1,000 pages, while that thread still held the process's writer lock.
                # Store.session checkpoints after releasing it (WAL_CHECKPOINT_BYTES); the log
                # is cut back to nothing when it restarts, so its size says what it holds.
                cur.execute("PRAGMA wal_autocheckpoint=0")
                cur.execute("PRAGMA journal_size_limit=0")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # A read takes no lock in WAL mode: it must not queue behind a writer.
            read = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_size=20, max_overflow=40)
    # A pooled connection the server has closed (a restart, a crash, a terminated backend) is
    # found at checkout without a round trip: the pool's pre-ping sent one (SELECT 1) on every
    # checkout, one of a signed request's six (scripts/bench_http.py).
    event.listen(engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Hand out no PostgreSQL connection the server has closed: the pool then discards it and
    checks out another (``DisconnectionError``, up to three tries, then a new connection).

    A pooled connection is idle: the server sends it nothing unprompted. When the server goes
    away it says why (``FATAL: terminating connection``) and closes the socket; a crash or a
    killed server closes it by the kernel. Either way the socket turns readable, which a poll
    with no timeout sees without a round trip. Anything else readable (a parameter change the
    server reports, a notice) costs a reconnect and nothing more. A server that vanished
    without closing anything (a cut network to another host) is met by the statement itself,
    as it was by the ping: its error is the store's 503 and the pool starts afresh."""
    if dbapi_conn.closed or dbapi_conn.broken:
        raise DisconnectionError("the connection is closed")
    try:
        fd = dbapi_conn.fileno()
    except Exception as exc:  # psycopg: OperationalError on a closed connection
        raise DisconnectionError("the connection has no socket") from exc
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection or spoke unprompted")


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema.

    Safe when several processes start at once: on PostgreSQL they queue on an advisory lock,
    on a SQLite file on an exclusive lock of a sidecar file (switching a fresh file to WAL
    fails at once, without waiting, while another connection holds it)."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database and ":memory:" not in database:
        private_dir(Path(database).parent)
        lock_path = Path(f"{database}.migrate-lock")
        private_file(lock_path)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                _upgrade(url)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    _upgrade(url)


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the store's migrations at ``url`` (its logging left
    alone); the caller puts its open connection in ``attributes["connection"]``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["configure_logger"] = False
    return cfg


def _upgrade(url: str) -> None:
    cfg = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()


class Store:
    """Sessions on one database."""

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0) -> None:
        self.url = url
        self.engine = make_engine(url, busy_timeout_s=busy_timeout_s)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Threads of this process queue for it here and wake
        # the moment it is free, instead of in SQLite's busy handler, which sleeps in growing
        # steps and starves some waiters (a long latency tail under load). Other processes
        # still meet the busy handler.
        self._write_lock: threading.RLock | None = (
            threading.RLock() if self.engine.dialect.name == "sqlite" else None)
        self._read_factory = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}),
                                          expire_on_commit=False)
        # The write-ahead log of a SQLite file, checkpointed by :meth:`_checkpoint_if_due`.
        database = make_url(url).database or ""
        self._wal: Path | None = (
            Path(f"{database}-wal") if self._write_lock is not None and database
            and ":memory:" not in database and not database.startswith("file:") else None)
        self._wal_mark = 0
        self._checkpointing = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception. The
        database being down or locked past the busy timeout raises StoreUnavailableError."""
        timed = TIMING  # its wait for the writer and hold of it recorded
        t0 = time.perf_counter() if timed else 0.0
        with self._write_lock if self._write_lock is not None else nullcontext():
            t1 = time.perf_counter() if timed else 0.0
            s = self._factory()
            try:
                yield s
                s.commit()
            except OperationalError as exc:
                _rollback_quietly(s)
                raise _unavailable(exc) from exc
            except BaseException:
                s.rollback()
                raise
            finally:
                s.close()
                if timed:
                    _timings.append((threading.current_thread().name, t0, t1 - t0,
                                     time.perf_counter() - t1))
        if self._wal is not None:
            self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        """Checkpoint the write-ahead log (PASSIVE: it waits for no reader or writer, and
        writers go on meanwhile) once it has grown by WAL_CHECKPOINT_BYTES since the last
        checkpoint; called after the writer lock is released, one thread at a time (another
        thread's commit finds it under way and goes on)."""
        assert self._wal is not None
        try:
            size = self._wal.stat().st_size
        except OSError:
            return
        if size < self._wal_mark:  # the log restarted (cut back to nothing): count afresh
            self._wal_mark = 0
        if size - self._wal_mark < WAL_CHECKPOINT_BYTES:
            return
        if not self._checkpointing.acquire(blocking=False):
            return
        try:
            raw = self.engine.raw_connection()
            try:
                # The driver's own connection: autocommit (no BEGIN IMMEDIATE, no writer).
                raw.driver_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                raw.close()
            try:
                self._wal_mark = self._wal.stat().st_size
            except OSError:
                self._wal_mark = 0
        except (OperationalError, sqlite3.Error):
            log.warning("checkpoint of %s failed; the next commit tries again", self._wal,
                        exc_info=True)
        finally:
            self._checkpointing.release()

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reads only: on SQLite it takes no write lock, so it never waits for a
        writer (WAL readers see the last commit); whatever it did is rolled back."""
        s = self._read_factory()
        try:
            yield s
        except OperationalError as exc:
            raise _unavailable(exc) from exc
        finally:
            _rollback_quietly(s)
            s.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _unavailable(exc: OperationalError) -> StoreUnavailableError:
    """The ledger error of the database failing to answer (down, locked, connection lost)."""
    log.warning("the store could not answer: %s", exc.orig)
    return StoreUnavailableError("the database cannot answer now; retry later")


def _rollback_quietly(session: Session) -> None:
    """Roll back; a database that is gone cannot roll back, and has nothing to keep either."""
    try:
        session.rollback()
    except OperationalError:
        log.warning("rollback failed on an unavailable store", exc_info=True)
