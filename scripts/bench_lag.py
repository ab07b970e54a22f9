"""Indexer lag under the points benchmark's load, measured in one run on a fresh anvil.

The points benchmark's ledger-layer load (issue operations in batches of 200, sent by the
outbox worker as fast as the chain takes them) runs while the indexer runs as the service
runs it (its worker thread, every projection, the webhook projection writing one event per
issue for a registered endpoint). A sampler reads, every 20 ms, the chain's head and the
block every projection has reached; the lag is head minus the slowest projection's block.

Prints the lag in blocks (p50, p99, max; target <= 1 block), how long a follower round over
a block of the load takes (wall time, and the follower thread's CPU time: the rest is waiting
for the store's writer lock, the node and the GIL the outbox thread holds), and the time lag
(how long after a block is mined the read model reflects it).

Usage: .venv/bin/python scripts/bench_lag.py [--ops 10000] [--no-webhook]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_points import ledger_layer  # noqa: E402

from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.merchants.clients import ProgramConfig  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
from ledger.runtime import indexer, settle_heap  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.webhooks import service as webhooks  # noqa: E402


def pct(values: list[int] | list[float], q: float) -> float:
    s = sorted(values)
    return float(s[min(len(s) - 1, int(q * len(s)))]) if s else 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--no-webhook", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alliance-bench-lag-",
                                     ignore_cleanup_errors=True) as tmp:
        settings = Settings(data_dir=Path(tmp), batch_max=args.batch,
                            max_batch_items=max(1000, args.batch), webhooks_allow_private=True)
        try:
            alliance = Alliance.open(settings)
            m = admit_merchant(alliance, name="Bench Department Store", symbol="BNCH", rate=1,
                               config=ProgramConfig(30 * 86400, 12, 7))
            if not args.no_webhook:
                with alliance.store.session() as s:
                    # Nothing listens there: events and deliveries are written, none sent.
                    webhooks.create_endpoint(alliance, s, merchant_id=m.merchant_id,
                                             url="http://127.0.0.1:9/hooks",
                                             events=["points.issued"])
            follower = indexer(alliance)
            follower.catch_up()
            rounds: list[tuple[float, float]] = []  # (wall, cpu) of rounds that added rows
            sync = follower.sync

            def timed_sync() -> int:
                t, c = time.perf_counter(), time.thread_time()
                added = sync()
                if added:
                    rounds.append((time.perf_counter() - t, time.thread_time() - c))
                return added

            follower.sync = timed_sync  # type: ignore[method-assign]
            gw = alliance.gateway
            lags: list[int] = []
            mined_at: dict[int, float] = {}
            seen_at: dict[int, float] = {}
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    head = gw.block_number()
                    now = time.perf_counter()
                    mined_at.setdefault(head, now)
                    synced = min(follower.synced_blocks().values())
                    seen_at.setdefault(synced, time.perf_counter())
                    lags.append(head - synced)
                    stop.wait(0.02)

            first = gw.block_number()
            settle_heap()  # as Runtime.start does before the service's workers start
            follower.start()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            res = ledger_layer(alliance, m.merchant_id, args.ops, args.batch)
            last = gw.block_number()
            deadline = time.monotonic() + 60
            while min(follower.synced_blocks().values()) < last and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            sampler.join()
            follower.stop()
            blocks = last - first
            per_s = blocks / res["elapsed"]
            time_lags = [seen_at[b] - mined_at[b] for b in mined_at if b in seen_at and b > first]
            print(f"load: {args.ops} issue ops in {res['elapsed']:.2f} s "
                  f"({args.ops / res['elapsed']:,.0f} ops/s), {blocks} blocks "
                  f"({per_s:.1f} blocks/s); webhook projection "
                  f"{'off' if args.no_webhook else 'writing one event per issue'}")
            print(f"indexer lag over {len(lags)} samples: p50 {pct(lags, 0.5):.0f}, p99 "
                  f"{pct(lags, 0.99):.0f}, max {max(lags, default=0)} blocks  (target <= 1 "
                  f"block)")
            if rounds:
                walls = [w for w, _ in rounds]
                cpus = [c for _, c in rounds]
                print(f"follower rounds that added rows: {len(rounds)}, wall p50 "
                      f"{pct(walls, 0.5):.3f} s / max {max(walls):.3f} s, thread CPU p50 "
                      f"{pct(cpus, 0.5):.3f} s / max {max(cpus):.3f} s")
            if time_lags:
                print(f"time lag (block mined -> read model reflects it), over "
                      f"{len(time_lags)} blocks seen both ways: p50 {pct(time_lags, 0.5):.3f} s,"
                      f" p99 {pct(time_lags, 0.99):.3f} s, max {max(time_lags):.3f} s")
        finally:
            anvil.stop(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
