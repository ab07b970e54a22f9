"""Webhook benchmark: deliveries per second of the webhook worker, next to what the same
loopback receiver takes from plain POSTs, measured in one run on a fresh local anvil.

- N point issues (batches of 200) are indexed into N webhook events for one endpoint (and the
  indexer's time with the webhook projection writing them is printed);
- the worker delivers them (in order, one in flight per endpoint, each attempt's outcome
  stored before the next): deliveries/s, for 1 endpoint and for 4 endpoints side by side;
- references: the same signed POST through ``delivery.deliver`` alone (a new connection per
  delivery, no store), and plain keep-alive POSTs of the same body (the receiver's ceiling).

Usage: .venv/bin/python scripts/bench_webhooks.py [--events 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from eth_utils.address import to_checksum_address

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
from ledger.points.service import IssueLine, request_issue_batch  # noqa: E402
from ledger.runtime import indexer, outbox_worker  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.webhooks import delivery, service  # noqa: E402
from ledger.webhooks.worker import WebhookWorker  # noqa: E402


class Receiver:
    """A loopback receiver answering 204 at once; counts what it got."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.count += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000)
    args = ap.parse_args()
    n = args.events
    with tempfile.TemporaryDirectory(prefix="alliance-bench-wh-") as tmp:
        settings = Settings(data_dir=Path(tmp), webhooks_allow_private=True,
                            max_batch_items=1000)
        receivers = [Receiver() for _ in range(4)]
        try:
            alliance = Alliance.open(settings)
            m = admit_merchant(alliance, name="Bench Store", symbol="BNCH", rate=1)
            with alliance.store.session() as s:
                hooks = [service.create_endpoint(alliance, s, merchant_id=m.merchant_id,
                                                 url=r.url, events=["points.issued"])
                         for r in receivers]
                for h in hooks[1:]:
                    service.delete_endpoint(s, merchant_id=m.merchant_id,
                                            endpoint_id=h.endpoint.id)
            for start in range(0, n, 200):
                with alliance.store.session() as s:
                    request_issue_batch(alliance, s, merchant_id=m.merchant_id, items=[
                        IssueLine(points=10, order_id=f"wh-{i}",
                                  member=to_checksum_address(os.urandom(20)))
                        for i in range(start, min(n, start + 200))])
            outbox_worker(alliance).drain(timeout_s=600)
            t0 = time.perf_counter()
            indexer(alliance).catch_up(timeout_s=600)
            indexed = time.perf_counter() - t0
            print(f"indexer: {n} issues read and {n} webhook events written in {indexed:.2f} s"
                  f" ({n / indexed:,.0f} events/s)")

            worker = WebhookWorker(alliance, idle_sleep_s=0.01)
            t0 = time.perf_counter()
            worker.drain(timeout_s=600)
            one = time.perf_counter() - t0
            assert receivers[0].count == n, receivers[0].count
            print(f"webhook worker, 1 endpoint: {n} deliveries in {one:.2f} s = "
                  f"{n / one:,.0f} deliveries/s (in order, one in flight)")

            # 4 endpoints side by side: the same events replayed to each.
            with alliance.store.session() as s:
                first = service.deliveries(s, merchant_id=m.merchant_id,
                                           endpoint_id=hooks[0].endpoint.id, limit=1)
                eid = first.deliveries[0].event_id
                for h in hooks[1:]:
                    row = s.get(service.repos.WebhookEndpoint, h.endpoint.id)
                    assert row is not None
                    row.status, row.deleted_at = "active", None
                for h in hooks:
                    service.replay(s, merchant_id=m.merchant_id, endpoint_id=h.endpoint.id,
                                   from_event_id=eid)
            t0 = time.perf_counter()
            worker.drain(timeout_s=600)
            four = time.perf_counter() - t0
            worker.stop()
            print(f"webhook worker, 4 endpoints: {4 * n} deliveries in {four:.2f} s = "
                  f"{4 * n / four:,.0f} deliveries/s")

            body = b'{"data":{"points":10},"id":"evt_' + b"0" * 32 + b'","type":"points.issued"}'
            k = min(n, 1000)
            t0 = time.perf_counter()
            for i in range(k):
                delivery.deliver(receivers[0].url, secret="s", event_id=f"e{i}", body=body)
            ref = k / (time.perf_counter() - t0)
            with httpx.Client() as client:
                t0 = time.perf_counter()
                for _ in range(k):
                    client.post(receivers[0].url, content=body)
                raw = k / (time.perf_counter() - t0)
            print(f"reference: delivery.deliver alone (signed, a new connection each, no store) "
                  f"{ref:,.0f}/s; keep-alive POSTs to the same receiver {raw:,.0f}/s; the "
                  f"worker's 1 endpoint = {n / one / ref:.2f}x of deliver alone")
        finally:
            for r in receivers:
                r.server.shutdown()
            anvil.stop(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
