"""The service's Prometheus metrics, in one registry (``/metrics`` serves it).

Counters and histograms are updated where things happen (the API's middleware, the outbox
worker, the workers' loop); what is a state rather than an event (the outbox queue, the
indexer's lag, unfunded keys) is read when Prometheus scrapes, by :class:`StateCollector`, so
nothing polls in between. One process, one registry: with several API processes each serves
its own (scrape each, or run the workers in one process; see README).

Names follow Prometheus conventions (``_total`` counters, base units: seconds, blocks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

# Request latency buckets: the single-request path is a few ms on a quiet machine, 100 ms is
# the p99 target, seconds mean trouble.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0)
# Confirmation lag: instant mining answers in ms, a 1-2 s block chain in seconds.
_CONFIRM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 180.0)

HTTP_REQUESTS = Counter("alliance_http_requests", "HTTP requests answered",
                        ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("alliance_http_request_duration_seconds",
                         "Time from a request's arrival to the end of its answer",
                         ["method", "route"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)

TX_SENT = Counter("alliance_transactions_sent", "Transactions signed and broadcast "
                  "(fee-bump replacements included)", registry=REGISTRY)
TX_CONFIRMED = Counter("alliance_transactions_confirmed",
                       "Transactions mined and successful", registry=REGISTRY)
TX_FAILED = Counter("alliance_transactions_failed",
                    "Transactions mined and reverted", registry=REGISTRY)
TX_FEE_BUMPS = Counter("alliance_transactions_fee_bumps",
                       "Stuck transactions replaced with a higher fee", registry=REGISTRY)
OPS_CONFIRMED = Counter("alliance_operations_mined", "Outbox operations whose transaction "
                        "was mined successfully", registry=REGISTRY)
CONFIRMATION_LAG = Histogram("alliance_confirmation_lag_seconds",
                             "Time from a transaction's broadcast to its receipt",
                             buckets=_CONFIRM_BUCKETS, registry=REGISTRY)
WORKER_ITEMS = Counter("alliance_worker_items", "What a background worker's rounds did "
                       "(outbox: operations claimed; indexer: events and head updates "
                       "applied)", ["worker"], registry=REGISTRY)


@dataclass(frozen=True)
class Sample:
    """One gauge reading: name, help, labels and value."""

    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class StateCollector(Collector):
    """Gauges read at scrape time from ``read()`` (the runtime gives it the store, the
    chain and the workers); a failed read is logged and skipped, never a failed scrape."""

    def __init__(self, read: Callable[[], list[Sample]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            samples = self.read()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the store is down
            log.warning("metrics: reading the service's state failed", exc_info=True)
            return
        families: dict[str, GaugeMetricFamily] = {}
        for s in samples:
            fam = families.get(s.name)
            if fam is None:
                fam = families[s.name] = GaugeMetricFamily(
                    s.name, s.help, labels=[k for k, _ in s.labels])
            fam.add_metric([v for _, v in s.labels], s.value)
        yield from families.values()


_state: StateCollector | None = None


def install_state(read: Callable[[], list[Sample]]) -> None:
    """Make ``read`` the source of the scrape-time gauges (replacing any earlier one: the
    process's current alliance)."""
    global _state
    if _state is not None:
        REGISTRY.unregister(_state)
    _state = StateCollector(read)
    REGISTRY.register(_state)


def since(t0: float) -> float:
    return time.perf_counter() - t0


OPS_ROLLED_BACK = Counter("alliance_operations_rolled_back", "Outbox operations seen mined "
                          "whose transaction the chain no longer holds (it rolled back below "
                          "them); each is settled, resent or queued again", registry=REGISTRY)
