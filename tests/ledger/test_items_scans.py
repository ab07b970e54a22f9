"""The public verify's scan buffer on a real store (SQLite and PostgreSQL): rows written as one
INSERT per flush, every scan visible to clone detection before and after it is written (and
counted once), nothing lost on a clean shutdown."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select

from ledger.items import scans
from ledger.items.repos import ItemScan
from ledger.store.db import Store

ITEM = "0x" + "ab" * 32


def _no_flags(_session: object, _flag: scans.FlagRequest) -> None:
    raise AssertionError("no flag expected")


def _rows(store: Store) -> int:
    with store.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(ItemScan)) or 0)


def _wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def inserts(store: Store) -> Iterator[list[str]]:
    """The INSERT statements into item_scans the store runs."""
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ITEM_SCANS"):
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    yield seen
    event.remove(store.engine, "before_cursor_execute", count)


def test_scans_are_written_as_one_insert_per_flush_of_max_rows(store: Store,
                                                               inserts: list[str]) -> None:
    buf = scans.ScanBuffer(store, _no_flags, max_rows=10, max_delay_s=3600)
    for i in range(25):
        buf.add(scans.Scan(ITEM, 1_000 + i, None, None))
    _wait_for(lambda: buf.flushes == 2)
    assert _rows(store) == 20 and buf.pending == 5
    buf.close()
    assert _rows(store) == 25 and buf.pending == 0
    assert len(inserts) == 3


def test_pending_scans_are_written_after_max_delay(store: Store) -> None:
    buf = scans.ScanBuffer(store, _no_flags, max_rows=1_000, max_delay_s=0.05)
    buf.add(scans.Scan(ITEM, 1_000, None, None))
    # the count moves after the commit: wait for it, then the row is there
    _wait_for(lambda: buf.flushes == 1)
    assert _rows(store) == 1
    buf.close()


def test_an_idle_flusher_ends_and_the_next_scan_starts_another(store: Store) -> None:
    buf = scans.ScanBuffer(store, _no_flags, max_delay_s=0.01, idle_s=0.05)
    buf.add(scans.Scan(ITEM, 1_000, None, None))
    _wait_for(lambda: buf._thread is None)
    assert _rows(store) == 1
    buf.add(scans.Scan(ITEM, 1_001, None, None))
    _wait_for(lambda: _rows(store) == 2)
    buf.close()


def test_a_scan_is_seen_before_it_is_written_and_counted_once_after(store: Store) -> None:
    buf = scans.ScanBuffer(store, _no_flags, max_delay_s=3600)
    buf.add(scans.Scan(ITEM, 1_000, 31_230_000, 121_470_000))
    buf.add(scans.Scan("0x" + "cd" * 32, 1_000, None, None))
    # not written yet: the buffer has it
    (pending,) = buf.recent(ITEM, 0, set())
    assert pending.id is None and _rows(store) == 0
    assert buf.recent(ITEM, 1_001, set()) == []  # older than asked
    buf.flush()
    with store.read_session() as s:
        stored = {r.id for r in s.scalars(select(ItemScan).where(ItemScan.item_id == ITEM))}
    assert len(stored) == 1
    # a reader whose store snapshot holds the row gets it from there only...
    assert buf.recent(ITEM, 0, stored) == []
    # ...one whose snapshot predates the commit gets it from the buffer, with its row id
    (flushed,) = buf.recent(ITEM, 0, set())
    assert flushed.id in stored and (flushed.lat_e6, flushed.lon_e6) == (31_230_000, 121_470_000)
    buf.close()


def test_disposing_the_store_writes_the_pending_scans(store: Store) -> None:
    buf = scans.buffer_for(store, _no_flags, max_delay_s=3600)
    assert scans.buffer_for(store, _no_flags) is buf  # one per store
    for i in range(3):
        buf.add(scans.Scan(ITEM, 1_000 + i, None, None))
    assert _rows(store) == 0
    store.dispose()  # what Alliance.close does
    assert buf.pending == 0 and _rows(store) == 3
    # a scan after that starts a new flusher
    buf.add(scans.Scan(ITEM, 2_000, None, None))
    buf.close()
    assert _rows(store) == 4


def test_flag_requests_are_written_with_the_scans_once_per_item(store: Store) -> None:
    written: list[scans.FlagRequest] = []

    def flag(_session: object, f: scans.FlagRequest) -> None:
        written.append(f)

    buf = scans.ScanBuffer(store, flag, max_delay_s=3600)
    item = bytes.fromhex("ab" * 32)
    for reason in (2, 3):
        buf.add(scans.Scan(ITEM, 1_000, None, None), scans.FlagRequest(7, item, reason))
    buf.close()
    assert written == [scans.FlagRequest(7, item, 2)] and _rows(store) == 2


def test_a_flag_that_cannot_be_queued_does_not_hold_the_scans_back(store: Store) -> None:
    def broken(_session: object, _flag: scans.FlagRequest) -> None:
        raise RuntimeError("no such brand")

    buf = scans.ScanBuffer(store, broken, max_delay_s=0.01)
    buf.add(scans.Scan(ITEM, 1_000, None, None), scans.FlagRequest(7, b"\xab" * 32, 2))
    _wait_for(lambda: _rows(store) == 1)
    buf.close()
    assert buf.pending == 0
