"""Webhook deliveries, one at a time: where a merchant may ask us to send, how a delivery is
signed, sent and bounded, and when the next attempt is due.

What is here: URL validation (no delivery to the service's own loopback API, to link-local
or cloud-metadata addresses, to private networks unless allowed, or through credentials in
the URL), the signature (the same HMAC scheme as our merchants' requests, with the event id
in the nonce's place, so one verifier serves both), a bounded POST (timeout, no redirects,
response read up to a size limit) and the backoff schedule.

Endpoints, events and the delivery log are in :mod:`ledger.webhooks.repos`, what the API
calls in :mod:`ledger.webhooks.service`, the events' source in
:mod:`ledger.webhooks.projection` and the deliveries' loop in :mod:`ledger.webhooks.worker`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..errors import LedgerValidationError

# A response is read up to this many bytes; more is a failed delivery (a receiver that
# streams back megabytes must not tie a worker up).
MAX_RESPONSE_BYTES = 64 * 1024
TIMEOUT_S = 5.0
# Attempt n (0 = the first retry) waits BACKOFF_BASE_S * 2**n, at most BACKOFF_CAP_S.
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 3600.0
# After this many failed attempts in a row the endpoint is paused and the merchant told.
PAUSE_AFTER = 8

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})


def canonical(ts: str, event_id: str, path: str, body: bytes) -> bytes:
    """What a delivery's signature covers: the request scheme's canonical form with the
    event id as the nonce (``<ts>\\n<event id>\\nPOST\\n<path?query>\\n<sha256(body)>``)."""
    return f"{ts}\n{event_id}\nPOST\n{path}\n{hashlib.sha256(body).hexdigest()}".encode()


def signature(secret: str, ts: str, event_id: str, path: str, body: bytes) -> str:
    return hmac.new(secret.encode(), canonical(ts, event_id, path, body),
                    hashlib.sha256).hexdigest()


def headers(secret: str, url: str, event_id: str, body: bytes, *, now: int | None = None
            ) -> dict[str, str]:
    """The headers of one delivery: the event id (stable across retries, for the receiver's
    de-duplication), the time and the signature."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    ts = str(int(time.time()) if now is None else now)
    return {"Content-Type": "application/json", "X-Alliance-Event-Id": event_id,
            "X-Alliance-Timestamp": ts,
            "X-Alliance-Signature": signature(secret, ts, event_id, path, body)}


def validate_url(url: str, *, api_port: int, allow_private: bool = False) -> str:
    """The URL if deliveries may go there, else :class:`LedgerValidationError`.

    Every address the host resolves to is checked (a name that resolves to loopback is
    loopback): never the service's own API port on a loopback address, never link-local
    (cloud metadata at 169.254.169.254), multicast or unspecified addresses; private and
    loopback addresses only with ``allow_private`` (a receiver inside the alliance's network,
    or a test's)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise LedgerValidationError("a webhook URL is https (or http)", field="url")
    if parts.username or parts.password:
        raise LedgerValidationError("a webhook URL carries no credentials", field="url")
    host = parts.hostname
    if not host or host.lower() in METADATA_HOSTS:
        raise LedgerValidationError("a webhook URL needs a host that is not a metadata service",
                                    field="url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (ValueError, OSError) as exc:
        raise LedgerValidationError(f"the webhook host cannot be resolved: {exc}",
                                    field="url") from exc
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if addr.is_loopback and port == api_port:
            raise LedgerValidationError("a webhook cannot target this service's own API",
                                        field="url")
        if addr.is_link_local or addr.is_multicast or addr.is_unspecified or addr.is_reserved:
            raise LedgerValidationError(f"a webhook cannot target {addr}", field="url")
        if (addr.is_private or addr.is_loopback) and not allow_private:
            raise LedgerValidationError(f"a webhook cannot target the private address {addr}",
                                        field="url")
    return url


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt gave: ``ok`` on any 2xx read within the limits."""

    ok: bool
    status: int | None
    error: str | None
    elapsed_s: float


def deliver(url: str, *, secret: str, event_id: str, body: bytes,
            timeout_s: float = TIMEOUT_S, max_response_bytes: int = MAX_RESPONSE_BYTES,
            transport: httpx.BaseTransport | None = None,
            client: httpx.Client | None = None) -> Attempt:
    """POST one event, signed; never follows redirects (a redirect could lead anywhere the
    URL check refused) and reads at most ``max_response_bytes`` of the answer.

    ``client``: a client to reuse (the worker keeps one per endpoint: its connection stays
    open between deliveries, and building a client costs more than a delivery, ~0.15 s on a
    loaded machine, for its TLS context); made with :func:`new_client`."""
    started = time.monotonic()
    own = client is None
    http = new_client(timeout_s, transport) if client is None else client
    try:
        with http.stream("POST", url, content=body, timeout=timeout_s,
                         follow_redirects=False,
                         headers=headers(secret, url, event_id, body)) as resp:
            read = 0
            for chunk in resp.iter_raw():
                read += len(chunk)
                if read > max_response_bytes:
                    return Attempt(False, resp.status_code,
                                   f"response larger than {max_response_bytes} bytes",
                                   time.monotonic() - started)
                if time.monotonic() - started > timeout_s:
                    return Attempt(False, resp.status_code, "response too slow",
                                   time.monotonic() - started)
            ok = 200 <= resp.status_code < 300
            return Attempt(ok, resp.status_code, None if ok else f"HTTP {resp.status_code}",
                           time.monotonic() - started)
    except httpx.TimeoutException:
        return Attempt(False, None, f"no answer within {timeout_s} s",
                       time.monotonic() - started)
    except httpx.HTTPError as exc:
        return Attempt(False, None, f"cannot deliver: {exc}", time.monotonic() - started)
    finally:
        if own:
            http.close()


def new_client(timeout_s: float = TIMEOUT_S,
               transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A client for deliveries: the timeout, no redirects followed."""
    return httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport)


def retry_delay(failures: int) -> float:
    """Seconds before the next attempt after ``failures`` failed ones in a row."""
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** max(0, failures - 1)))


def should_pause(failures: int) -> bool:
    """Whether an endpoint that failed ``failures`` times in a row is paused."""
    return failures >= PAUSE_AFTER
