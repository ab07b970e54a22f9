"""The webhook worker: delivers each endpoint's pending events in order, one in flight per
endpoint, retrying with :func:`ledger.webhooks.delivery.retry_delay`, pausing an endpoint
after :data:`ledger.webhooks.delivery.PAUSE_AFTER` failures in a row (its status says so on
the API, a warning line names it).

Every state change is in the store before the next page of deliveries (a delivery is marked
delivered only after the receiver's 2xx; a failure ends the run and is stored with its next
time), so a restart goes on where the last process stopped; the deliveries of a run whose
outcomes died with the process (at most :data:`PAGE`) are sent again: at least once,
receivers de-duplicate by the event id header. One SQLite commit per delivery capped the
worker at ~23 deliveries/s on the shared machine; one per run of up to :data:`PAGE` does
not. Endpoints are served side by side by a small thread pool; one endpoint's deliveries
never overlap.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx

from ..alliance import Alliance
from ..errors import LedgerValidationError
from ..store.models import utcnow
from ..worker import Worker
from . import delivery, repos
from .events import DeliveryState, EndpointStatus

log = logging.getLogger(__name__)

POLL_S = 0.5
# Deliveries one endpoint gets in one round before the others' turn (they run side by side
# anyway; this bounds how long a round lasts).
PER_ROUND = 200
# Pending deliveries read, sent in order, then stored, at a time.
PAGE = 50
THREADS = 4


def body_of(ev: repos.WebhookEvent) -> bytes:
    """What a delivery of ``ev`` posts: the same bytes on every attempt."""
    return json.dumps({"id": ev.id, "type": ev.type, "merchant_id": ev.merchant_id,
                       "created": ev.block_time, "data": ev.payload},
                      sort_keys=True, separators=(",", ":")).encode()


class WebhookWorker(Worker):
    """Sends pending webhook deliveries (see the module docstring)."""

    name = "webhooks"

    def __init__(self, alliance: Alliance, *, idle_sleep_s: float = POLL_S,
                 backoff: Callable[[int], float] = delivery.retry_delay,
                 pause_after: int = delivery.PAUSE_AFTER,
                 timeout_s: float = delivery.TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(idle_sleep_s=idle_sleep_s)
        self.alliance = alliance
        self.backoff = backoff
        self.pause_after = pause_after
        self.timeout_s = timeout_s
        self.transport = transport
        self._secrets: dict[str, tuple[str, str]] = {}
        # One client per endpoint (its connection kept open); an endpoint is served by one
        # thread at a time, so a client is never used by two at once.
        self._clients: dict[str, httpx.Client] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def process_once(self) -> int:
        with self.alliance.store.read_session() as s:
            endpoints = [(ep.id, ep.url, ep.secret_fingerprint, ep.secret_enc)
                         for ep in repos.active_endpoints(s)]
        if not endpoints:
            return 0
        for eid, _, fp, enc in endpoints:
            known = self._secrets.get(eid)
            if known is None or known[0] != fp:
                self._secrets[eid] = (fp, self.alliance.master_key.decrypt(enc).decode())
        if len(endpoints) == 1:
            return self._serve(endpoints[0][0], endpoints[0][1])
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="webhook")
            futures = [self._pool.submit(self._serve, eid, url) for eid, url, _, _ in endpoints]
        return sum(f.result() for f in futures)

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _serve(self, endpoint_id: str, url: str) -> int:
        """Deliver the endpoint's due deliveries in order until one fails or none is due;
        give how many attempts were made."""
        attempts = 0
        secret = self._secrets[endpoint_id][1]
        while attempts < PER_ROUND:
            with self.alliance.store.read_session() as s:
                page = [(d.event_seq, d.next_at, ev.id, body_of(ev))
                        for d, ev in repos.pending(s, endpoint_id, PAGE)]
            if not page:
                return attempts
            outcomes: list[tuple[int, delivery.Attempt]] = []
            for seq, next_at, event_id, body in page:
                if next_at is not None and next_at > utcnow():
                    break
                attempt = self._attempt(endpoint_id, url, secret, event_id, body)
                outcomes.append((seq, attempt))
                if not attempt.ok:
                    break
            attempts += len(outcomes)
            if not outcomes or not self._record(endpoint_id, outcomes) \
                    or len(outcomes) < len(page):
                return attempts
        return attempts

    def _attempt(self, endpoint_id: str, url: str, secret: str, event_id: str, body: bytes
                 ) -> delivery.Attempt:
        try:
            # Checked again before every attempt: a name may resolve elsewhere by now.
            delivery.validate_url(url, api_port=self.alliance.settings.api_port,
                                  allow_private=self.alliance.settings.webhooks_allow_private)
        except LedgerValidationError as exc:
            return delivery.Attempt(False, None, f"refused: {exc.message}", 0.0)
        client = self._clients.get(endpoint_id)
        if client is None:
            client = self._clients[endpoint_id] = delivery.new_client(self.timeout_s,
                                                                      self.transport)
        return delivery.deliver(url, secret=secret, event_id=event_id, body=body,
                                timeout_s=self.timeout_s, client=client)

    def _record(self, endpoint_id: str, outcomes: list[tuple[int, delivery.Attempt]]
                ) -> bool:
        """Store what a run of attempts gave, in one transaction (a run is successes and at
        most one failure, its last); True if the endpoint may go on to its next event."""
        now = utcnow()
        go_on = False
        with self.alliance.store.session() as s:
            ep = repos.endpoint(s, endpoint_id)
            if ep is None:
                return False
            for seq, attempt in outcomes:
                d = repos.delivery(s, endpoint_id, seq)
                if d is None:
                    continue
                d.attempts += 1
                d.last_status = attempt.status
                d.last_error = None if attempt.error is None else attempt.error[:300]
                if d.state != DeliveryState.PENDING:
                    go_on = False  # withdrawn meanwhile (a reorg): nothing more to do with it
                    continue
                if attempt.ok:
                    d.state = DeliveryState.DELIVERED
                    d.delivered_at = now
                    d.next_at = None
                    ep.failures = 0
                    go_on = ep.status == EndpointStatus.ACTIVE
                    continue
                go_on = False
                ep.failures += 1
                d.next_at = now + timedelta(seconds=self.backoff(ep.failures))
                if ep.failures >= self.pause_after and ep.status == EndpointStatus.ACTIVE:
                    ep.status = EndpointStatus.PAUSED
                    ep.paused_at = now
                    ep.paused_reason = (f"{ep.failures} failed deliveries in a row; last: "
                                        f"{attempt.error or attempt.status}")[:500]
                    log.warning("webhook %s of merchant %d paused after %d failed deliveries "
                                "in a row (last: %s); the merchant resumes it with POST "
                                "/v1/webhooks/%s/resume", ep.id, ep.merchant_id, ep.failures,
                                attempt.error, ep.id)
        return go_on
