"""The one place that starts and stops the service's background workers.

The API's lifespan, the CLI and the tests run an :class:`~ledger.alliance.Alliance` through a
:class:`Runtime`: it builds the workers of every capability (the outbox sender, the expiry
sweep, the indexer, and the webhook dispatcher as it comes), runs each worker's recovery, and
starts their threads; :meth:`Runtime.stop` stops them in reverse order. The alliance itself
imports no worker.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .alliance import Alliance
from .clearing import kinds as clearing_kinds
from .clearing.projection import ClearingProjection
from .coupons import kinds as coupons_kinds
from .coupons.projection import CouponsProjection
from .errors import LedgerNotFoundError
from .indexer.follower import Follower
from .indexer.process import IndexerProcess
from .items import kinds as items_kinds
from .items.projection import ItemsProjection
from .members import kinds as members_kinds
from .members.projection import ConsentProjection
from .memberships import kinds as memberships_kinds
from .memberships.projection import MembershipsProjection
from .merchants import repos as merchant_repos
from .merchants.service import merchant_signing_key
from .offers.jobs import BirthdayJob
from .offers.projection import OffersProjection
from .outbox.bell import BellListener
from .outbox.kinds import KindRegistry, Signer
from .outbox.worker import OutboxWorker, SignerLookup
from .points import kinds as points_kinds
from .points.expiry import ExpirySweeper
from .points.projection import PointsProjection
from .settings import IndexerMode
from .types import MerchantId
from .webhooks.projection import WebhookProjection
from .webhooks.worker import WebhookWorker
from .worker import Worker

log = logging.getLogger(__name__)


def operation_kinds() -> KindRegistry:
    """Every capability's operation kinds."""
    return KindRegistry([*points_kinds.KINDS, *clearing_kinds.KINDS, *items_kinds.KINDS,
                         *coupons_kinds.KINDS,
                         *members_kinds.KINDS,
                         *memberships_kinds.KINDS,
                         ])


def merchant_signers(alliance: Alliance) -> SignerLookup:
    """``signer_for(merchant_id)``: the merchant's sender (its key, decrypted with the
    master key) and its own point program. Kept once the program is known (it never moves)."""
    known: dict[int, Signer] = {}

    def signer_for(merchant_id: int) -> Signer:
        signer = known.get(merchant_id)
        if signer is not None:
            return signer
        with alliance.store.read_session() as s:
            row = merchant_repos.get_merchant(s, merchant_id)
            if row is None:
                raise LedgerNotFoundError(f"no merchant {merchant_id}", merchant_id=merchant_id)
            home = row.program_address
        sender = alliance.sender_for_key(merchant_signing_key(alliance, MerchantId(merchant_id)))
        signer = Signer(merchant_id, sender, home)
        if home is not None:
            known[merchant_id] = signer
        return signer

    return signer_for


def outbox_worker(alliance: Alliance, *, idle_sleep_s: float | None = None) -> OutboxWorker:
    """The outbox sender of this alliance, with every capability's operation kinds."""
    return OutboxWorker(alliance, registry=operation_kinds(),
                        signer_for=merchant_signers(alliance), idle_sleep_s=idle_sleep_s)


def indexer(alliance: Alliance, *, head_poll_s: float | None = None) -> Follower:
    """The indexer of this alliance, with every capability's projection (tools and tests
    that read right after a write call its ``catch_up()``). ``head_poll_s``: it waits for
    blocks by asking the node that often (in a process of its own, see
    :mod:`ledger.indexer_main`), not for this process's outbox to see them."""
    return Follower(alliance, [PointsProjection(alliance), ClearingProjection(alliance),
                               ItemsProjection(alliance), CouponsProjection(alliance),
                               OffersProjection(alliance),
                               ConsentProjection(alliance),
                               MembershipsProjection(alliance),
                               WebhookProjection(alliance),
                               ], head_poll_s=head_poll_s)


def indexer_worker(alliance: Alliance, mode: IndexerMode) -> list[Worker]:
    """The indexer as this process runs it: a thread (``thread``), a supervised child process
    (``process``, :class:`~ledger.indexer.process.IndexerProcess`), or none (``off``: an
    ``alliance indexer`` runs elsewhere)."""
    if mode == "off":
        return []
    if mode == "process":
        return [IndexerProcess(alliance, indexer(alliance))]
    return [indexer(alliance)]


def workers(alliance: Alliance, *, indexer_mode: IndexerMode = "thread") -> list[Worker]:
    """Every background worker of the service, in start order (the indexer as
    :func:`indexer_worker` says; on PostgreSQL the outbox's ear for other processes' queued
    operations, :class:`~ledger.outbox.bell.BellListener`)."""
    engine = alliance.store.engine
    ear = [BellListener(engine, spacing_s=alliance.settings.batch_window_ms / 1000)] \
        if engine.dialect.name == "postgresql" else []
    return [outbox_worker(alliance), *ear, *indexer_worker(alliance, indexer_mode),
            ExpirySweeper(alliance),
            BirthdayJob(alliance),
            WebhookWorker(alliance),
            ]


_heap_settled = threading.Lock()
_heap_settled_once: list[bool] = []


def settle_heap() -> None:
    """Once per process, before the workers start: collect, then freeze what is alive (the
    modules, ABIs, the app) out of the cyclic collector's generations. Its full collections
    otherwise walk all of it, a quarter to half a second each holding the GIL: the indexer,
    the outbox and the API's requests all stall (scripts/bench_lag.py). Objects made later are
    collected as before."""
    with _heap_settled:
        if _heap_settled_once:
            return
        gc.collect()
        gc.freeze()
        _heap_settled_once.append(True)


class Runtime:
    """The running workers of one process around one alliance."""

    def __init__(self, alliance: Alliance, workers_: Sequence[Worker] | None = None, *,
                 indexer_mode: IndexerMode = "thread") -> None:
        self.alliance = alliance
        self.workers = (list(workers_) if workers_ is not None
                        else workers(alliance, indexer_mode=indexer_mode))
        self._started: list[Worker] = []

    @property
    def started(self) -> bool:
        """Whether this runtime's workers were started (and not stopped)."""
        return bool(self._started)

    def start(self) -> None:
        """Recover and start every worker (each recovers before its thread starts)."""
        settle_heap()
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
