"""CPU and wall time of one secp256k1 recovery and one recoverable signing, coincurve's cffi
calls (which let the GIL go around each C call) against ``ledger.chain.secp`` (the same
library, called holding the GIL), alone and beside busy Python threads.

    ./.venv/bin/python scripts/bench_secp.py [--n 3000] [--busy 2] [--rounds 3]

CPU is the measuring thread's own (``time.thread_time``); wall is per operation too. Each
figure is the median of ``--rounds`` rounds, ways alternated within a round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable

import coincurve

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ledger.chain import secp  # noqa: E402


def _time(op: Callable[[int], object], n: int) -> tuple[float, float]:
    """(CPU us, wall us) per call of ``op(i)`` for i < n."""
    c0, w0 = time.thread_time(), time.perf_counter()
    for i in range(n):
        op(i)
    return ((time.thread_time() - c0) / n * 1e6, (time.perf_counter() - w0) / n * 1e6)


def _spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="operations per measurement")
    ap.add_argument("--busy", type=int, default=2, help="busy Python threads beside it")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print("loadavg", open("/proc/loadavg").read().strip())  # noqa: T201
    print("library called holding the GIL:", secp.HOLDS_GIL)  # noqa: T201

    secret = (0x1234567).to_bytes(32, "big")
    key = coincurve.PrivateKey(secret)
    digests = [i.to_bytes(4, "big") * 8 for i in range(args.n)]
    sigs = [key.sign_recoverable(d, hasher=None) for d in digests]

    def cc_recover(i: int) -> object:
        return coincurve.PublicKey.from_signature_and_message(
            sigs[i], digests[i], hasher=None).format(compressed=False)

    def gil_recover(i: int) -> object:
        return secp.recover_public_key(digests[i], sigs[i][:64], sigs[i][64])

    def cc_sign(i: int) -> object:
        return key.sign_recoverable(digests[i], hasher=None)

    def gil_sign(i: int) -> object:
        return secp.sign_recoverable(digests[i], secret)

    ops = {"recover": (cc_recover, gil_recover), "sign": (cc_sign, gil_sign)}
    results: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for busy in (0, args.busy):
        stop = threading.Event()

        threads = [threading.Thread(target=_spin, args=(stop,), daemon=True)
                   for _ in range(busy)]
        for t in threads:
            t.start()
        try:
            where = "alone" if busy == 0 else f"beside {busy} busy"
            for r in range(args.rounds):
                for name, (cc, gil) in ops.items():
                    order = [("coincurve", cc), ("held", gil)]
                    if r % 2:
                        order.reverse()
                    for way, op in order:
                        results.setdefault((name, where, way), []).append(_time(op, args.n))
        finally:
            stop.set()
            for t in threads:
                t.join()

    for name in ops:
        for where in ("alone", f"beside {args.busy} busy"):
            cc = results[(name, where, "coincurve")]
            gil = results[(name, where, "held")]
            cc_cpu, gil_cpu = (statistics.median(c for c, _ in x) for x in (cc, gil))
            cc_wall, gil_wall = (statistics.median(w for _, w in x) for x in (cc, gil))
            print(f"{name:8} {where:15} CPU us/op coincurve {cc_cpu:7.1f}  held {gil_cpu:7.1f}"  # noqa: T201
                  f"  ratio {gil_cpu / cc_cpu:5.2f}x | wall us/op coincurve {cc_wall:8.1f}"
                  f"  held {gil_wall:8.1f}  ratio {gil_wall / cc_wall:5.2f}x")


if __name__ == "__main__":
    main()
