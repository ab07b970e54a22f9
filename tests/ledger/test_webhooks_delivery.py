"""Webhook deliveries against a real receiver on a loopback port: signed as our requests are
(one verifier serves both), bounded in time and size, never redirected, and sent only where
the URL check allows."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from api.auth import sign as request_signature
from ledger.errors import LedgerValidationError
from ledger.webhooks import delivery
from tests.servers import free_port

SECRET = "whsec-test"


class Receiver:
    """A loopback HTTP receiver whose next answers the test scripts."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.answer: tuple[int, bytes, float, dict[str, str]] = (200, b"ok", 0.0, {})
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((self.path, dict(self.headers.items()), body))
                status, payload, delay, extra = receiver.answer
                time.sleep(delay)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alliance?m=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def test_a_delivery_is_signed_as_our_requests_are_and_carries_a_stable_event_id(
        receiver: Receiver) -> None:
    body = b'{"type":"points.issued","amount":5}'
    attempt = delivery.deliver(receiver.url, secret=SECRET, event_id="evt_0xabc:3", body=body)
    assert attempt.ok and attempt.status == 200
    path, headers, got = receiver.received[0]
    assert got == body and headers["X-Alliance-Event-Id"] == "evt_0xabc:3"
    # The merchant verifies it with the very function that verifies its own requests.
    expected = request_signature(SECRET, headers["X-Alliance-Timestamp"], "evt_0xabc:3", "POST",
                                 path, body)
    assert headers["X-Alliance-Signature"] == expected
    again = delivery.deliver(receiver.url, secret=SECRET, event_id="evt_0xabc:3", body=body)
    assert again.ok and receiver.received[1][1]["X-Alliance-Event-Id"] == "evt_0xabc:3"


def test_failures_are_attempts_that_say_why(receiver: Receiver) -> None:
    receiver.answer = (500, b"boom", 0.0, {})
    failed = delivery.deliver(receiver.url, secret=SECRET, event_id="e1", body=b"{}")
    assert not failed.ok and failed.status == 500 and failed.error == "HTTP 500"
    receiver.answer = (200, b"x" * (delivery.MAX_RESPONSE_BYTES + 1), 0.0, {})
    big = delivery.deliver(receiver.url, secret=SECRET, event_id="e2", body=b"{}")
    assert not big.ok and "larger than" in (big.error or "")
    receiver.answer = (200, b"late", 1.5, {})
    slow = delivery.deliver(receiver.url, secret=SECRET, event_id="e3", body=b"{}",
                            timeout_s=0.5)
    assert not slow.ok and slow.elapsed_s < 1.4
    # A redirect is not followed (it could lead to what the URL check refuses).
    receiver.answer = (302, b"", 0.0, {"Location": "http://169.254.169.254/latest"})
    moved = delivery.deliver(receiver.url, secret=SECRET, event_id="e4", body=b"{}")
    assert not moved.ok and moved.status == 302 and len(receiver.received) == 4
    closed = delivery.deliver(f"http://127.0.0.1:{free_port()}/", secret=SECRET,
                              event_id="e5", body=b"{}")
    assert not closed.ok and closed.status is None and "cannot deliver" in (closed.error or "")


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:8000/v1/admin/merchants", "own API"),
    ("http://localhost:8000/v1/admin/clearing/close", "own API"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
    ("http://metadata.google.internal/computeMetadata", "metadata"),
    ("ftp://example.org/x", "https"),
    ("https://user:pw@example.org/x", "credentials"),
    ("http://10.1.2.3/hook", "private address"),
    ("http://127.0.0.1:9999/hook", "private address"),
])
def test_urls_the_service_must_not_call_are_refused(url: str, why: str) -> None:
    with pytest.raises(LedgerValidationError) as info:
        delivery.validate_url(url, api_port=8000)
    assert why in info.value.message


def test_a_receiver_inside_the_network_is_allowed_when_the_operator_allows_it() -> None:
    assert delivery.validate_url("http://127.0.0.1:9999/hook", api_port=8000,
                                 allow_private=True)
    with pytest.raises(LedgerValidationError):
        delivery.validate_url("http://127.0.0.1:8000/hook", api_port=8000, allow_private=True)


def test_retries_back_off_and_a_failing_endpoint_is_paused() -> None:
    delays = [delivery.retry_delay(n) for n in range(1, 6)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert delivery.retry_delay(40) == delivery.BACKOFF_CAP_S
    assert not delivery.should_pause(delivery.PAUSE_AFTER - 1)
    assert delivery.should_pause(delivery.PAUSE_AFTER)
