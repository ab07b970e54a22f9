"""The one place that starts and stops the service's background workers.

The API's lifespan, the CLI and the tests run an :class:`~ledger.alliance.Alliance` through a
:class:`Runtime`: it builds the workers of every capability (the outbox sender, the expiry
sweep, the indexer, and the webhook dispatcher as it comes), runs each worker's recovery, and
starts their threads; :meth:`Runtime.stop` stops them in reverse order. The alliance itself
imports no worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .alliance import Alliance
from .clearing.projection import ClearingProjection
from .indexer.follower import Follower
from .outbox.worker import OutboxWorker
from .points.expiry import ExpirySweeper
from .points.projection import PointsProjection
from .worker import Worker

log = logging.getLogger(__name__)


def outbox_worker(alliance: Alliance) -> OutboxWorker:
    """The outbox sender of this alliance, with every capability's operation kinds."""
    return OutboxWorker(alliance)


def indexer(alliance: Alliance) -> Follower:
    """The indexer of this alliance, with every capability's projection (tools and tests
    that read right after a write call its ``catch_up()``)."""
    return Follower(alliance, [PointsProjection(alliance), ClearingProjection(alliance)])


def workers(alliance: Alliance) -> list[Worker]:
    """Every background worker of the service, in start order."""
    return [outbox_worker(alliance), indexer(alliance), ExpirySweeper(alliance)]


class Runtime:
    """The running workers of one process around one alliance."""

    def __init__(self, alliance: Alliance, workers_: Sequence[Worker] | None = None) -> None:
        self.alliance = alliance
        self.workers = list(workers_) if workers_ is not None else workers(alliance)
        self._started: list[Worker] = []

    def start(self) -> None:
        """Recover and start every worker (each recovers before its thread starts)."""
        for w in self.workers:
            if w not in self._started:
                w.start()
                self._started.append(w)

    def stop(self) -> None:
        for w in reversed(self._started):
            w.stop()
        self._started.clear()


@contextmanager
def running(alliance: Alliance) -> Iterator[Runtime]:
    """The alliance's workers, running for the duration of the block."""
    runtime = Runtime(alliance)
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()
