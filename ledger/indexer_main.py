"""The indexer as a process: ``alliance indexer``, and the child process
:class:`~ledger.indexer.process.IndexerProcess` keeps running (``python -m
ledger.indexer_main``, its settings on stdin; end-of-file there stops it).

Either way it is elected (a ``WorkerLock`` named ``indexer``: an advisory lock on PostgreSQL,
``<data_dir>/indexer.lock`` on SQLite), so two processes never write the read model at once;
a second one stands by and takes over when the first goes.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from .alliance import Alliance
from .election import INDEXER_KEY, WorkerLock
from .indexer.follower import HEAD_POLL_S, Follower
from .indexer.process import read_settings
from .logs import configure as configure_logs
from .runtime import indexer, settle_heap
from .settings import Settings

log = logging.getLogger(__name__)

# Seconds between two checks that the lock is still held and the follower thread alive.
WATCH_S = 0.5


def run(settings: Settings, stop: threading.Event, *,
        ready: Callable[[Follower], None] | None = None) -> int:
    """Open the alliance, wait to be elected, and follow the chain until ``stop`` is set;
    give the exit status (1: the lock or the follower thread was lost). ``ready(follower)``
    is called once the follower runs."""
    alliance = Alliance.open(settings)
    lock = WorkerLock(alliance.store, settings.data_dir, name="indexer", key=INDEXER_KEY)
    try:
        if not lock.acquire(stop, poll_s=0.2):
            return 0
        follower = indexer(alliance, head_poll_s=HEAD_POLL_S)
        settle_heap()
        follower.start()
        try:
            log.info("indexer running (pid %d)", os.getpid())
            if ready is not None:
                ready(follower)
            while not stop.wait(WATCH_S):
                if not lock.held():
                    log.error("lost the indexer lock (database restart)")
                    return 1
                if not follower.running:
                    log.error("the indexer thread died")
                    return 1
            return 0
        finally:
            follower.stop()
    finally:
        lock.release()
        alliance.close()


def child(ready: Callable[[Follower], None] | None = None) -> int:
    """The supervised child: settings on the first line of stdin; end-of-file (the parent
    closed the pipe or went) or SIGTERM stops it. Gives the exit status."""
    line = sys.stdin.buffer.readline()
    if not line:
        return 0  # the parent went before it wrote
    settings = read_settings(line)
    configure_logs(settings.log_format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def watch_parent() -> None:
        sys.stdin.buffer.read()  # returns at end-of-file only
        stop.set()

    threading.Thread(target=watch_parent, name="parent-watch", daemon=True).start()
    return run(settings, stop, ready=ready)


if __name__ == "__main__":
    raise SystemExit(child())
