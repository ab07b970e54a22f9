"""The indexer in a process of its own (issue 13's lag): the runtime starts it, restarts it
after a ``kill -9``, the new one catches up (the read model equals the chain after), it is
elected (no second indexer writes beside it), and it stops with its parent: when the parent
stops it, and when the parent itself is killed with -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from eth_account import Account

from ledger import indexer_main
from ledger.alliance import Alliance
from ledger.election import INDEXER_KEY, WorkerLock
from ledger.indexer.follower import Follower
from ledger.indexer.process import IndexerProcess
from ledger.merchants.service import AdmittedMerchant
from ledger.points.reads import history
from ledger.points.service import request_issue
from ledger.runtime import Runtime, indexer, outbox_worker, workers
from ledger.settings import Settings

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


def _until(read: Callable[[], T | None], what: str, timeout_s: float = 60.0) -> T:
    """``read()`` every 0.05 s until it gives something true; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no parent reaped yet has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _issue(alliance: Alliance, merchant: AdmittedMerchant, member: str, points: int,
           order_id: str) -> None:
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=merchant.merchant_id, member=member,
                      points=points, order_id=order_id)
    outbox_worker(alliance).drain()


def _at_head(alliance: Alliance, sup: IndexerProcess) -> bool:
    head = alliance.gateway.block_number()
    return min(sup.synced_blocks().values()) >= head


def test_the_service_runs_the_indexer_in_a_process_when_told(alliance: Alliance) -> None:
    assert not any(isinstance(w, IndexerProcess) for w in workers(alliance))
    assert any(isinstance(w, IndexerProcess)
               for w in workers(alliance, indexer_mode="process"))
    assert not any(w.name == "indexer" for w in workers(alliance, indexer_mode="off"))
    # The service's own default (alliance worker, up, serve) is the process.
    assert Settings.model_fields["indexer_mode"].default == "process"


def test_the_indexer_process_restarts_after_kill_9_catches_up_and_stops_with_its_parent(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    sup = IndexerProcess(alliance, indexer(alliance), check_s=0.05)
    runtime = Runtime(alliance, [sup])
    runtime.start()
    a, b = Account.create().address, Account.create().address
    try:
        first = _until(lambda: sup.pid, "the indexer process to start")
        _issue(alliance, store_merchant, a, 5, "PROC-1")
        _until(lambda: _at_head(alliance, sup), "the indexer process to reach the head")
        assert [e["amount"] for e in history(alliance, member=a)[0]] == [5]
        # Elected: no second indexer may write beside it.
        assert not WorkerLock(alliance.store, alliance.settings.data_dir, name="indexer",
                              key=INDEXER_KEY).try_acquire()

        os.kill(first, signal.SIGKILL)
        _issue(alliance, store_merchant, b, 7, "PROC-2")  # mined while it is down
        second = _until(lambda: sup.pid if sup.pid not in (None, first) else None,
                        "the indexer process to be restarted")
        assert sup.starts == 2 and not _alive(first)
        _until(lambda: _at_head(alliance, sup), "the restarted indexer to catch up")
        program = alliance.contracts.program(store_merchant.program)
        for member, points in ((a, 5), (b, 7)):
            assert [e["amount"] for e in history(alliance, member=member)[0]] == [points]
            assert program.balance_of(member) == points
    finally:
        runtime.stop()
    assert not _alive(second)
    lock = WorkerLock(alliance.store, alliance.settings.data_dir, name="indexer",
                      key=INDEXER_KEY)
    assert lock.try_acquire()  # the lock went with it
    lock.release()


PARENT = """
import json, sys, time
from ledger.alliance import Alliance
from ledger.indexer.process import IndexerProcess
from ledger.runtime import indexer
from ledger.settings import Settings
alliance = Alliance.open(Settings(**json.loads(sys.argv[1])))
sup = IndexerProcess(alliance, indexer(alliance), check_s=0.05)
sup.start()
while sup.pid is None:
    time.sleep(0.05)
print(sup.pid, flush=True)
time.sleep(600)
"""


def test_the_indexer_process_ends_when_its_parent_is_killed_with_9(
        alliance: Alliance, settings: Settings) -> None:
    given = {"data_dir": str(settings.data_dir), "rpc_url": settings.rpc_url,
             "chain_id": settings.chain_id, "artifacts_dir": str(settings.artifacts_dir)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, json.dumps(given)], cwd=ROOT,
                              stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        _until(lambda: "indexer" in Path(f"/proc/{child}/cmdline").read_text(),
               "the child to run")
        parent.kill()
        parent.wait(10)
        _until(lambda: not _alive(child), "the orphaned indexer process to end", 30)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)


def test_a_second_indexer_stands_by_until_the_first_stops(
        alliance: Alliance, settings: Settings) -> None:
    """`alliance indexer` twice (here two runs in threads; the lock is a file lock on SQLite,
    taken per open file): the second follows only once the first has stopped."""
    stops = [threading.Event(), threading.Event()]
    ready: list[list[Follower]] = [[], []]
    runs = [threading.Thread(target=indexer_main.run, args=(settings, stops[i]),
                             kwargs={"ready": ready[i].append}, daemon=True) for i in (0, 1)]
    try:
        runs[0].start()
        _until(lambda: ready[0], "the first indexer to run")
        runs[1].start()
        # Never while the first runs: give it time to try (it looks every 0.2 s).
        time.sleep(1.0)
        assert not ready[1]
        stops[0].set()
        runs[0].join(30)
        assert not runs[0].is_alive()
        follower = _until(lambda: ready[1][0] if ready[1] else None,
                          "the standby to take over", 30)
        assert follower.running and follower.head_poll_s is not None
    finally:
        for stop in stops:
            stop.set()
        for run in runs:
            if run.is_alive():
                run.join(30)
