"""Webhooks end to end on anvil + SQLite: points issued on chain become one webhook event per
merchant (stable id, chain order), delivered to a receiver on a loopback port that fails the
first attempts, across a service restart that loses an acknowledged attempt: every event
reaches the receiver, each id once after de-duplication, in order, signed with the
endpoint's secret. A failing endpoint is paused (API status + log line) and resumed."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_account import Account

from api.auth import sign as request_signature
from ledger.alliance import Alliance
from ledger.merchants.service import AdmittedMerchant
from ledger.points.service import order_ref, request_issue
from ledger.runtime import indexer, outbox_worker
from ledger.settings import Settings
from ledger.types import MerchantId
from ledger.webhooks import delivery, service
from ledger.webhooks.worker import WebhookWorker
from tests.servers import free_port


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The session's settings with loopback receivers allowed (tests only)."""
    return settings.model_copy(update={"webhooks_allow_private": True})


class Receiver:
    """A merchant's receiver on a loopback port: fails the first ``fail_first`` requests
    (HTTP 500), answers 200 after; keeps every request."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.always_fail = False
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
                    failing = receiver.always_fail or len(receiver.requests) <= \
                        receiver.fail_first
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alliance/hooks?shop=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def unique_ids(self) -> list[str]:
        """Event ids in the order first received (the receiver's de-duplication)."""
        seen: list[str] = []
        for _, headers, _ in self.requests:
            if headers["X-Alliance-Event-Id"] not in seen:
                seen.append(headers["X-Alliance-Event-Id"])
        return seen


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


class Crash(Exception):
    """The process died (between the receiver's 2xx and the store's record of it)."""


class CrashingWorker(WebhookWorker):
    """A worker whose process dies right after its ``crash_on``-th acknowledged delivery."""

    def __init__(self, alliance: Alliance, crash_on: int, **kw: Any) -> None:
        super().__init__(alliance, **kw)
        self.crash_on = crash_on
        self.acknowledged = 0

    def _record(self, endpoint_id: str, outcomes: list[tuple[int, delivery.Attempt]]
                ) -> bool:
        self.acknowledged += sum(1 for _, a in outcomes if a.ok)
        if self.acknowledged >= self.crash_on:
            raise Crash
        return super()._record(endpoint_id, outcomes)


def _issue(alliance: Alliance, merchant: AdmittedMerchant, orders: list[str]) -> None:
    member = Account.create().address
    with alliance.store.session() as s:
        for i, order in enumerate(orders):
            request_issue(alliance, s, merchant_id=merchant.merchant_id, member=member,
                          points=10 + i, order_id=order)
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()


def _until(check: Callable[[], bool], step: Callable[[], object], timeout_s: float = 30.0
           ) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        step()
        time.sleep(0.01)


def _log(alliance: Alliance, merchant_id: MerchantId, endpoint_id: str
         ) -> list[service.DeliveryView]:
    with alliance.store.read_session() as s:
        return service.deliveries(s, merchant_id=merchant_id, endpoint_id=endpoint_id,
                                  limit=500).deliveries


def test_every_event_is_delivered_once_by_id_in_order_after_failures_and_a_restart(
        alliance: Alliance, store_merchant: AdmittedMerchant, settings: Settings,
        receiver: Receiver) -> None:
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        made = service.create_endpoint(alliance, s, merchant_id=mid, url=receiver.url,
                                       events=["points.issued"])
    orders = [f"WH-{i}" for i in range(6)]
    _issue(alliance, store_merchant, orders)
    log = _log(alliance, mid, made.endpoint.id)
    assert [d.type for d in log] == ["points.issued"] * 6
    assert all(d.state == "pending" for d in log)
    ids = [d.event_id for d in log]
    assert len(set(ids)) == 6

    # The receiver fails its first three requests; the process dies after the receiver
    # acknowledged the first run of deliveries (all six), before storing their outcomes.
    receiver.fail_first = 3
    first = CrashingWorker(alliance, crash_on=1, backoff=lambda n: 0.01)
    with pytest.raises(Crash):
        _until(lambda: False, first.process_once)
    log = _log(alliance, mid, made.endpoint.id)
    assert [d.state for d in log] == ["pending"] * 6
    assert log[0].attempts == 3 and log[0].last_status == 500  # three failures stored

    # The service restarts: a new process on the same store.
    again = Alliance.open(settings)
    try:
        second = WebhookWorker(again, backoff=lambda n: 0.01)
        _until(lambda: all(d.state == "delivered" for d in _log(again, mid, made.endpoint.id)),
               second.process_once)
        second.stop()
    finally:
        again.close()

    got = receiver.unique_ids()
    assert got == ids  # every event, each id once after de-duplication, in chain order
    # 3 failures, 6 acknowledgements lost with the process, the 6 events again.
    assert len(receiver.requests) == 3 + 6 + 6
    refs = [json.loads(body)["data"]["order_ref"] for _, _, body in receiver.requests[3:]]
    expected = ["0x" + order_ref(o).hex() for o in orders]
    assert list(dict.fromkeys(refs)) == expected
    for path, headers, body in receiver.requests:
        payload = json.loads(body)
        assert payload["id"] == headers["X-Alliance-Event-Id"]
        assert payload["type"] == "points.issued" and payload["merchant_id"] == mid
        # The merchant verifies with its endpoint's secret and the requests' own verifier.
        assert headers["X-Alliance-Signature"] == request_signature(
            made.secret, headers["X-Alliance-Timestamp"], payload["id"], "POST", path, body)


def test_a_failing_endpoint_is_paused_and_told_then_resumed(
        alliance: Alliance, store_merchant: AdmittedMerchant, receiver: Receiver,
        caplog: pytest.LogCaptureFixture) -> None:
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        made = service.create_endpoint(alliance, s, merchant_id=mid, url=receiver.url,
                                       events=["*"])
    _issue(alliance, store_merchant, ["P-1", "P-2"])
    receiver.always_fail = True
    worker = WebhookWorker(alliance, backoff=lambda n: 0.0, pause_after=3)
    with caplog.at_level(logging.WARNING, logger="ledger.webhooks.worker"):
        _until(lambda: _status(alliance, mid, made.endpoint.id).status == "paused",
               worker.process_once)
    paused = _status(alliance, mid, made.endpoint.id)
    assert paused.failures == 3 and "HTTP 500" in (paused.paused_reason or "")
    assert paused.pending == 2
    assert any(made.endpoint.id in r.getMessage() and "paused" in r.getMessage()
               for r in caplog.records)
    # Paused: nothing more is attempted.
    assert worker.process_once() == 0 and len(receiver.requests) == 3

    receiver.always_fail = False
    with alliance.store.session() as s:
        service.resume_endpoint(s, merchant_id=mid, endpoint_id=made.endpoint.id)
    worker.drain()
    log = _log(alliance, mid, made.endpoint.id)
    assert [d.state for d in log] == ["delivered", "delivered"]
    assert receiver.unique_ids() == [d.event_id for d in log]
    assert _status(alliance, mid, made.endpoint.id).failures == 0


def test_replay_sends_again_from_an_event_in_order(
        alliance: Alliance, store_merchant: AdmittedMerchant, receiver: Receiver) -> None:
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        made = service.create_endpoint(alliance, s, merchant_id=mid, url=receiver.url,
                                       events=["points.issued"])
    _issue(alliance, store_merchant, ["R-1", "R-2", "R-3"])
    worker = WebhookWorker(alliance)
    worker.drain()
    ids = [d.event_id for d in _log(alliance, mid, made.endpoint.id)]
    with alliance.store.session() as s:
        assert service.replay(s, merchant_id=mid, endpoint_id=made.endpoint.id,
                              from_event_id=ids[1]) == 2
    worker.drain()
    sent = [h["X-Alliance-Event-Id"] for _, h, _ in receiver.requests]
    assert sent == ids + ids[1:]


def _status(alliance: Alliance, mid: MerchantId, endpoint_id: str) -> service.EndpointView:
    with alliance.store.read_session() as s:
        return service.get_endpoint(s, merchant_id=mid, endpoint_id=endpoint_id)
