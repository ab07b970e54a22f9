"""The public verify's scan rows, written in batches: one multi-row INSERT per flush instead of
a commit per request.

A verify adds its scan (and, on a clone signal, its flag request) to the store's
``ScanBuffer``; a flusher thread writes what is pending as one INSERT (and queues the flags) in
one transaction when ``max_rows`` are pending or the oldest has waited ``max_delay_s``.

Clone detection does not lose a scan to the buffer. ``recent`` gives, next to what the store
holds, every scan of this process not yet committed and every one committed in the last
``keep_s`` (with its row id, so a reader whose store snapshot already has it counts it once):

- in this process, the very next verify sees a scan, flushed or not (a clone scanned twice in
  a row is still flagged, as is the 21st scan of a day or an impossible journey);
- another process sharing the database sees it once flushed: after at most ``max_delay_s``
  (50 ms by default) — the window of this design;
- a clean shutdown loses nothing: ``close`` (run when the store's engine is disposed, as
  ``Alliance.close`` does, and at interpreter exit) writes what is pending. A crash loses at
  most the pending rows (at most ``max_delay_s`` of scans).

The flusher holds ``_cond`` from its INSERT's commit until its rows carry their ids, and a
reader asks ``recent`` after its store query: a reader's snapshot taken before the commit gets
the rows from the buffer (pending, or flushed with ids it does not hold), one taken after gets
them from the store and drops the buffer's copies by id. Either way each scan counts once.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, event, insert
from sqlalchemy.orm import Session

from ..store.db import Store
from .repos import ItemScan

log = logging.getLogger(__name__)

MAX_ROWS = 256
MAX_DELAY_S = 0.05
KEEP_S = 30.0
IDLE_S = 10.0  # a flusher with nothing to write for this long ends
_ATTR = "_item_scan_buffer"


@dataclass
class Scan:
    """A scan as clone detection reads it (``id``: its row, once written)."""

    item_id: str
    at: int
    lat_e6: int | None
    lon_e6: int | None
    id: int | None = None
    queued: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class FlagRequest:
    """A clone signal to flag on chain, once per item, through the item's brand."""

    brand_id: int
    item_id: bytes
    reason: int


FlagWriter = Callable[[Session, FlagRequest], None]


class ScanBuffer:
    """Scans waiting to be written, and those written lately (see the module's notes)."""

    def __init__(self, store: Store, flag: FlagWriter, *, max_rows: int = MAX_ROWS,
                 max_delay_s: float = MAX_DELAY_S, keep_s: float = KEEP_S,
                 idle_s: float = IDLE_S) -> None:
        self.store = store
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self.keep_s = keep_s
        self.idle_s = idle_s
        self._flag = flag
        self._cond = threading.Condition()
        self._flush_lock = threading.Lock()
        self._pending: list[Scan] = []
        self._flags: dict[bytes, FlagRequest] = {}
        self._flushed: deque[tuple[float, Scan]] = deque()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.flushes = 0  # INSERTs written (what the tests and the benchmark read)

    # ------------------------------------------------------------------ readers

    def add(self, scan: Scan, flag: FlagRequest | None = None) -> None:
        """Queue a scan (and its flag request); the flusher writes it soon."""
        with self._cond:
            self._pending.append(scan)
            if flag is not None:
                self._flags.setdefault(flag.item_id, flag)
            self._start_locked()
            self._cond.notify()

    def _start_locked(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="item-scans", daemon=True)
            self._thread.start()

    def recent(self, item_id: str, since: int, stored_ids: Collection[int]) -> list[Scan]:
        """This process's scans of ``item_id`` at or after ``since`` that a store query which
        returned the rows ``stored_ids`` may not hold (call it after that query)."""
        with self._cond:
            now = time.monotonic()
            while self._flushed and now - self._flushed[0][0] > self.keep_s:
                self._flushed.popleft()
            flushed = [s for _, s in self._flushed
                       if s.item_id == item_id and s.at >= since and s.id not in stored_ids]
            pending = [s for s in self._pending if s.item_id == item_id and s.at >= since]
        return flushed + pending

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    # ------------------------------------------------------------------ writer

    def flush(self, *, due_only: bool = False) -> int:
        """Write what is pending now, ``max_rows`` at a time, each as one INSERT in one
        transaction (short, so other writers wait little); give the row count. ``due_only``:
        stop at a part chunk whose oldest scan has not waited ``max_delay_s``."""
        total = 0
        with self._flush_lock:
            while True:
                with self._cond:
                    rows = self._pending[:self.max_rows]
                    flags = list(self._flags.values())
                    early = (due_only and len(rows) < self.max_rows and bool(rows)
                             and time.monotonic() - rows[0].queued < self.max_delay_s)
                if (not rows and not flags) or early:
                    return total
                self._write(rows, flags, drop=True)
                total += len(rows)

    def _write(self, rows: list[Scan], flags: list[FlagRequest], *, drop: bool = False
               ) -> None:
        with self.store.session() as s:
            ids: list[int] = []
            if rows:
                # One multi-row INSERT. RETURNING's order is not promised, so each returned
                # row goes to a written scan of the same content (identical scans are
                # interchangeable for clone detection; each gets its own id).
                t = cast(Table, ItemScan.__table__)
                returned = s.execute(insert(t).values(
                    [{"item_id": r.item_id, "at": r.at, "lat_e6": r.lat_e6, "lon_e6": r.lon_e6}
                     for r in rows]).returning(t.c.id, t.c.item_id, t.c.at, t.c.lat_e6,
                                               t.c.lon_e6)).all()
                by_content: dict[tuple[Any, ...], list[int]] = {}
                for row in returned:
                    by_content.setdefault(tuple(row[1:]), []).append(int(row[0]))
                ids = [by_content[(r.item_id, r.at, r.lat_e6, r.lon_e6)].pop() for r in rows]
            for f in flags:
                try:
                    with s.begin_nested():  # a flag that cannot be queued loses no scan
                        self._flag(s, f)
                except Exception:
                    log.exception("flagging item %s (reason %d) failed; dropped",
                                  "0x" + f.item_id.hex(), f.reason)
            with self._cond:
                s.commit()
                now = time.monotonic()
                for r, i in zip(rows, ids, strict=True):
                    r.id = i
                    self._flushed.append((now, r))
                if drop:
                    del self._pending[:len(rows)]
                    for f in flags:
                        self._flags.pop(f.item_id, None)
                self.flushes += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._flags and not self._stopping:
                    self._cond.wait(self.idle_s)
                if not self._pending and not self._flags and not self._stopping:
                    self._thread = None  # idle: end (the next scan starts another)
                    return
                if self._stopping:
                    return
                due = (self._pending[0].queued if self._pending else time.monotonic()) \
                    + self.max_delay_s
                while (len(self._pending) < self.max_rows and not self._stopping
                       and (left := due - time.monotonic()) > 0):
                    self._cond.wait(left)
                if self._stopping:
                    return
            try:
                self.flush(due_only=True)
            except Exception:  # the store is down: keep the rows, try again
                log.exception("writing %d item scans failed; retrying", self.pending)
                time.sleep(max(self.max_delay_s, 0.5))

    def close(self) -> None:
        """Stop the flusher and write what is pending (clean shutdown). A scan added later
        starts a new flusher."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        try:
            self.flush()
        except Exception:
            log.exception("writing the last %d item scans at shutdown failed", self.pending)
        finally:
            with self._cond:
                self._stopping = False
                self._thread = None
                if self._pending or self._flags:
                    self._start_locked()


_buffers_lock = threading.Lock()


def buffer_for(store: Store, flag: FlagWriter, **options: Any) -> ScanBuffer:
    """The store's scan buffer (one per store, kept on it), closed when the store's engine is
    disposed (``Alliance.close``) or the interpreter exits."""
    with _buffers_lock:
        buf: ScanBuffer | None = getattr(store, _ATTR, None)
        if buf is None:
            buf = ScanBuffer(store, flag, **options)
            setattr(store, _ATTR, buf)
            ref = weakref.ref(buf)

            def _close(*_: object) -> None:
                b = ref()
                if b is not None:
                    b.close()

            event.listen(store.engine, "engine_disposed", _close)
            atexit.register(_close)
        return buf
