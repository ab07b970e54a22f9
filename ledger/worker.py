"""One base for the service's background loops (the outbox, the indexer, the expiry sweep).

A worker does its work in rounds: :meth:`Worker.process_once` does one and gives how much it
did; the thread runs rounds until stopped, sleeping ``idle_sleep_s`` after a round that did
nothing and ``busy_sleep_s`` (by default none: it goes straight on) after one that did some.
:meth:`Worker.recover` runs once before the thread starts (the outbox settles what a crash
left). Tools and tests that run no thread call
:meth:`Worker.process_once` or :meth:`Worker.drain` themselves.
"""

from __future__ import annotations

import logging
import threading
import time

from .errors import LedgerError
from .metrics import WORKER_ITEMS

log = logging.getLogger(__name__)


class WorkerTimeoutError(LedgerError):
    """A drain did not finish in time."""

    code = "worker-timeout"


class Worker:
    """A background loop of rounds; subclasses give :meth:`process_once`."""

    name = "worker"

    def __init__(self, *, idle_sleep_s: float, busy_sleep_s: float = 0.0) -> None:
        self.idle_sleep_s = idle_sleep_s
        self.busy_sleep_s = busy_sleep_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def recover(self) -> None:
        """Put right what a crash left behind; runs before the thread starts."""

    def process_once(self) -> int:
        """Do one round; give how much was done (0: nothing to do)."""
        raise NotImplementedError

    def step(self) -> int:
        """One round of the thread (by default :meth:`process_once`; the outbox overrides it
        with a round that does not wait for receipts)."""
        return self.process_once()

    def idle(self) -> None:
        """Wait after a round that did nothing (by default ``idle_sleep_s``, or until
        stopped; the indexer wakes sooner, when a new block is seen)."""
        self._stop.wait(self.idle_sleep_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        items = WORKER_ITEMS.labels(self.name)
        while not self._stop.is_set():
            try:
                done = self.step()
            except Exception:  # noqa: BLE001 - the worker must outlive any one failure
                log.exception("%s round failed; retrying", self.name)
                done = 0
            items.inc(done)
            if done == 0:
                self.idle()
            elif self.busy_sleep_s > 0:
                self._stop.wait(self.busy_sleep_s)

    def drain(self, timeout_s: float = 60.0) -> None:
        """Run rounds until one does nothing (for tools and tests that run no thread)."""
        deadline = time.monotonic() + timeout_s
        while self.process_once() > 0:
            if time.monotonic() > deadline:
                raise WorkerTimeoutError(f"{self.name} did not drain in time")
