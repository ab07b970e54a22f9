"""The outbox is woken when this process queues work (its bell, rung after the commit), and
still finds work other processes queue (no bell) by its poll; a queue rolled back rings none.
Real anvil, real SQLite store, the worker's own thread."""

from __future__ import annotations

import time

from eth_account import Account
from sqlalchemy import select

from ledger.alliance import Alliance
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox import bell
from ledger.points.service import IssueLine, request_issue_batch
from ledger.runtime import outbox_worker
from ledger.store.models import Operation, OperationStatus


def _queue_one(a: Alliance, merchant: AdmittedMerchant, tag: str, *, ring: bool = True) -> str:
    with a.store.session() as s:
        op_id = request_issue_batch(a, s, merchant_id=merchant.merchant_id, items=[
            IssueLine(member=Account.create().address, points=5, order_id=tag)]).id
        if not ring:
            s.info.pop(bell.QUEUED)  # as another process's queue: this process hears no bell
    return op_id


def _confirmed_within(a: Alliance, op_id: str, timeout_s: float,
                      status: OperationStatus = OperationStatus.CONFIRMED) -> float | None:
    """Seconds until ``op_id`` is confirmed (or has ``status``; None: not within
    ``timeout_s``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        with a.store.read_session() as s:
            if s.scalar(select(Operation.status).where(Operation.id == op_id)) == status:
                return time.monotonic() - t0
        time.sleep(0.01)
    return None


def test_an_operation_queued_in_this_process_wakes_the_idle_outbox(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    # A poll of 60 s: only the bell can bring the operation out in time.
    worker = outbox_worker(alliance, idle_sleep_s=60.0)
    worker.start()
    try:
        time.sleep(0.5)  # its first rounds done: idle, waiting
        op_id = _queue_one(alliance, store_merchant, "BELL-1")
        assert _confirmed_within(alliance, op_id, 15.0) is not None
    finally:
        t0 = time.monotonic()
        worker.stop()
        assert time.monotonic() - t0 < 5.0  # stopping wakes the idle wait too
    assert not worker.running


def test_an_idle_outbox_reads_the_receipt_of_its_transaction_in_flight_within_the_batch_window(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    # The node holds the transaction unmined for a while (automine off): the rounds after the
    # send find no receipt and the thread goes idle with it in flight. No bell rings for a
    # receipt: with a 60 s poll only the in-flight bound (batch_window_ms) reads it in time.
    gw = alliance.gateway
    worker = outbox_worker(alliance, idle_sleep_s=60.0)
    worker.start()
    gw.rpc("evm_setAutomine", [False])
    try:
        time.sleep(0.5)
        op_id = _queue_one(alliance, store_merchant, "FLIGHT-1")
        assert _confirmed_within(alliance, op_id, 15.0, OperationStatus.SUBMITTED) is not None, \
            "the operation was not sent"
        time.sleep(0.3)  # its rounds have found no receipt: idle, the transaction in flight
        gw.rpc("evm_mine")
        assert _confirmed_within(alliance, op_id, 10.0) is not None
    finally:
        gw.rpc("evm_setAutomine", [True])
        worker.stop()


def test_work_queued_without_a_ring_is_still_found_by_the_poll(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    worker = outbox_worker(alliance, idle_sleep_s=0.05)
    worker.start()
    try:
        time.sleep(0.3)
        op_id = _queue_one(alliance, store_merchant, "POLL-1", ring=False)
        assert _confirmed_within(alliance, op_id, 15.0) is not None
    finally:
        worker.stop()


def test_the_bell_rings_after_a_commit_that_queued_and_not_after_a_rollback(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    before = bell.BELL.rung
    try:
        with alliance.store.session() as s:
            request_issue_batch(alliance, s, merchant_id=store_merchant.merchant_id, items=[
                IssueLine(member=Account.create().address, points=5, order_id="RB-1")])
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert bell.BELL.rung == before
    with alliance.store.session() as s:
        s.scalar(select(Operation.status).where(Operation.id == "none"))  # queues nothing
    assert bell.BELL.rung == before
    _queue_one(alliance, store_merchant, "RB-2")
    assert bell.BELL.rung == before + 1
