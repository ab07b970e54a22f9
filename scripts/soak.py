"""The soak (issue 14): a steady load of signed issue requests for a given time through the
production shape (PostgreSQL, ``alliance serve --workers N``, an elected ``alliance worker``,
anvil), set up and torn down as scripts/faults.py does (its Harness and Load), loopback only.

Every ``--sample-s`` it records operations accepted by the API and confirmed on chain (read
from the store), and the resident memory (VmRSS) of the API processes (uvicorn's supervisor
and its workers) and of the worker process. At the end it compares the first ``--first-s``
(default 5 minutes) with the rest: confirmed ops/s (target: the rest >= 0.9x the first) and
memory growth from the end of the first part to the end (target: <= 10%). After the load stops,
every accepted order is looked up in the chain's PointsIssued logs (scripts/faults.py's check):
accepted / confirmed exactly once / lost / doubled, and nonce gaps.

    .venv/bin/python scripts/soak.py --seconds 1800 --rate 5 --clients 8   # the 30 minutes
    .venv/bin/python scripts/soak.py --seconds 120 --first-s 40    # a short check
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from faults import Harness  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from ledger.store.models import Operation, OperationStatus  # noqa: E402


@dataclass(frozen=True)
class Sample:
    t: float
    accepted: int
    confirmed: int
    rss_api_kib: int
    rss_worker_kib: int


def _rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its children (uvicorn's workers), KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _confirmed(h: Harness) -> int:
    with h.alliance.store.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(Operation).where(
            Operation.status == OperationStatus.CONFIRMED)) or 0)


def run(seconds: float, first_s: float, rate: float, clients: int, sample_s: float,
        workers: int, settle_s: float = 180.0) -> int:
    with Harness(rate=rate, clients=clients, api_workers=workers) as h:
        api = h.procs.procs["api"].pid
        worker = h.procs.procs[h.leader].pid
        h.load.start()
        t0 = time.monotonic()
        samples: list[Sample] = []
        print(f"soak: {rate:g} issue requests/s from {clients} clients for {seconds:g} s, "
              f"serve --workers {workers}, PostgreSQL; first part {first_s:g} s", flush=True)
        while (t := time.monotonic() - t0) < seconds:
            time.sleep(min(sample_s, max(0.0, seconds - t)))
            samples.append(Sample(time.monotonic() - t0, len(h.load.snapshot()), _confirmed(h),
                                  _rss_kib(api), _rss_kib(worker)))
            s = samples[-1]
            print(f"  {s.t:7.1f} s  accepted {s.accepted:6d}  confirmed {s.confirmed:6d}  "
                  f"RSS API {s.rss_api_kib / 1024:7.1f} MiB  worker "
                  f"{s.rss_worker_kib / 1024:6.1f} MiB", flush=True)
        h.load.stop()
        # every order the API accepted, read back from the chain's PointsIssued logs
        end = h.check("end (load stopped)", 0.0, quiet=True, settle_s=settle_s)
    print(f"accepted {end.accepted}, confirmed exactly once {end.confirmed}, lost {end.lost}, "
          f"doubled {end.doubled}, nonce gaps {end.nonce_gaps}; retries {h.load.retries}, "
          f"refused {len(h.load.refused)}", flush=True)
    first = [s for s in samples if s.t <= first_s]
    if not first or len(first) == len(samples):
        print("the run is too short to compare a first part with the rest")
        return 1
    a, b = first[-1], samples[-1]
    rate_first = a.confirmed / a.t
    rate_rest = (b.confirmed - a.confirmed) / (b.t - a.t)
    growth_api = b.rss_api_kib / max(a.rss_api_kib, 1) - 1
    growth_worker = b.rss_worker_kib / max(a.rss_worker_kib, 1) - 1
    print(f"confirmed ops/s: first {a.t:.0f} s {rate_first:.1f}, the rest {rate_rest:.1f} "
          f"({rate_rest / max(rate_first, 1e-9):.2f}x; target >= 0.9x)")
    print(f"RSS from {a.t:.0f} s to the end: API {growth_api:+.1%}, worker {growth_worker:+.1%} "
          "(target <= +10%)")
    ok = (rate_rest >= 0.9 * rate_first and growth_api <= 0.10 and growth_worker <= 0.10
          and end.lost == 0 and end.doubled == 0 and end.nonce_gaps == 0)
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=1800.0)
    p.add_argument("--first-s", type=float, default=300.0)
    p.add_argument("--rate", type=float, default=20.0, help="issue requests per second")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--sample-s", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=2, help="API processes")
    a = p.parse_args()
    return run(a.seconds, a.first_s, a.rate, a.clients, a.sample_s, a.workers)


if __name__ == "__main__":
    sys.exit(main())
