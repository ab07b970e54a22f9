"""Per-merchant fairness: merchant B's median latency alone, and while merchant A bursts
(many concurrent issue requests), against a real uvicorn server on loopback.

    .venv/bin/python scripts/bench_fairness.py [--burst 64] [--seconds 8] [--slots N]

``--slots`` overrides api.guard.MAX_IN_FLIGHT_PER_KEY (0: no per-key cap, as before)."""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn
from eth_account import Account

from api import guard
from api.app import create_app
from api.client import AllianceClient
from ledger.alliance import Alliance
from ledger.chain import anvil
from ledger.merchants.service import admit_merchant
from ledger.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--burst", type=int, default=64, help="A's concurrent clients")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--slots", type=int, default=None)
    args = ap.parse_args()
    if args.slots is not None:
        guard.MAX_IN_FLIGHT_PER_KEY = args.slots or 10**9
    data = Path(tempfile.mkdtemp(prefix="fairness-"))
    settings = Settings(data_dir=data, rate_limit_per_minute=10**7)
    alliance = Alliance.open(settings)
    try:
        a = admit_merchant(alliance, name="Burst Store", symbol="BRST", rate=1)
        b = admit_merchant(alliance, name="Quiet Cafe", symbol="QUIE", rate=1)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        server = uvicorn.Server(uvicorn.Config(create_app(alliance), host="127.0.0.1",
                                               port=port, log_level="warning",
                                               access_log=False))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        member = Account.create().address

        def quiet(seconds: float) -> list[float]:
            out = []
            with httpx.Client(base_url=base, timeout=60) as http:
                client = AllianceClient(http, b.key_id, b.secret)
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    t0 = time.perf_counter()
                    r = client.post("/v1/points/issue", {"member": member, "points": 1,
                                                         "order_id": uuid.uuid4().hex[:20]})
                    assert r.status_code == 202, r.text
                    out.append((time.perf_counter() - t0) * 1000)
            return out

        alone = quiet(args.seconds)
        stop = threading.Event()
        sent = [0]

        def burst() -> None:
            with httpx.Client(base_url=base, timeout=120) as http:
                client = AllianceClient(http, a.key_id, a.secret)
                while not stop.is_set():
                    client.post("/v1/points/issue", {"member": member, "points": 1,
                                                     "order_id": uuid.uuid4().hex[:20]})
                    sent[0] += 1

        threads = [threading.Thread(target=burst) for _ in range(args.burst)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        during = quiet(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        server.should_exit = True
        cap = "none" if guard.MAX_IN_FLIGHT_PER_KEY >= 10**9 else guard.MAX_IN_FLIGHT_PER_KEY
        print(f"per-key in-flight cap: {cap}; A's burst: {args.burst} clients, "
              f"{sent[0] / (args.seconds + 1):.0f} req/s")
        print(f"B median issue latency alone: {statistics.median(alone):.1f} ms "
              f"(n={len(alone)}); during A's burst: {statistics.median(during):.1f} ms "
              f"(n={len(during)}, p90 {statistics.quantiles(during, n=10)[-1]:.1f} ms)")
    finally:
        alliance.close()
        anvil.stop(settings)


if __name__ == "__main__":
    main()
