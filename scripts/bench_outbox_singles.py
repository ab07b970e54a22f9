"""The outbox's CPU per single operation: one-line issues queued one by one at a fixed rate.

``bench_http.py`` sends single signed requests, each queuing one operation; the outbox
worker's CPU per request moved between 0.5 and 2.3 ms from run to run of the same tree. The
worker's cost is per round and per transaction much more than per operation, so what it
costs an operation is set by how many operations a transaction carries, which is set by how
often the worker goes round while operations trickle in. This script feeds single issue
operations into the outbox at ``--rate`` per second for ``--seconds`` (queued from the main
thread, the worker in its own thread, as in a service process; the payloads the worker would
find held in its process are dropped, as operations queued by the API's processes are
parsed from their column), on a fresh anvil, and prints per rate: the worker thread's CPU
per operation, operations per transaction, rounds, and the time from queued to confirmed
(median and p99).

Usage: .venv/bin/python scripts/bench_outbox_singles.py [--rates 100,300,600] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_points import bench_settings, new_members  # noqa: E402

from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.merchants.clients import ProgramConfig  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
from ledger.outbox import repos as outbox_repos  # noqa: E402
from ledger.outbox.worker import OutboxWorker  # noqa: E402
from ledger.points.service import request_issue  # noqa: E402
from ledger.runtime import merchant_signers, operation_kinds  # noqa: E402
from ledger.types import MerchantId  # noqa: E402


def thread_cpu_s(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process (/proc)."""
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_rate(alliance: Alliance, merchant_id: int, rate: float, seconds: float, tag: str
             ) -> dict[str, float]:
    queued_at: dict[str, float] = {}
    done_at: dict[str, float] = {}
    rounds = [0]

    class TimedWorker(OutboxWorker):
        def step(self) -> int:
            rounds[0] += 1
            return super().step()

        def _confirmed(self, op_ids: list[str]) -> None:
            now = time.perf_counter()
            for i in op_ids:
                done_at[i] = now

    worker = TimedWorker(alliance, registry=operation_kinds(),
                         signer_for=merchant_signers(alliance))
    worker.recover()
    with alliance.store.session() as s:
        first_tx = len(outbox_repos.confirmed_transactions(s, merchant_id=merchant_id))
    worker.start()
    assert worker._thread is not None
    tid = worker._thread.native_id
    assert tid is not None
    held = getattr(outbox_repos, "QUEUED_PAYLOADS", None)  # (None: code before it)
    members = new_members(int(rate * seconds) + 1)
    c0 = thread_cpu_s(tid)
    t0 = time.perf_counter()
    n = 0
    while n < len(members) - 1:
        due = t0 + n / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        with alliance.store.session() as s:
            op = request_issue(alliance, s, merchant_id=MerchantId(merchant_id),
                               member=members[n], points=5, order_id=f"s{tag}-{n}")
        queued_at[op.id] = time.perf_counter()
        if held is not None:
            held.take(op.id, "issue")  # as if queued by another process (an API process)
        n += 1
    deadline = time.monotonic() + 60
    while len(done_at) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    cpu = thread_cpu_s(tid) - c0
    worker.stop()
    with alliance.store.session() as s:
        txs = len(outbox_repos.confirmed_transactions(s, merchant_id=merchant_id)) - first_tx
    lat = sorted(done_at[i] - queued_at[i] for i in queued_at if i in done_at)
    return {"ops": n, "confirmed": len(lat), "cpu_us": cpu / n * 1e6, "txs": txs,
            "rounds": rounds[0], "p50_ms": lat[len(lat) // 2] * 1e3 if lat else 0.0,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1e3 if lat else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100,300,600")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alliance-bench-") as tmp:
        settings = bench_settings(Path(tmp), 200)
        try:
            alliance = Alliance.open(settings)
            m = admit_merchant(alliance, name="Bench Department Store", symbol="BNCH", rate=1,
                               config=ProgramConfig(30 * 86400, 12, 7))
            for r in (float(x) for x in args.rates.split(",")):
                res = run_rate(alliance, m.merchant_id, r, args.seconds, tag=f"{r:g}")
                print(f"{r:,.0f} single ops/s for {args.seconds:g} s (load "
                      f"{os.getloadavg()[0]:.2f}): outbox thread {res['cpu_us']:,.0f} us CPU "
                      f"an op; {res['ops'] / max(res['txs'], 1):.1f} ops a transaction "
                      f"({res['txs']} transactions, {res['rounds']:,} rounds); queued to "
                      f"confirmed p50 {res['p50_ms']:.0f} ms, p99 {res['p99_ms']:.0f} ms; "
                      f"{res['confirmed']}/{res['ops']} confirmed", flush=True)
        finally:
            anvil.stop(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
