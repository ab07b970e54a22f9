"""Indexer lag under the points benchmark's load, the indexer in a thread and in a process of
its own side by side, each run on a fresh anvil.

The points benchmark's ledger-layer load (issue operations in batches of 200, sent by the
outbox worker as fast as the chain takes them) runs while the indexer runs as the service
runs it (every projection, the webhook projection writing one event per issue for a
registered endpoint): ``thread``, the follower's thread beside the outbox (woken by the
outbox's receipts), or ``process``, the child process the service starts
(:class:`~ledger.indexer.process.IndexerProcess`, woken by its own look at the head every
20 ms). A sampler reads, every 20 ms, the chain's head and the block every projection has
reached; the lag is head minus the slowest projection's block.

Prints per run the lag in blocks (p50, p99, max; target <= 1 block), the time lag (how long
after a block is seen mined the read model reflects it), the follower rounds that added rows
(wall time and the follower thread's CPU time), and how long each side waited for the SQLite
store's write lock (from asking for a write session to holding BEGIN IMMEDIATE: the outbox's
and the request thread's writes, and the indexer's, which are in another process in
``process`` mode and meet in SQLite's busy handler).

On an instant-mining anvil every transaction is a block of its own: "blocks behind" counts
the sender's transactions, not time. ``--block-time 1`` runs anvil with a block a second and
the outbox in block mode (ALLIANCE_BLOCK_TIME_S), as a production chain (QBFT's 1-2 s block
period): the figure the <= 1 block target means there.

Usage: .venv/bin/python scripts/bench_lag.py [--ops 4000] [--indexer thread,process]
       [--repeat 2] [--block-time 1] [--no-webhook]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_points import ledger_layer  # noqa: E402
from sqlalchemy import event  # noqa: E402

from ledger import indexer_main  # noqa: E402
from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.indexer.follower import Follower  # noqa: E402
from ledger.indexer.process import IndexerProcess  # noqa: E402
from ledger.merchants.clients import ProgramConfig  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
from ledger.runtime import indexer, settle_heap  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.store.db import Store  # noqa: E402
from ledger.webhooks import service as webhooks  # noqa: E402


def pct(values: list[int] | list[float], q: float) -> float:
    s = sorted(values)
    return float(s[min(len(s) - 1, int(q * len(s)))]) if s else 0.0


class _TimedLock:
    """The store's lock of this process's writers, noting how long each acquire waited."""

    def __init__(self, lock: Any, local: threading.local) -> None:
        self._lock = lock
        self._local = local

    def __enter__(self) -> None:
        at = time.perf_counter()
        self._lock.acquire()
        self._local.queued = getattr(self._local, "queued", 0.0) + time.perf_counter() - at

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class Timings:
    """Rounds of a follower that added rows (wall, thread CPU) and write-lock waits per thread
    of one process's store."""

    def __init__(self) -> None:
        self.rounds: list[tuple[float, float]] = []
        self.waits: dict[str, list[float]] = defaultdict(list)

    def time_rounds(self, follower: Follower) -> None:
        sync = follower.sync

        def timed_sync() -> int:
            t, c = time.perf_counter(), time.thread_time()
            added = sync()
            if added:
                self.rounds.append((time.perf_counter() - t, time.thread_time() - c))
            return added

        follower.sync = timed_sync  # type: ignore[method-assign]

    def time_writes(self, store: Store) -> None:
        """Note, per thread, how long each write waited for the write lock: the queue of
        this process's threads (the store's lock), then SQLite's BEGIN IMMEDIATE (its busy
        handler, where a writer in another process is met)."""
        local = threading.local()
        lock = store._write_lock  # noqa: SLF001 - timed, not changed
        if lock is not None:
            store._write_lock = _TimedLock(lock, local)  # type: ignore[assignment]  # noqa: SLF001

        @event.listens_for(store.engine, "before_cursor_execute")
        def _asking(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement == "BEGIN IMMEDIATE":
                local.begin_at = time.perf_counter()

        @event.listens_for(store.engine, "after_cursor_execute")
        def _began(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if statement != "BEGIN IMMEDIATE":
                return
            queued = getattr(local, "queued", 0.0)
            local.queued = 0.0
            self.waits[threading.current_thread().name].append(
                queued + time.perf_counter() - local.begin_at)

    def as_json(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "waits": dict(self.waits)}


def child(stats_path: str) -> int:
    """The indexer process of a ``process`` run: ledger.indexer_main's child with its rounds
    and write waits timed, written to ``stats_path`` when it stops."""
    timings = Timings()

    def ready(follower: Follower) -> None:
        timings.time_writes(follower.alliance.store)
        timings.time_rounds(follower)
        Path(stats_path + ".ready").touch()

    code = indexer_main.child(ready)
    Path(stats_path).write_text(json.dumps(timings.as_json()))
    return code


def one_run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="alliance-bench-lag-",
                                     ignore_cleanup_errors=True) as tmp:
        block_time = args.block_time or None
        settings = Settings(data_dir=Path(tmp), batch_max=args.batch,
                            max_batch_items=max(1000, args.batch), webhooks_allow_private=True,
                            anvil_block_time=block_time, block_time_s=args.block_time)
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
            here = Timings()
            here.time_writes(alliance.store)
            stats_path = str(Path(tmp) / "indexer-stats.json")
            worker: Follower | IndexerProcess
            if mode == "thread":
                here.time_rounds(follower)
                worker = follower
            else:
                worker = IndexerProcess(alliance, indexer(alliance))
                worker.command = [sys.executable, __file__, "--child", stats_path]
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
                    synced = min(worker.synced_blocks().values())
                    seen_at.setdefault(synced, time.perf_counter())
                    lags.append(head - synced)
                    stop.wait(0.02)

            settle_heap()  # as Runtime.start does before the service's workers start
            worker.start()
            if mode == "process":
                deadline = time.monotonic() + 60
                while not Path(stats_path + ".ready").exists():
                    assert time.monotonic() < deadline, "the indexer process did not start"
                    time.sleep(0.05)
            # From the head as it is now (a chain mining on a timer made blocks while the
            # process started): the lag under load, not the start's catch-up.
            deadline = time.monotonic() + 60
            while min(worker.synced_blocks().values()) < gw.block_number():
                assert time.monotonic() < deadline, "the indexer did not reach the head"
                time.sleep(0.01)
            first = gw.block_number()
            sampler = threading.Thread(target=sample, name="sampler", daemon=True)
            sampler.start()
            res = ledger_layer(alliance, m.merchant_id, args.ops, args.batch)
            last = gw.block_number()
            deadline = time.monotonic() + 60
            while min(worker.synced_blocks().values()) < last and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            sampler.join()
            worker.stop()
            timings = here
            if mode == "process":
                found = json.loads(Path(stats_path).read_text())
                timings = Timings()
                timings.rounds = [(float(w), float(c)) for w, c in found["rounds"]]
                timings.waits = defaultdict(list, found["waits"])
                timings.waits.update({k: v for k, v in here.waits.items() if k != "indexer"})
            time_lags = [seen_at[b] - mined_at[b] for b in mined_at if b in seen_at and b > first]
            return {"mode": mode, "ops": args.ops, "elapsed": res["elapsed"],
                    "blocks": last - first, "lags": lags, "time_lags": time_lags,
                    "rounds": timings.rounds, "waits": dict(timings.waits)}
        finally:
            anvil.stop(settings)


def report(r: dict[str, Any], webhook: bool) -> None:
    lags, time_lags, rounds = r["lags"], r["time_lags"], r["rounds"]
    print(f"--- indexer in a {r['mode']}: {r['ops']} issue ops in {r['elapsed']:.2f} s "
          f"({r['ops'] / r['elapsed']:,.0f} ops/s), {r['blocks']} blocks "
          f"({r['blocks'] / r['elapsed']:.1f} blocks/s); webhook projection "
          f"{'writing one event per issue' if webhook else 'off'}")
    print(f"  lag over {len(lags)} samples: p50 {pct(lags, 0.5):.0f}, p99 "
          f"{pct(lags, 0.99):.0f}, max {max(lags, default=0)} blocks  (target <= 1 block)")
    if time_lags:
        print(f"  block mined -> read model, over {len(time_lags)} blocks: p50 "
              f"{pct(time_lags, 0.5):.3f} s, p99 {pct(time_lags, 0.99):.3f} s, max "
              f"{max(time_lags):.3f} s")
    if rounds:
        walls = [w for w, _ in rounds]
        cpus = [c for _, c in rounds]
        print(f"  follower rounds that added rows: {len(rounds)}, wall p50 "
              f"{pct(walls, 0.5):.3f} s / max {max(walls):.3f} s, thread CPU p50 "
              f"{pct(cpus, 0.5):.3f} s / max {max(cpus):.3f} s")
    for who, waits in sorted(r["waits"].items()):
        if waits:
            print(f"  write-lock wait, {who} thread: {len(waits)} writes, p50 "
                  f"{1000 * pct(waits, 0.5):.1f} ms, p99 {1000 * pct(waits, 0.99):.1f} ms, "
                  f"max {1000 * max(waits):.1f} ms")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        return child(sys.argv[2])
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--indexer", default="thread,process",
                    help="comma-separated modes run in this order, each --repeat times, "
                    "alternating (thread, process)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--block-time", type=float, default=0.0,
                    help="seconds between anvil's blocks (0: a block per transaction)")
    ap.add_argument("--no-webhook", action="store_true")
    args = ap.parse_args()
    modes = [m.strip() for m in args.indexer.split(",") if m.strip()]
    assert set(modes) <= {"thread", "process"}, modes
    chain = (f"a block every {args.block_time:g} s" if args.block_time
             else "a block per transaction (instant mining)")
    print(f"chain: anvil, {chain}")
    for _ in range(args.repeat):
        for mode in modes:
            report(one_run(mode, args), not args.no_webhook)
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
