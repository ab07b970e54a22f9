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
"""

from __future__ import annotations

import argparse
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


def ledger_layer(alliance: Alliance, merchant_id: int, ops: int, batch: int) -> dict[str, Any]:
    members = new_members(ops)
    done_at: list[tuple[int, float]] = []

    class TimedWorker(OutboxWorker):
        """Notes when each transaction's operations are confirmed."""

        def _settle(self, sender: Any, op_ids: list[str], sent: Any,
                    receipt: dict[str, Any] | None = None) -> bool:
            ok = super()._settle(sender, op_ids, sent, receipt)
            if ok:
                done_at.append((len(op_ids) * batch, time.perf_counter()))  # an op is a batch
            return ok

    # As in the service: requests are accepted in one thread (one DB transaction per batch
    # request) while the outbox worker's thread sends them.
    worker = TimedWorker(alliance, registry=operation_kinds(),
                         signer_for=merchant_signers(alliance), idle_sleep_s=0.001)
    gw = alliance.gateway
    # Warm-up, not counted: the merchant's key, nonce counter and connections get made.
    warm = new_members(batch)
    with alliance.store.session() as s:
        request_issue_batch(alliance, s, merchant_id=merchant_id, items=[
            IssueLine(points=1, order_id=f"warm-{i}", member=m) for i, m in enumerate(warm)])
    worker.drain()
    rt0 = gw.round_trips
    t0 = time.perf_counter()
    worker.start()
    for start in range(0, ops, batch):
        lines = [IssueLine(points=10 + (i % 90), order_id=f"bench-{i}", member=members[i])
                 for i in range(start, min(ops, start + batch))]
        with alliance.store.session() as s:
            request_issue_batch(alliance, s, merchant_id=merchant_id, items=lines)
    accepted = time.perf_counter() - t0
    while sum(n for n, _ in done_at) < ops:
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    worker.stop()
    round_trips = gw.round_trips - rt0
    with alliance.store.session() as s:
        txs = outbox_repos.confirmed_transactions(s, merchant_id=merchant_id)
    return {"elapsed": elapsed, "accepted": accepted, "round_trips": round_trips,
            "done_at": done_at, "t0": t0, "txs": txs}


def chain_alone(alliance: Alliance, merchant_id: int, program: str, ops: int, batch: int,
                gas_per_line: float) -> float:
    """The reference for the ledger layer: the same batches (``issueBatch`` of ``batch`` new
    members each, from the merchant's key) signed beforehand, then sent raw
    (``eth_sendRawTransaction``, 20 to a JSON-RPC batch) and waited for (the last one's
    receipt, then every status in one batch). Gives ops/s from the first send to the last
    receipt: the chain alone, no outbox, no store."""
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
    for i, start in enumerate(range(0, ops, batch)):
        items = [IssueItem(members[j], 10 + j % 90, keccak(text=f"alone-{j}"))
                 for j in range(start, min(ops, start + batch))]
        sent = sender.sign(to=client.address, data=client.encode_issue_batch(items),
                           gas=int(gas_per_line * len(items) * 1.2) + 100_000,
                           nonce=nonce + i, max_fee=max_fee, priority=priority)
        raws.append("0x" + sent.raw.hex())
    hashes: list[str] = []
    t0 = time.perf_counter()
    for k in range(0, len(raws), 20):
        answers = gw.rpc_batch([("eth_sendRawTransaction", [r]) for r in raws[k:k + 20]])
        hashes.extend(str(h) for h in answers)
    while gw.receipt(hashes[-1]) is None:
        time.sleep(0.001)
    receipts = gw.rpc_batch([("eth_getTransactionReceipt", [h]) for h in hashes])
    elapsed = time.perf_counter() - t0
    assert all(isinstance(r, dict) and int(str(r["status"]), 16) == 1 for r in receipts), \
        "a pre-signed batch failed"
    return ops / elapsed


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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--skip-api", action="store_true")
    ap.add_argument("--op-gas-only", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="alliance-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), batch_max=args.batch,
                            max_batch_items=max(1000, args.batch),
                            rate_limit_per_minute=10**9)
        try:
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
            alone = chain_alone(alliance, m.merchant_id, m.program, ops, args.batch, gas_op)
            print(f"the chain alone (the same batches pre-signed, sent raw, receipts waited "
                  f"for): {alone:,.0f} ops/s; the ledger layer is {ops_s / alone:.2f}x of it "
                  "(target >= 0.9x)")
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

                api_figures(alliance, settings, m, args.ops, args.batch, ledger_ops_s=ops_s)
        finally:
            anvil.stop(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
