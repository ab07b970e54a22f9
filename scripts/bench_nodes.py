"""The ledger layer's issue throughput on three chain shapes, measured in one run on this machine:
anvil mining on every transaction (the reference), Hardhat Network (``hardhat node``, the second
node implementation) and anvil mining a block every second with a 30M gas limit (next to its
gas-bound ceiling: 30M / gas per op).

For each: a fresh node on a loopback port, a fresh alliance (SQLite), one merchant, ``--ops``
issue operations queued in batch requests of 200 up front, then the outbox worker (its own
thread, as in the service) until every one is confirmed. Prints ops/s, latency from queueing to
confirmation (p50 / p99), gas per op, and on the block-time chain the ceiling and the ratio.

Usage: .venv/bin/python scripts/bench_nodes.py [--ops 4000] [--only anvil,hardhat,blocktime]
       [--block-op-lines 200] [--old-rounds] [--old-plan]

``BENCH_BLOCKS=1`` prints, per block from the run's start, when it was mined, when each of its
transactions of ours was signed, their gas used and limits (and the worker's warnings).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eth_account import Account
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.alliance import Alliance  # noqa: E402
from ledger.chain.anvil import ANVIL, CHAIN_ID, free_port, rpc_chain_id  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
from ledger.outbox import repos as outbox_repos  # noqa: E402
from ledger.outbox import worker as outbox_worker_module  # noqa: E402
from ledger.points.service import IssueLine, request_issue_batch  # noqa: E402
from ledger.runtime import Runtime, outbox_worker  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.store.models import Operation, OperationStatus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HARDHAT = ROOT / "node_modules" / ".bin" / "hardhat"
BLOCK_GAS = 30_000_000


@contextmanager
def node(cmd: list[str], port: int, log: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while rpc_chain_id(url, timeout=0.5) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{cmd[0]} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def shapes(tmp: Path) -> dict[str, tuple[list[str], int]]:
    def anvil(*flags: str) -> tuple[list[str], int]:
        port = free_port()
        return [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--chain-id",
                str(CHAIN_ID), "--gas-limit", str(BLOCK_GAS), *flags], port

    port = free_port()
    return {"anvil": anvil(),
            "hardhat": ([str(HARDHAT), "node", "--hostname", "127.0.0.1", "--port", str(port)],
                        port),
            "blocktime": anvil("--block-time", "1"),
            # As a permissioned chain runs (Besu QBFT with zeroBaseFee): blocks kept full do
            # not raise the price of the next ones.
            "blocktime0": anvil("--block-time", "1", "--base-fee", "0")}


def run(name: str, url: str, ops: int, tmp: Path, op_lines: int = 200,
        block_time_s: float = 0.0) -> dict[str, float]:
    settings = Settings(data_dir=tmp / name, rpc_url=url, chain_id=CHAIN_ID,
                        artifacts_dir=ROOT / ".alliance-test-cache" / "artifacts",
                        block_time_s=block_time_s)
    a = Alliance.open(settings)
    try:
        m = admit_merchant(a, name=f"Bench {name}", symbol="BNCH", rate=1)
        members = [Account.create().address for _ in range(50)]
        lines_of: dict[str, int] = {}  # operation id -> its issue lines
        with a.store.session() as s:
            for b in range(0, ops, op_lines):
                op = request_issue_batch(a, s, merchant_id=m.merchant_id, items=[
                    IssueLine(member=members[i % 50], points=1 + i % 9, order_id=f"B-{i}")
                    for i in range(b, min(b + op_lines, ops))])
                lines_of[op.id] = min(op_lines, ops - b)
        worker = outbox_worker(a)
        runtime = Runtime(a, [worker])
        start_block = a.gateway.block_number()
        t0, wall0 = time.monotonic(), time.time()
        runtime.start()
        try:
            while True:
                with a.store.read_session() as s:
                    left = s.scalar(select(Operation.id).where(
                        Operation.status != OperationStatus.CONFIRMED).limit(1))
                if left is None:
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - t0
        finally:
            runtime.stop()
        with a.store.read_session() as s:
            operations = list(s.scalars(select(Operation)))
            lat = sorted((o.updated_at - o.created_at).total_seconds() for o in operations)
            txs = outbox_repos.transactions_of(s, signer=m.account)
            sent_at = {t.tx_hash: t.sent_at for t in txs}
            # From the transaction's signing (recorded just before its broadcast) to its
            # operations marked confirmed: the latency to confirmation, queueing left out.
            conf = sorted((o.updated_at - sent_at[o.tx_hash]).total_seconds()
                          for o in operations if o.tx_hash in sent_at)
            hashes = [t.tx_hash for t in txs if t.status == "mined"]
            lines_in_tx: dict[str, int] = {}
            for o in operations:
                if o.tx_hash is not None:
                    lines_in_tx[o.tx_hash] = lines_in_tx.get(o.tx_hash, 0) + lines_of.get(o.id, 0)
        receipts = [a.gateway.receipt(h) or {} for h in hashes]
        gas = sum(int(r.get("gasUsed", 0)) for r in receipts)
        by_block: dict[int, int] = {}
        for r in receipts:
            by_block[int(r["blockNumber"])] = by_block.get(int(r["blockNumber"]), 0) + 1
        blocks = sorted(by_block)
        if os.environ.get("BENCH_BLOCKS"):
            # Every block from the run's start: when it was mined and when each of its
            # transactions of ours was signed (seconds from the worker's start), gas used, and
            # the gas limits.
            signed = {h: v.timestamp() - wall0 for h, v in sent_at.items()}
            for bn in range(start_block + 1, (blocks[-1] if blocks else start_block) + 1):
                blk = a.gateway.rpc("eth_getBlockByNumber", [hex(bn), False])
                ts = int(str(blk["timestamp"]), 16) - wall0
                rs = [(r, h) for r, h in zip(receipts, hashes, strict=True)
                      if int(r["blockNumber"]) == bn]
                print(f"block {bn} at {ts:+.1f} s: {len(rs)} txs, gas used "
                      f"{sum(int(r['gasUsed']) for r, _ in rs):,}, signed at "
                      f"{[round(signed.get(h, -1), 1) for _, h in rs]}, limits "
                      f"{[int(a.gateway.transaction(h)['gas']) for _, h in rs]}",  # type: ignore[index]
                      file=sys.stderr)
        limits = [int(a.gateway.transaction(h)["gas"]) for h in hashes]  # type: ignore[index]
        # The blocks between the first and the last of ours, and how full ours made them
        # (the last block is left out: the run ends in it, whatever room it has).
        span = blocks[:-1] if len(blocks) > 1 else blocks
        used_in_span = sum(int(r.get("gasUsed", 0)) for r in receipts
                           if int(r["blockNumber"]) in span)
        span_blocks = (span[-1] - span[0] + 1) if span else 1
        # The steady state: the blocks after our first and before our last, empty ones
        # included. Our first block is left out (mined while the first round was being
        # claimed, measured and signed, it holds what was broadcast before it closed) and so
        # is our last (the queue ran out in it, whatever room it had).
        gas_in: dict[int, int] = {}
        lines_in: dict[int, int] = {}
        for r, h in zip(receipts, hashes, strict=True):
            bn = int(r["blockNumber"])
            gas_in[bn] = gas_in.get(bn, 0) + int(r["gasUsed"])
            lines_in[bn] = lines_in.get(bn, 0) + lines_in_tx.get(h, 0)
        steady = list(range(blocks[0] + 1, blocks[-1])) if len(blocks) > 2 else []
        steady_s = 0.0
        if steady:
            def stamp(bn: int) -> int:
                return int(str(a.gateway.rpc("eth_getBlockByNumber",
                                             [hex(bn), False])["timestamp"]), 16)
            steady_s = float(stamp(steady[-1]) - stamp(steady[0] - 1))
        steady_lines = sum(lines_in.get(bn, 0) for bn in steady)
        steady_gas = [gas_in.get(bn, 0) for bn in steady]
        first_signed = min(v.timestamp() for v in sent_at.values()) - wall0 if sent_at else 0.0
        return {"ops_s": ops / elapsed,
                "signed_ops_s": ops / max(elapsed - first_signed, 1e-9),
                "first_signed": first_signed,
                "steady_blocks": len(steady), "steady_s": steady_s,
                "steady_ops_s": steady_lines / steady_s if steady_s else 0.0,
                "steady_fill": sum(steady_gas) / (len(steady) * BLOCK_GAS) if steady else 0.0,
                "steady_min": min(steady_gas, default=0), "steady_max": max(steady_gas, default=0),
                "first_block": blocks[0] if blocks else 0,
                "first_gas": gas_in.get(blocks[0], 0) if blocks else 0,
                "last_gas": gas_in.get(blocks[-1], 0) if blocks else 0,
                "p50": statistics.median(lat),
                "conf_p50": statistics.median(conf), "conf_p99": conf[int(len(conf) * 0.99) - 1],
                "p99": lat[int(len(lat) * 0.99) - 1], "gas_per_op": gas / ops,
                "txs": len(hashes), "elapsed": elapsed, "blocks": len(blocks),
                "fill": used_in_span / (span_blocks * BLOCK_GAS),
                "limit_per_used": sum(limits) / max(gas, 1),
                "txs_per_block": len(hashes) / max(len(blocks), 1)}
    finally:
        a.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=4000)
    ap.add_argument("--only", default="anvil,hardhat,blocktime")
    ap.add_argument("--block-op-lines", type=int, default=200,
                    help="lines per queued operation on the one-second-block chain (a batch "
                    "request of 200 is one operation, sent whole; single requests are 1)")
    ap.add_argument("--block-time-s", type=float, default=1.0,
                    help="ALLIANCE_BLOCK_TIME_S given to the service on the block-time chains "
                    "(0: it finds out from its receipts, as before)")
    ap.add_argument("--old-rounds", action="store_true",
                    help="the outbox's rounds as before (one block's worth per round, a "
                    "receipt per request: FILL_WINDOW off), to compare in one session")
    ap.add_argument("--old-plan", action="store_true",
                    help="a block's worth as before stop 14 (n even batches, no tail: "
                    "BLOCK_TAIL off; each batch measured alone on the latest state: "
                    "MEASURE_IN_SEQUENCE off), to compare in one session")
    args = ap.parse_args()
    if args.old_rounds:
        outbox_worker_module.FILL_WINDOW = False
    if args.old_plan:
        outbox_worker_module.BLOCK_TAIL = False
        outbox_worker_module.MEASURE_IN_SEQUENCE = False
    if os.environ.get("BENCH_BLOCKS"):
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                            format="%(relativeCreated)8.0f ms %(name)s %(message)s")
    wanted = args.only.split(",")
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, (cmd, port) in shapes(tmp).items():
            if name not in wanted:
                continue
            with node(cmd, port, tmp / f"{name}.log") as url:
                timed = name.startswith("blocktime")
                out[name] = run(name, url, args.ops, tmp,
                                args.block_op_lines if timed else 200,
                                args.block_time_s if timed else 0.0)
            r = out[name]
            print(f"{name:9s} {r['ops_s']:8.0f} ops/s  queue->confirmed p50 {r['p50']:.2f} s "
                  f"p99 {r['p99']:.2f} s, sent->confirmed p50 {r['conf_p50']:.2f} s "
                  f"p99 {r['conf_p99']:.2f} s  {r['gas_per_op']:,.0f} gas/op  {r['txs']:.0f} txs "
                  f"in {r['elapsed']:.1f} s; {r['blocks']:.0f} blocks, "
                  f"{r['txs_per_block']:.1f} txs/block, gas limit / used "
                  f"{r['limit_per_used']:.2f}, blocks filled {r['fill']:.2f}", flush=True)
    if "anvil" in out and "hardhat" in out:
        print(f"hardhat / anvil: {out['hardhat']['ops_s'] / out['anvil']['ops_s']:.2f}x")
    for name in ("blocktime", "blocktime0"):
        if name not in out:
            continue
        r = out[name]
        ceiling = BLOCK_GAS / r["gas_per_op"]
        print(f"{name}: one-second blocks: {r['ops_s']:.0f} ops/s vs the gas-bound ceiling "
              f"{ceiling:,.0f} ops/s (30M / {r['gas_per_op']:,.0f}): {r['ops_s'] / ceiling:.2f}x "
              "(target >= 0.95x); the blocks from our first to our last but one filled "
              f"{r['fill']:.2f}x")
        print(f"{name}: steady state, the {r['steady_blocks']:.0f} blocks after our first and "
              f"before our last ({r['steady_s']:.0f} s of block timestamps; our first block "
              f"held {r['first_gas']:,.0f} gas, our last {r['last_gas']:,.0f}): "
              f"{r['steady_ops_s']:.0f} ops/s = {r['steady_ops_s'] / ceiling:.3f}x of the "
              f"ceiling; blocks {r['steady_fill']:.3f} full (ours {r['steady_min']:,.0f} to "
              f"{r['steady_max']:,.0f} gas a block); from our first signing "
              f"(+{r['first_signed']:.2f} s) to the last confirmation: {r['signed_ops_s']:.0f} "
              f"ops/s = {r['signed_ops_s'] / ceiling:.3f}x; whole run {r['blocks']:.0f} blocks "
              f"with ours, sent->confirmed p50 {r['conf_p50']:.2f} s p99 {r['conf_p99']:.2f} s",
              flush=True)


if __name__ == "__main__":
    main()
