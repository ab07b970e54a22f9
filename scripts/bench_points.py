"""Points benchmark: 10,000 issue operations on a fresh local anvil, measured in one run.

Prints, each next to its target:
- ops/s through the ledger layer (request_issue_batch + the outbox worker, batches of 200);
- ops/s through the HTTP API with batch requests, and single requests from 50 concurrent
  clients with p50/p99 latency;
- JSON-RPC round trips per operation;
- the rate around the 10,000th op vs around the 500th (decay);
- gas per operation in a batch next to the protocol floor of what the contract writes.

- gas of single operations: issue, redeem at the issuer (one lot, then across lots), redeem
  at another merchant, convert, refund, and sweeping expired lots (per lot, next to its floor).

Usage: .venv/bin/python scripts/bench_points.py [--ops 10000] [--skip-api] [--op-gas-only]
       [--api-shapes process,thread] [--pg]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.merchants.clients import ProgramConfig
from ledger.merchants.service import admit_merchant
from ledger.outbox import repos as outbox_repos
from ledger.outbox.worker import OutboxWorker
from ledger.points.service import IssueLine, request_issue_batch
from ledger.runtime import merchant_signers, operation_kinds
from ledger.settings import Settings  # noqa: E402

# Protocol gas prices the floor is computed from (EIP-2929/2200, yellow paper).
NEW_SLOT = 22_100  # SSTORE 0 → non-zero, cold access included
UPDATE_SLOT = 5_000  # SSTORE non-zero → non-zero, cold access included
TX_BASE = 21_000
LOG_BASE, LOG_TOPIC, LOG_BYTE = 375, 375, 8


def log_cost(topics: int, data_bytes: int) -> int:
    return LOG_BASE + LOG_TOPIC * topics + LOG_BYTE * data_bytes


def calldata_cost(data: bytes) -> int:
    nonzero = sum(1 for b in data if b)
    return 16 * nonzero + 4 * (len(data) - nonzero)


def issue_floor(calldata: bytes, lines: int, *, supply_slot_new: bool) -> int:
    """The least gas a batch issue to ``lines`` new members can cost for what it writes.

    Per line the program writes two new slots (the order record and the member's account,
    whose newest lot lives in the same slot) and emits Transfer (3 topics, 32 bytes) and
    PointsIssued (3 topics, 96 bytes). Per batch it updates the period's supply slot once,
    and pays the transaction base and its calldata."""
    per_line = 2 * NEW_SLOT + log_cost(3, 32) + log_cost(3, 96)
    per_batch = TX_BASE + calldata_cost(calldata) + (NEW_SLOT if supply_slot_new else UPDATE_SLOT)
    return lines * per_line + per_batch


def new_members(n: int) -> list[str]:
    """Fresh member addresses (random 20 bytes: no key needed to receive points)."""
    return [to_checksum_address(os.urandom(20)) for _ in range(n)]


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants so far (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


class CpuMeter:
    """CPU spent while a half runs: this process's (and its main thread's: the accepting
    thread of the ledger layer; the rest is the outbox worker's) and the node's (anvil and
    its children). On a shared machine CPU per operation moves far less than ops/s: the
    ledger layer reaches the chain alone's rate only if its Python, on the other core, costs
    less per operation than the node does."""

    def __init__(self, alliance: Alliance) -> None:
        status = anvil.status(alliance.settings)
        self.pid = status.pid
        self.start = (time.process_time(), time.thread_time(), self._node())

    def _node(self) -> float:
        return _tree_cpu_s(self.pid) if self.pid else 0.0

    def stop(self) -> dict[str, float]:
        p0, t0, n0 = self.start
        process, main = time.process_time() - p0, time.thread_time() - t0
        return {"python": process, "main": main, "others": process - main,
                "node": self._node() - n0}


def settle_heap() -> None:
    """What the service does once before its workers start (``ledger.runtime.settle_heap``):
    collect, then freeze what is alive out of the cyclic collector's generations. Here before
    every measured half, as each opens an alliance of its own. Without it the ledger layer's
    10,000 ops paid for a full collection over the whole heap (~200,000 objects: the modules,
    web3, SQLAlchemy) that the service does not pay: 130-160 ms of CPU, 13-16 us an op, in
    scratch runs of request_issue_batch alone timed by gc.callbacks."""
    gc.collect()
    gc.freeze()


def cpu_line(cpu: dict[str, float], ops: int, *, layer: bool) -> str:
    us = {k: v / ops * 1e6 for k, v in cpu.items()}
    python = (f"python {us['python']:.1f} (accepting {us['main']:.1f}, outbox "
              f"{us['others']:.1f})" if layer else f"python {us['python']:.1f}")
    return f"{python}, node {us['node']:.1f} us/op"


# The longest the ledger layer waits for its operations beyond one second per 100 ops.
CONFIRM_WAIT_S = 120.0


def ledger_layer(alliance: Alliance, merchant_id: int, ops: int, batch: int, tag: str = ""
                 ) -> dict[str, Any]:
    members = new_members(ops)
    done_at: list[tuple[int, float]] = []

    class TimedWorker(OutboxWorker):
        """Notes when each transaction's operations are confirmed."""

        def _confirmed(self, op_ids: list[str]) -> None:
            done_at.append((len(op_ids) * batch, time.perf_counter()))  # an op is a batch

    # As in the service: requests are accepted in one thread (one DB transaction per batch
    # request) while the outbox worker's thread sends them.
    worker = TimedWorker(alliance, registry=operation_kinds(),
                         signer_for=merchant_signers(alliance), idle_sleep_s=0.001)
    gw = alliance.gateway
    # As a service starts: what the store holds is aligned with the node (the chain alone,
    # run before this with the merchant's key, moved its nonce past the store's counter).
    worker.recover()
    # Warm-up, not counted: the merchant's key, nonce counter and connections get made.
    warm = new_members(batch)
    with alliance.store.session() as s:
        request_issue_batch(alliance, s, merchant_id=merchant_id, items=[
            IssueLine(points=1, order_id=f"warm{tag}-{i}", member=m) for i, m in enumerate(warm)])
    worker.drain()
    # (the warm-up's batch, confirmed by the drain, is not one of the measured ops: counted, it
    # ended the wait for the measured ones a batch early)
    done_at.clear()
    settle_heap()
    rt0 = gw.round_trips
    meter = CpuMeter(alliance)
    t0 = time.perf_counter()
    worker.start()
    for start in range(0, ops, batch):
        lines = [IssueLine(points=10 + (i % 90), order_id=f"bench{tag}-{i}", member=members[i])
                 for i in range(start, min(ops, start + batch))]
        with alliance.store.session() as s:
            request_issue_batch(alliance, s, merchant_id=merchant_id, items=lines)
    accepted = time.perf_counter() - t0
    # Bounded: a worker that stops confirming (a node gone, a transaction stuck) ends the run
    # with what was confirmed instead of waiting for ever.
    deadline = t0 + CONFIRM_WAIT_S + ops / 100
    while (confirmed := sum(n for n, _ in done_at)) < ops:
        if time.perf_counter() > deadline:
            worker.stop()
            raise SystemExit(f"ledger layer: {confirmed} of {ops} ops confirmed after "
                             f"{time.perf_counter() - t0:.0f} s; giving up")
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    worker.stop()
    round_trips = gw.round_trips - rt0
    with alliance.store.session() as s:
        txs = outbox_repos.confirmed_transactions(s, merchant_id=merchant_id)
    return {"elapsed": elapsed, "accepted": accepted, "round_trips": round_trips,
            "done_at": done_at, "t0": t0, "txs": txs, "cpu": cpu}


def chain_alone(alliance: Alliance, merchant_id: int, program: str, ops: int, batch: int,
                gas_per_line: float, *, windowed: bool = False, tag: str = "",
                cpu: dict[str, float] | None = None) -> tuple[float, int]:
    """The reference for the ledger layer: the same batches (``issueBatch`` of ``batch`` new
    members each, from the merchant's key) signed beforehand, then sent raw
    (``eth_sendRawTransaction``) and waited for (the sender's nonce at the latest block, then
    every status in one batch of receipts). Sent all at once (20 to a JSON-RPC batch), or,
    ``windowed``, a block's worth to a JSON-RPC batch while at most two blocks' worth wait
    unmined (as the outbox keeps a window of blocks in flight: an automining node then never
    holds more than its next block takes, so nothing is left waiting for an arrival). Gives
    ops/s from the first send to the last receipt, and how often the node was nudged (see
    :func:`send_and_wait`): the chain alone, no outbox, no store."""
    from ledger.chain.sender import TransactionSender
    from ledger.merchants.service import merchant_signing_key
    from ledger.points.clients import IssueItem
    from ledger.types import MerchantId

    gw = alliance.gateway
    client = alliance.contracts.program(program)
    sender = TransactionSender(gw, merchant_signing_key(alliance, MerchantId(merchant_id)))
    members = new_members(ops)
    nonce = gw.nonce(sender.address, "pending")
    max_fee, priority = sender.fees()
    raws: list[str] = []
    hashes: list[str] = []
    gas_each = int(gas_per_line * batch * 1.2) + 100_000
    for i, start in enumerate(range(0, ops, batch)):
        items = [IssueItem(members[j], 10 + j % 90, keccak(text=f"alone{tag}-{windowed}-{j}"))
                 for j in range(start, min(ops, start + batch))]
        sent = sender.sign(to=client.address, data=client.encode_issue_batch(items),
                           gas=int(gas_per_line * len(items) * 1.2) + 100_000,
                           nonce=nonce + i, max_fee=max_fee, priority=priority)
        raws.append("0x" + sent.raw.hex())
        hashes.append(sent.tx_hash)
    block_gas = int(str(gw.rpc("eth_getBlockByNumber", ["latest", False])["gasLimit"]), 16)
    per_block = max(1, block_gas // gas_each)
    settle_heap()
    meter = CpuMeter(alliance)
    t0 = time.perf_counter()
    nudges = send_and_wait(gw, sender.address, nonce, raws, bound_s=ALONE_BOUND_S,
                           per_request=per_block if windowed else 20,
                           window=2 * per_block if windowed else len(raws))
    receipts = receipts_of(gw, hashes, bound_s=ALONE_BOUND_S)
    elapsed = time.perf_counter() - t0
    if cpu is not None:
        cpu.update(meter.stop())
    assert all(int(str(r["status"]), 16) == 1 for r in receipts), "a pre-signed batch failed"
    return ops / elapsed, nudges


# The reference's wait: no new block for STALL_S while pre-signed transactions wait at the
# node, and they are sent again (as the outbox does after each block) and, on a node that mines
# on arrival, one block is mined (``ChainGateway.mine_stalled``); no transaction mined for
# ALONE_BOUND_S and the run fails saying so.
STALL_S = 0.25
ALONE_BOUND_S = 60.0


def sending_order(gw: Any, raws: list[str]) -> list[str]:
    """One request's pre-signed transactions (one key's, nonces ascending, or several keys'
    interleaved) in the order the outbox's sender sends a round: highest nonce first on anvil
    mining on arrival (``ChainGateway.sends_highest_nonce_first``), so one block takes them
    all; as given elsewhere. The references send as the service does: a reference sent lowest
    first on anvil spent blocks of one or two transactions the service no longer spends."""
    return raws[::-1] if gw.sends_highest_nonce_first else raws


def send_and_wait(gw: Any, address: str, first_nonce: int, raws: list[str], *,
                  bound_s: float, sent: int = 0, per_request: int = 20,
                  window: int | None = None) -> int:
    """Send the raw transactions ``raws`` (nonces from ``first_nonce``) from ``sent`` on,
    ``per_request`` to a JSON-RPC batch, at most ``window`` of them unmined at a time; wait
    until all are mined, reading the sender's nonce at the latest block. An automining node
    (anvil) builds one block per arrival and keeps what did not fit it in its pool until the
    next arrival: the last of a run waited there for ever (seen at 53bfb28: nonces 96-100
    pending, block 103, minutes). Gives how often the node was nudged; raises RuntimeError
    after ``bound_s`` without one transaction mined."""
    end = first_nonce + len(raws)
    window = len(raws) if window is None else window
    seen, moved_at, nudges = first_nonce, time.monotonic(), 0
    nudged_at = moved_at
    mined = first_nonce
    while True:
        unmined = sent - (mined - first_nonce)
        if sent < len(raws) and unmined < window:
            upto = min(len(raws), sent + per_request, sent + window - unmined)
            gw.rpc_batch([("eth_sendRawTransaction", [r])
                          for r in sending_order(gw, raws[sent:upto])])
            sent = upto
        mined = int(str(gw.rpc("eth_getTransactionCount", [address, "latest"])), 16)
        now = time.monotonic()
        if mined >= end:
            return nudges
        if mined != seen:
            seen, moved_at = mined, now
        elif now - moved_at > bound_s:
            raise RuntimeError(
                f"the chain alone: {mined - first_nonce} of {len(raws)} pre-signed "
                f"transactions mined; none more for {bound_s:.0f} s (nonce {mined} waits)")
        elif now - max(moved_at, nudged_at) > STALL_S:
            waiting = raws[mined - first_nonce:sent]
            for k in range(0, len(waiting), per_request):  # (a node caps a request's size)
                gw.rpc_batch([("eth_sendRawTransaction", [r])
                              for r in sending_order(gw, waiting[k:k + per_request])])
            gw.mine_stalled()
            nudges, nudged_at = nudges + 1, now
        time.sleep(0.001)


def receipts_of(gw: Any, hashes: list[str], *, bound_s: float) -> list[dict[str, Any]]:
    """The receipts of ``hashes``, all of them, in one JSON-RPC batch a round. anvil moves a
    sender's nonce at the latest block before it serves the receipts of that block: read
    right after the nonce said "mined", a receipt can still be null (seen: both of a run's
    receipts null, both status 1 0.2 s later), which failed the reference now and then."""
    end = time.monotonic() + bound_s
    while True:
        receipts = gw.rpc_batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        if all(isinstance(r, dict) for r in receipts):
            return receipts
        if time.monotonic() > end:
            missing = sum(not isinstance(r, dict) for r in receipts)
            raise RuntimeError(f"{missing} of {len(hashes)} mined transactions have no receipt "
                               f"after {bound_s:.0f} s")
        time.sleep(0.001)


def wait_mined(gw: Any, address: str, first_nonce: int, raws: list[str], *,
               bound_s: float) -> int:
    """:func:`send_and_wait` for transactions already sent."""
    return send_and_wait(gw, address, first_nonce, raws, bound_s=bound_s, sent=len(raws))


def rate_near(done_at: list[tuple[int, float]], t0: float, target: int, window: int) -> float:
    """Ops per second over the batches that confirmed ops ``target-window .. target``."""
    cum = 0
    prev_t = t0
    marks: list[tuple[int, float]] = [(0, t0)]
    for n, t in done_at:
        cum += n
        marks.append((cum, t))
        prev_t = t
    del prev_t
    lo = max(0, target - window)
    start = max((m for m in marks if m[0] <= lo), key=lambda m: m[0])
    end = min((m for m in marks if m[0] >= target), key=lambda m: m[0])
    return (end[0] - start[0]) / max(end[1] - start[1], 1e-9)


def gas_figures(alliance: Alliance, txs: list[tuple[str, int]]) -> tuple[float, float]:
    gw = alliance.gateway
    used = floor = lines = 0
    for i, (tx_hash, n) in enumerate(txs):
        receipt = gw.receipt(tx_hash)
        tx = gw.transaction(tx_hash)
        assert receipt is not None and tx is not None
        used += int(receipt["gasUsed"])
        floor += issue_floor(bytes(tx["input"]), n, supply_slot_new=(i == 0))
        lines += n
    return used / lines, floor / lines


def op_gas(alliance: Alliance) -> None:
    """Gas of single operations, on merchants admitted for it through the service.

    Members sign the digests the program itself computes (``redemptionDigest`` /
    ``conversionDigest``), so this runs unchanged against older contract versions."""
    from eth_account import Account

    from ledger.chain.sender import TransactionSender
    from ledger.merchants.service import admit_merchant, merchant_signing_key
    from ledger.points.clients import Conversion, PointProgramClient, Redemption

    gw = alliance.gateway

    def admit(symbol: str, config: ProgramConfig) -> tuple[int, TransactionSender,
                                                          PointProgramClient]:
        # The service's own admission (through the timelock where there is one), so this
        # runs unchanged against every contract version.
        m = admit_merchant(alliance, name=f"Bench {symbol}", symbol=symbol, rate=10,
                           config=config)
        key = merchant_signing_key(alliance, m.merchant_id)
        return m.merchant_id, TransactionSender(gw, key), alliance.contracts.program(m.program)

    def gas(sender: TransactionSender, to: str, data: bytes) -> int:
        return int(sender.transact(to=to, data=data, gas=3_000_000)["gasUsed"])

    monthly = ProgramConfig(30 * 86400, 12, 7)
    a_id, a_tx, a = admit("A", monthly)
    b_id, b_tx, b = admit("B", monthly)
    now = int(gw.block("latest")["timestamp"])
    member = Account.create()
    figures: dict[str, int] = {}
    figures["issue (new member)"] = gas(a_tx, a.address, a.encode(
        "issue", member.address, 1000, keccak(text="o-1")))
    figures["issue (same member, same period)"] = gas(a_tx, a.address, a.encode(
        "issue", member.address, 1000, keccak(text="o-2")))

    def sign(digest: bytes) -> bytes:
        return bytes(Account.unsafe_sign_hash(digest, member.key).signature)

    def redeem(acceptor: int, sender: TransactionSender, nonce: int, amount: int,
               order: str) -> int:
        r = Redemption(member.address, amount, acceptor, keccak(text=order), nonce, now + 3600)
        return gas(sender, a.address, a.encode("redeem", r.as_tuple(),
                                               sign(a.redemption_digest(r))))

    figures["redeem at the issuer (one lot)"] = redeem(a_id, a_tx, 0, 100, "s-1")
    figures["redeem at another merchant (cross-merchant)"] = redeem(b_id, b_tx, 1, 100, "s-2")
    c = Conversion(member.address, 100, b_id, 1, keccak(text="c-1"), 2, now + 3600)
    figures["convert (A -> B)"] = gas(b_tx, a.address, a.encode(
        "convert", c.as_tuple(), sign(a.conversion_digest(c))))
    figures["refund of a cross-merchant redemption"] = gas(b_tx, a.address, a.encode(
        "refundRedemption", b_id, keccak(text="s-2"), 100))
    gw.rpc("evm_increaseTime", [31 * 86400])
    gw.rpc("evm_mine")
    now = int(gw.block("latest")["timestamp"])
    a_tx.transact(to=a.address, data=a.encode("issue", member.address, 1000,
                                              keccak(text="o-3")), gas=3_000_000)
    figures["redeem across two lots"] = redeem(a_id, a_tx, 3, 1500, "s-3")
    for name, g in figures.items():
        print(f"gas {name}: {g:,}")
    sweep_gas(alliance, admit)


def sweep_gas(alliance: Alliance, admit: Any) -> None:
    """Sweep gas per expired lot next to its floor; skipped where there is no sweep."""
    gw = alliance.gateway
    mid, tx, p = admit("S", ProgramConfig(86400, 1, 1))
    if not any(e.get("name") == "sweepExpired" for e in p.abi):
        print("sweep: not in this contract version")
        return
    members = new_members(100)
    from ledger.points.clients import IssueItem

    tx.transact(to=p.address, data=p.encode_issue_batch(
        [IssueItem(x, 5, keccak(text=f"sw-{i}")) for i, x in enumerate(members)]),
        gas=20_000_000)
    gw.rpc("evm_increaseTime", [3 * 86400])
    gw.rpc("evm_mine")
    data = p.encode("sweepExpired", members)
    receipt = tx.transact(to=p.address, data=data, gas=20_000_000)
    used = int(receipt["gasUsed"])
    # Per lot: the lot lives in the account slot (rewritten: 5,000 cold, no refund since the
    # balance stays in it) and the two logs; per tx: base, calldata and the supply slot.
    per_lot = UPDATE_SLOT + log_cost(2, 64) + log_cost(3, 32)
    floor = TX_BASE + calldata_cost(data) + UPDATE_SLOT + len(members) * per_lot
    print(f"sweep of {len(members)} members' expired lots: {used / len(members):,.0f} gas per lot"
          f" vs floor {floor / len(members):,.0f} = {used / floor:.3f}x")


def bench_settings(data_dir: Path, batch: int, database_url: str | None = None) -> Settings:
    """The service's settings for a run: batches of ``batch`` lines, no rate limit; the store
    at ``database_url`` (default: SQLite in the data dir)."""
    return Settings(data_dir=data_dir, batch_max=batch, max_batch_items=max(1000, batch),
                    rate_limit_per_minute=10**9, database_url=database_url)


def fresh_pairs(args: argparse.Namespace) -> int:
    """``--fresh-pairs N``: the ledger layer next to the chain alone with every half on a chain
    of its own, fresh (deployed and the merchant admitted anew, nothing else on it). On one
    chain whichever half runs second pays for the state the first left (anvil slows as its
    state grows: ``--pairs`` saw 8,700 -> 2,300 ops/s over three pairs), so neither order is
    fair there. Each pair measures the ledger layer, the chain alone sent all at once and the
    chain alone a block's worth at a time, each on a new chain, in an order that rotates from
    pair to pair; the reference is the faster way of the chain alone. Prints every pair and the
    median ratio."""
    ratios: list[float] = []
    gas_op = 0.0
    halves = ["layer", "at once", "windowed"]
    for r in range(args.fresh_pairs):
        order = halves[r % 3:] + halves[:r % 3] if r else halves  # the first measures gas
        got: dict[str, float] = {}
        cpus: dict[str, dict[str, float]] = {}
        for half in order:
            with tempfile.TemporaryDirectory(prefix="alliance-bench-") as tmp:
                settings = bench_settings(Path(tmp), args.batch)
                try:
                    alliance = Alliance.open(settings)
                    m = admit_merchant(alliance, name="Bench Department Store", symbol="BNCH",
                                       rate=1, config=ProgramConfig(30 * 86400, 12, 7))
                    if half == "layer":
                        res = ledger_layer(alliance, m.merchant_id, args.ops, args.batch)
                        got[half] = args.ops / res["elapsed"]
                        got["accepted"] = args.ops / res["accepted"]
                        cpus[half] = res["cpu"]
                        if not gas_op:
                            gas_op, _ = gas_figures(alliance, res["txs"])
                    else:
                        cpus[half] = {}
                        got[half], _ = chain_alone(alliance, m.merchant_id, m.program, args.ops,
                                                   args.batch, gas_op,
                                                   windowed=half == "windowed",
                                                   cpu=cpus[half])
                finally:
                    anvil.stop(settings)
        alone = max(got["at once"], got["windowed"])
        ratios.append(got["layer"] / alone)
        print(f"pair {r + 1} (order: {', '.join(order)}; each on a fresh chain, load "
              f"{os.getloadavg()[0]:.2f}): ledger layer {got['layer']:,.0f} ops/s (accepted "
              f"into the outbox at {got['accepted']:,.0f} ops/s), the chain alone "
              f"{alone:,.0f} ops/s (at once {got['at once']:,.0f}, a block's worth at a time "
              f"{got['windowed']:,.0f}): {ratios[-1]:.2f}x", flush=True)
        print(f"  CPU per op: ledger layer {cpu_line(cpus['layer'], args.ops, layer=True)}; "
              f"chain alone at once {cpu_line(cpus['at once'], args.ops, layer=False)}, "
              f"a block's worth at a time {cpu_line(cpus['windowed'], args.ops, layer=False)}",
              flush=True)
    median = sorted(ratios)[len(ratios) // 2]
    print(f"over {len(ratios)} pairs on fresh chains the ledger layer is {median:.2f}x of the "
          f"chain alone (median; target >= 0.9x; every pair: "
          f"{', '.join(f'{x:.2f}' for x in ratios)})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--skip-api", action="store_true")
    ap.add_argument("--api-shapes", default="process,thread",
                    help="the HTTP batch figure once per shape of the service, in this order: "
                         "'process' (the indexer in a process of its own, as `alliance serve` "
                         "runs it), 'thread' (in a thread of the measured process); the single "
                         "requests on the last one's server")
    ap.add_argument("--op-gas-only", action="store_true")
    ap.add_argument("--pg", action="store_true",
                    help="the store on a throwaway PostgreSQL server (Debian's postgresql, as "
                         "scripts/faults.py starts it) instead of SQLite: the production "
                         "store; the service's shape is otherwise the same")
    ap.add_argument("--pairs", type=int, default=1,
                    help="measure the ledger layer and the chain alone this many times, "
                         "alternated, and print the median ratio")
    ap.add_argument("--fresh-pairs", type=int, default=0,
                    help="only the ledger layer next to the chain alone, each half on a fresh "
                         "chain of its own, this many pairs (see fresh_pairs)")
    args = ap.parse_args()
    if not set(args.api_shapes.split(",")) <= {"process", "thread"}:
        ap.error("--api-shapes: 'process' and/or 'thread', comma-separated")
    if args.fresh_pairs:
        return fresh_pairs(args)
    with tempfile.TemporaryDirectory(prefix="alliance-bench-") as tmp:
        pg = None
        database_url = None
        if args.pg:
            from faults import Postgres  # (starts PostgreSQL; imports the tests' helpers)

            Path(tmp).chmod(0o755)  # the server runs as the postgres user
            (Path(tmp) / "pg").mkdir()
            pg = Postgres(Path(tmp) / "pg")
            database_url = pg.init()
        settings = bench_settings(Path(tmp) / "data" if pg else Path(tmp), args.batch,
                                  database_url)
        try:
            print(f"store: {'PostgreSQL' if pg else 'SQLite'}", flush=True)
            alliance = Alliance.open(settings)
            if args.op_gas_only:
                op_gas(alliance)
                return 0
            m = admit_merchant(alliance, name="Bench Department Store", symbol="BNCH", rate=1,
                               config=ProgramConfig(30 * 86400, 12, 7))
            res = ledger_layer(alliance, m.merchant_id, args.ops, args.batch)
            ops = args.ops
            ops_s = ops / res["elapsed"]
            gas_op, floor_op = gas_figures(alliance, res["txs"])
            rt_per_op = res["round_trips"] / ops
            early = rate_near(res["done_at"], res["t0"], min(1000, ops), 1000)
            late = rate_near(res["done_at"], res["t0"], ops, 1000)
            print(f"ledger layer: {ops} issue ops confirmed on chain in {res['elapsed']:.2f} s = "
                  f"{ops_s:,.0f} ops/s  (target >= 10,000: {ops_s / 10_000:.2f}x); accepted "
                  f"into the outbox at {ops / res['accepted']:,.0f} ops/s")
            # Both ways of sending the reference, the faster one the reference.
            at_once, n1 = chain_alone(alliance, m.merchant_id, m.program, ops, args.batch,
                                      gas_op)
            windowed, n2 = chain_alone(alliance, m.merchant_id, m.program, ops, args.batch,
                                       gas_op, windowed=True)
            alone = max(at_once, windowed)
            print(f"the chain alone, sent all at once: {at_once:,.0f} ops/s (node nudged {n1} "
                  f"times), a block's worth at a time: {windowed:,.0f} ops/s (nudged {n2} "
                  "times)")
            print(f"the chain alone (the same batches pre-signed, sent raw, receipts waited "
                  f"for): {alone:,.0f} ops/s; the ledger layer is {ops_s / alone:.2f}x of it "
                  "(target >= 0.9x)")
            ratios = [ops_s / alone]
            for r in range(1, args.pairs):
                # The pair again on the same chain: the machine's load moves between the two
                # halves of one pair, and anvil slows as its state grows (the first pair's
                # second half runs on 10,000 more members than its first): every other pair
                # measures the chain alone first. Every pair is shown, and the median ratio.
                alone_first = r % 2 == 1
                if not alone_first:
                    layer_s = ops / ledger_layer(alliance, m.merchant_id, ops, args.batch,
                                                 tag=f"r{r}")["elapsed"]
                a1, _ = chain_alone(alliance, m.merchant_id, m.program, ops, args.batch, gas_op,
                                    tag=f"r{r}")
                a2, _ = chain_alone(alliance, m.merchant_id, m.program, ops, args.batch, gas_op,
                                    windowed=True, tag=f"r{r}")
                if alone_first:
                    layer_s = ops / ledger_layer(alliance, m.merchant_id, ops, args.batch,
                                                 tag=f"r{r}")["elapsed"]
                ratios.append(layer_s / max(a1, a2))
                print(f"pair {r + 1} ({'the chain alone' if alone_first else 'ledger layer'} "
                      f"first): ledger layer {layer_s:,.0f} ops/s, the chain alone "
                      f"{max(a1, a2):,.0f} ops/s (at once {a1:,.0f}, a block's worth at a time "
                      f"{a2:,.0f}): {ratios[-1]:.2f}x")
            if args.pairs > 1:
                median = sorted(ratios)[len(ratios) // 2]
                print(f"over {args.pairs} pairs the ledger layer is {median:.2f}x "
                      f"of the chain alone (median; every pair: "
                      f"{', '.join(f'{x:.2f}' for x in ratios)})")
            print(f"JSON-RPC round trips per op: {rt_per_op:.4f}  (target <= 0.1: "
                  f"{rt_per_op / 0.1:.2f}x of the limit)")
            print(f"rate over the last 1,000 ops (to op {ops}): {late:,.0f}/s vs over the first "
                  f"1,000 (around op 500): {early:,.0f}/s = {late / early:.2f}x  "
                  f"(target >= 0.9x)")
            print(f"gas per op in a batch of {args.batch}: {gas_op:,.0f} vs floor {floor_op:,.0f}"
                  f" = {gas_op / floor_op:.3f}x  (target <= 1.10x)")
            op_gas(alliance)
            if not args.skip_api:
                from bench_api import api_figures

                api_figures(alliance, settings, m, args.ops, args.batch, ledger_ops_s=ops_s,
                            shapes=tuple(args.api_shapes.split(",")))
        finally:
            anvil.stop(settings)
            if pg is not None:
                pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
