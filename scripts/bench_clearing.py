"""Clearing benchmark: cross-merchant redemptions and period closes on a fresh local anvil.

Prints, each next to its reference, in one run:
- gas to close a period with 10 and with 50 merchants, after 100 and after 10,000
  cross-merchant redemptions in it (the close must not grow with redemptions: ratio ~1.0x);
- gas per cross-merchant redemption in batches of 200, next to the floor computed for what
  the contracts write (target <= 1.15x);
- cross-merchant redemptions per second through the HTTP API with batch requests
  (target >= 5,000/s), from the first request until every operation is confirmed on chain.

The floor of a redemption line: its new nonce slot and new redemption record (22,100 each),
the member's account slot update (5,000), its two logs (Transfer: 3 topics, 32 bytes;
PointsRedeemed: 4 topics, 64 bytes; 375 + 375/topic + 8/byte), its calldata (16/4 per byte)
and the ecrecover precompile (3,000) that checking a member's signature cannot avoid. Per
batch: the 21,000 base, the period's supply slot update, the two clearing positions (new slot
the first time a merchant is touched in a period, else an update) and the Cleared log
(4 topics, 128 bytes). The ratio without the ecrecover term is printed too.

Usage: .venv/bin/python scripts/bench_clearing.py [--redemptions 10000] [--skip-api] [--skip-gas]
       [--profile] [--replay-indexer TIMES] [--replay-checks TIMES] [--api-shape thread|process]

``--profile``: cProfile (thread CPU time), while the API's requests are measured, of the
indexer's rounds, the redeem handlers' checks and queueing and the outbox's rounds (the top
functions of each, by own time; the figures of such a run are the profiler's, not the
service's). ``--replay-indexer TIMES``: after the API's figure, the indexer's CPU per
redemption over the same blocks read again, in the benchmark's own thread (see
:func:`replay_indexer`): a figure the machine's load moves little. ``--replay-checks TIMES``:
likewise the redeem handlers' checks of the same members' batches signed again, alone and
beside a thread running Python (see :func:`replay_checks`).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_api import (  # noqa: E402
    SHAPES,
    _indexer_of,
    _proc_cpu,
    _serve,
    _thread_cpu,
    _wait_confirmed,
    _wait_indexed,
    send_from_process,
)
from bench_points import (  # noqa: E402
    NEW_SLOT,
    TX_BASE,
    UPDATE_SLOT,
    _tree_cpu_s,
    calldata_cost,
    log_cost,
    receipts_of,
    sending_order,
)

from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.chain.gateway import ChainGateway  # noqa: E402
from ledger.chain.sender import SentTx, TransactionSender  # noqa: E402
from ledger.clearing.clients import ClearingClient, SettlementTokenClient
from ledger.contracts.client import TimelockClient
from ledger.contracts.compiler import Artifact  # noqa: E402
from ledger.deployment import deploy
from ledger.errors import ChainError
from ledger.merchants.clients import ProgramConfig, RegistryClient
from ledger.merchants.service import AdmittedMerchant, admit_merchant, merchant_signing_key
from ledger.points.clients import IssueItem, PointProgramClient, Redemption
from ledger.points.kinds import REDEEM_BATCH, RedeemLinePayload, RedeemPayload
from ledger.points.service import (
    IssueLine,
    SignedRedemption,
    check_redeem_batch,
    order_ref,
    request_issue_batch,
)
from ledger.runtime import outbox_worker
from ledger.settings import Settings  # noqa: E402

ECRECOVER = 3_000
BATCH = 200
REDEEM_TYPEHASH = keccak(text="Redeem(address member,uint256 amount,uint256 merchantId,"
                               "bytes32 orderRef,uint256 nonce,uint256 deadline)")
DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                              "address verifyingContract,bytes32 salt)")


def _word(v: int | bytes | str) -> bytes:
    if isinstance(v, str):
        return bytes(12) + bytes.fromhex(v[2:])
    if isinstance(v, bytes):
        return v.rjust(32, b"\0")
    return v.to_bytes(32, "big")


def sign_redemption(member: LocalAccount, program: str, registry: str, chain_id: int,
                    r: Redemption) -> bytes:
    """EIP-712 as the contract hashes it, signed straight from the digest (fast path for
    thousands of signatures; tests check the same digest against eth-account's typed data)."""
    domain = keccak(DOMAIN_TYPEHASH + keccak(text="Alliance Points") + keccak(text="2")
                    + _word(chain_id) + _word(program) + _word(registry))
    struct = keccak(REDEEM_TYPEHASH + _word(r.member) + _word(r.amount) + _word(r.merchant_id)
                    + r.order_ref + _word(r.nonce) + _word(r.deadline))
    digest = keccak(b"\x19\x01" + domain + struct)
    return bytes(Account.unsafe_sign_hash(digest, member.key).signature)


class Bench:
    """One alliance deployed straight on chain (no service), for gas figures."""

    def __init__(self, gw: ChainGateway, artifacts: dict[str, Artifact], merchants: int) -> None:
        self.gw = gw
        self.artifacts = artifacts
        # Its own keys: the service's keys have their own nonce managers.
        op, admin, minter = Account.create(), Account.create(), Account.create()
        for a in (op, admin, minter):
            gw.rpc("anvil_setBalance", [a.address, hex(10**22)])
        self.operator = TransactionSender(gw, op.key)
        self.admin = TransactionSender(gw, admin.key)
        self.minter = TransactionSender(gw, minter.key)
        dep = deploy(gw, self.admin, artifacts, operator=op.address, minter=minter.address)
        self.registry = RegistryClient(gw, artifacts["AllianceRegistry"].abi, dep.registry)
        self.clearing = ClearingClient(gw, artifacts["Clearing"].abi, dep.clearing)
        self.token = SettlementTokenClient(gw, artifacts["SettlementToken"].abi,
                                           dep.settlement_token)
        tl = TimelockClient(gw, artifacts["AllianceTimelock"].abi, dep.timelock)
        self.accounts: list[LocalAccount] = []
        self.senders: list[TransactionSender] = []
        self.programs: list[PointProgramClient] = []
        for i in range(merchants):
            acct = Account.create()
            gw.rpc("anvil_setBalance", [acct.address, hex(10**22)])
            mid = i + 1
            # One admin action through the timelock (delay 0): admit + rate + program.
            call = self.registry.encode("admitMerchantWithProgram", (
                acct.address, Account.create().address, bytes(32), 5 + i % 7, f"M{mid}",
                f"M{mid}", ProgramConfig().as_tuple()))
            salt = keccak(text=f"admit-{mid}")
            self.admin.transact(to=tl.address, data=tl.encode(
                "schedule", dep.registry, 0, call, bytes(32), salt, 0))
            self.admin.transact(to=tl.address, data=tl.encode(
                "execute", dep.registry, 0, call, bytes(32), salt))
            program = self.registry.merchant(mid).program
            assert program is not None
            self.accounts.append(acct)
            self.senders.append(TransactionSender(gw, acct.key))
            self.programs.append(PointProgramClient(gw, artifacts["PointProgram"].abi, program))
        self.touched: set[tuple[int, int]] = set()
        self.seq = 0

    def _send_all(self, txs: list[tuple[TransactionSender, str, bytes, int]]
                  ) -> list[dict[str, Any]]:
        # In windows: anvil leaves a large backlog of pending transactions unmined.
        receipts: list[dict[str, Any]] = []
        for k in range(0, len(txs), 32):
            sent: list[tuple[TransactionSender, SentTx]] = []
            for sender, to, data, gas in txs[k:k + 32]:
                s = sender.sign(to=to, data=data, gas=gas)
                sender.broadcast(s)
                sent.append((sender, s))
            receipts.extend(sender.wait(s) for sender, s in sent)
        return receipts

    def redemptions(self, n: int) -> list[tuple[dict[str, Any], bytes, int, int, int]]:
        """``n`` cross-merchant redemptions by fresh members, in batches per (issuer,
        acceptor) pair; give (receipt, calldata, lines, issuer, acceptor) per batch."""
        m = len(self.programs)
        members = [Account.create() for _ in range(n)]
        plan: dict[tuple[int, int], list[LocalAccount]] = defaultdict(list)
        for k, mem in enumerate(members):
            issuer = k % m
            acceptor = (issuer + 1 + (k // m) % (m - 1)) % m
            plan[(issuer, acceptor)].append(mem)
        # Fund every member with points of its issuer (not measured).
        funding: list[tuple[TransactionSender, str, bytes, int]] = []
        for issuer in range(m):
            mems = [mem for (i, _), ms in plan.items() if i == issuer for mem in ms]
            for k in range(0, len(mems), BATCH):
                items = [IssueItem(x.address, 100, keccak(text=f"fund-{self.seq}-{x.address}"))
                         for x in mems[k:k + BATCH]]
                funding.append((self.senders[issuer], self.programs[issuer].address,
                                self.programs[issuer].encode_issue_batch(items),
                                150_000 + 90_000 * len(items)))
        self._send_all(funding)
        deadline = int(self.gw.block("latest")["timestamp"]) + 86_400
        batches: list[tuple[TransactionSender, str, bytes, int]] = []
        meta: list[tuple[int, int, int]] = []
        for (issuer, acceptor), mems in plan.items():
            program = self.programs[issuer]
            for k in range(0, len(mems), BATCH):
                lines = []
                for x in mems[k:k + BATCH]:
                    self.seq += 1
                    r = Redemption(x.address, 10, acceptor + 1, order_ref(f"o-{self.seq}"), 0,
                                   deadline)
                    lines.append((r, sign_redemption(x, program.address, self.registry.address,
                                                         self.gw.chain_id, r)))
                batches.append((self.senders[acceptor], program.address,
                                program.encode_redeem_batch(lines), 200_000 + 150_000 * len(lines)))
                meta.append((len(lines), issuer, acceptor))
        receipts = self._send_all(batches)
        return [(rc, data, n_lines, i, a) for rc, (_, _, data, _), (n_lines, i, a)
                in zip(receipts, batches, meta, strict=True)]

    def redemption_floor(self, calldata: bytes, lines: int, period: int, issuer: int,
                         acceptor: int, *, with_ecrecover: bool = True) -> int:
        per_line = (2 * NEW_SLOT + UPDATE_SLOT + log_cost(3, 32) + log_cost(4, 64)
                    + (ECRECOVER if with_ecrecover else 0))
        per_batch = TX_BASE + calldata_cost(calldata) + UPDATE_SLOT + log_cost(4, 128)
        for merchant in (issuer, acceptor):
            per_batch += UPDATE_SLOT if (period, merchant) in self.touched else NEW_SLOT
        return per_line * lines + per_batch

    def close(self) -> int:
        receipt = self.operator.transact(to=self.clearing.address,
                                         data=self.clearing.encode("closePeriod"))
        return int(receipt["gasUsed"])

    def settle(self, period: int) -> tuple[int, int, int]:
        """Every debtor pays in full (deposit), then each creditor claims alone; give
        (deposits, their gas, claims' gas per creditor)."""
        m = len(self.programs)
        nets = [self.clearing.position_of(period, i + 1)[0] for i in range(m)]
        deposit_gas = deposits = 0
        for i, net in enumerate(nets):
            if net < 0:
                self.minter.transact(to=self.token.address, data=self.token.encode(
                    "mint", self.accounts[i].address, -net))
                receipt = self.senders[i].transact(to=self.token.address, data=self.token.encode(
                    "transferAndCall(address,uint256,bytes)", self.clearing.address, -net,
                    period.to_bytes(32, "big")))
                deposit_gas += int(receipt["gasUsed"])
                deposits += 1
        claims = [int(self.senders[i].transact(to=self.clearing.address, data=self.clearing.encode(
            "claim", period, [i + 1]))["gasUsed"]) for i, net in enumerate(nets) if net > 0]
        return deposits, deposit_gas, sum(claims) // max(len(claims), 1)


def close_and_redemption_gas(alliance: Alliance, n: int) -> None:
    artifacts = dict(alliance.contracts.artifacts)
    redemption_gas = floor = floor_no_ec = lines_total = 0
    for merchants in (10, 50):
        bench = Bench(alliance.gateway, artifacts, merchants)
        closes = []
        for count in (100, n):
            period = bench.clearing.current_period()
            for receipt, data, lines, issuer, acceptor in bench.redemptions(count):
                if merchants == 10 and count == n:
                    redemption_gas += int(receipt["gasUsed"])
                    floor += bench.redemption_floor(data, lines, period, issuer, acceptor)
                    floor_no_ec += bench.redemption_floor(data, lines, period, issuer, acceptor,
                                                          with_ecrecover=False)
                    lines_total += lines
                bench.touched.update({(period, issuer), (period, acceptor)})
            closes.append(bench.close())
        deposits, deposit_gas, claim_gas = bench.settle(bench.clearing.current_period() - 1)
        print(f"close with {merchants} merchants: {closes[0]:,} gas after 100 redemptions, "
              f"{closes[1]:,} after {n:,} = {closes[1] / closes[0]:.3f}x  (target: flat, ~1.0x);"
              f" {closes[1] / merchants:,.0f} gas per merchant; settling it: "
              f"{deposit_gas // max(deposits, 1):,} gas per deposit, {claim_gas:,} gas per "
              f"creditor's claim (O(1), paid to its payout address)")
    per = redemption_gas / lines_total
    print(f"gas per cross-merchant redemption (batches of up to {BATCH}): {per:,.0f} vs floor "
          f"{floor / lines_total:,.0f} = {redemption_gas / floor:.3f}x  (target <= 1.15x); "
          f"vs the floor without ecrecover {floor_no_ec / lines_total:,.0f} = "
          f"{redemption_gas / floor_no_ec:.3f}x")


def _fund(alliance: Alliance, merchants: list[AdmittedMerchant], members: list[LocalAccount],
          tag: str) -> None:
    """Member j gets 50 points of merchant j % 4 through the service (not measured)."""
    worker = outbox_worker(alliance)
    for i, m in enumerate(merchants):
        mine = members[i::4]
        for k in range(0, len(mine), BATCH):
            with alliance.store.session() as s:
                request_issue_batch(alliance, s, merchant_id=m.merchant_id, items=[
                    IssueLine(points=50, order_id=f"{tag}-fund-{i}-{k + j}", member=x.address)
                    for j, x in enumerate(mine[k:k + BATCH])])
    worker.drain(timeout_s=600)


def _plan(alliance: Alliance, merchants: list[AdmittedMerchant], members: list[LocalAccount],
          tag: str, nonce: int = 0
          ) -> list[tuple[AdmittedMerchant, AdmittedMerchant, list[SignedRedemption]]]:
    """The redemption batches: member j holds points of merchant j % 4 and spends 7 of them at
    the next merchant, signed (``nonce``); (issuer, acceptor, lines) per batch of ``BATCH``."""
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 86_400
    out = []
    for i, issuer in enumerate(merchants):
        acceptor = merchants[(i + 1) % 4]
        mine = members[i::4]
        for k in range(0, len(mine), BATCH):
            lines = []
            for j, x in enumerate(mine[k:k + BATCH]):
                oid = f"{tag}-r-{i}-{k + j}"
                r = Redemption(x.address, 7, acceptor.merchant_id, order_ref(oid), nonce,
                               deadline)
                sig = sign_redemption(x, issuer.program, alliance.contracts.registry.address,
                                      alliance.gateway.chain_id, r)
                lines.append(SignedRedemption(x.address, 7, oid, nonce, deadline,
                                              "0x" + sig.hex(), issuer.merchant_id))
            out.append((issuer, acceptor, lines))
    return out


class Profiles:
    """cProfile of the indexer's rounds and of the redeem handlers' checks and queueing, while
    switched on (the measured requests only): one profile per role, enabled around each call
    in the thread that makes it (cProfile profiles the thread that enables it)."""

    def __init__(self) -> None:
        self.on = False
        self.stats: dict[str, pstats.Stats] = {}
        self._lock = threading.Lock()

    def wrap(self, owner: Any, attr: str, role: str) -> None:
        inner = getattr(owner, attr)

        def profiled(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return inner(*args, **kwargs)
            prof = cProfile.Profile(time.thread_time)  # CPU, not waits for the GIL
            prof.enable()
            try:
                return inner(*args, **kwargs)
            finally:
                prof.disable()
                with self._lock:
                    known = self.stats.get(role)
                    if known is None:
                        self.stats[role] = pstats.Stats(prof)
                    else:
                        known.add(prof)

        setattr(owner, attr, profiled)

    def report(self, n: int, top: int = 30) -> None:
        for role, stats in self.stats.items():
            print(f"--- profile of the {role} ({n:,} redemptions; own time first) ---")
            stats.sort_stats("tottime").print_stats(top)


PROFILES: Profiles | None = None


def replay_indexer(alliance: Alliance, after_block: int, n: int, times: int) -> None:
    """The indexer's CPU per redemption, load aside: the blocks of the measured requests
    (those after ``after_block``) read again ``times`` times by a fresh follower of the
    service's projections, in this thread, a round per block as the live indexer meets them
    (each round's tip is the next block), every projection rolled back to ``after_block``
    first (the follower's reorg rollback). Prints the thread's CPU per redemption of each."""
    from ledger.indexer import follower as follower_module
    from ledger.indexer import repos as cursors
    from ledger.runtime import indexer

    gw = alliance.gateway
    head = gw.block_number()
    after_hash = gw.header(after_block).hash
    tips = gw.headers(list(range(after_block + 1, head + 1)))
    real_tip = follower_module._RoundBlocks.tip
    figures = []
    try:
        for _ in range(times):
            follower = indexer(alliance)
            with alliance.store.session() as s:
                for p in follower.projections:
                    p.rollback(s, after_block)
                    cursors.set_cursor(s, p.name, after_block, after_hash)
                cursors.forget_blocks_after(s, after_block)
            prof = cProfile.Profile(time.thread_time) if PROFILES is not None else None
            if prof is not None:
                prof.enable()
            t0 = time.thread_time()
            for tip in tips:
                def at(blocks: Any, tip: Any = tip) -> Any:
                    blocks._blocks[tip.number] = tip
                    return tip
                follower_module._RoundBlocks.tip = at  # type: ignore[method-assign,assignment]
                follower.sync()
            figures.append((time.thread_time() - t0) * 1e6 / n)
            if prof is not None:
                prof.disable()
                print("--- profile of the indexer's replay (own time first) ---")
                pstats.Stats(prof).sort_stats("tottime").print_stats(40)
                pstats.Stats(prof).sort_stats("cumtime").print_stats(60)
    finally:
        follower_module._RoundBlocks.tip = real_tip  # type: ignore[method-assign]
    print(f"the indexer replaying blocks {after_block + 1}..{head} (the measured requests' "
          f"{n:,} redemptions), a round a block, thread CPU per redemption: "
          + " / ".join(f"{f:,.1f} us" for f in figures))


def replay_checks(alliance: Alliance, merchants: list[AdmittedMerchant],
                  members: list[LocalAccount], times: int) -> None:
    """The redeem handlers' checks (:func:`check_redeem_batch`: lines validated, the chain's
    reads in one batch, every signature recovered) of the same members' batches signed again
    (nonce 1, unused), in this thread, ``times`` times alone and ``times`` times beside one
    thread running Python (as the outbox and the indexer run beside the handlers: a C call
    that lets the GIL go waits to get it back); the thread's CPU per line of each."""
    plan = _plan(alliance, merchants, members, "checks", nonce=1)
    n = sum(len(lines) for _, _, lines in plan)
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    figures: dict[str, list[float]] = {"alone": [], "beside a busy thread": []}
    for label, out in figures.items():
        other = threading.Thread(target=spin, daemon=True) if label != "alone" else None
        if other is not None:
            stop.clear()
            other.start()
        try:
            for _ in range(times):
                prof = cProfile.Profile(time.thread_time) if PROFILES is not None else None
                if prof is not None:
                    prof.enable()
                t0 = time.thread_time()
                for _, acceptor, lines in plan:
                    checked = check_redeem_batch(alliance, merchant_id=acceptor.merchant_id,
                                                 items=lines)
                    assert checked.error is None, checked.error
                out.append((time.thread_time() - t0) * 1e6 / n)
                if prof is not None:
                    prof.disable()
                    print(f"--- profile of the redeem checks replayed, {label} ---")
                    pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        finally:
            stop.set()
            if other is not None:
                other.join()
    print(f"the redeem checks of the same {n:,} redemptions signed again, in this thread, CPU "
          "per line: " + "; ".join(f"{label} " + " / ".join(f"{f:,.1f} us" for f in out)
                                   for label, out in figures.items()))


def api_redemptions(alliance: Alliance, merchants: list[AdmittedMerchant], n: int,
                    replays: int = 0, check_replays: int = 0, shape: str = "thread") -> float:
    """Cross-merchant redemptions through a live server, batch requests of 200; gives the
    rate (redemptions/s from the first request until every operation is confirmed); then
    ``replays`` replays of the indexer over the requests' blocks (:func:`replay_indexer`) and
    ``check_replays`` of the handlers' checks (:func:`replay_checks`). ``shape``: where the
    server's indexer runs (:data:`bench_api.SHAPES`); in its own process, its CPU is counted
    in the service's."""
    members = [Account.create() for _ in range(n)]
    _fund(alliance, merchants, members, "api")
    bodies: list[tuple[AdmittedMerchant, dict[str, Any]]] = [
        (acceptor, {"items": [{"member": r.member, "points": r.points, "order_id": r.order_id,
                               "nonce": r.nonce, "deadline": r.deadline,
                               "signature": r.signature,
                               "program_merchant_id": r.program_merchant_id} for r in lines]})
        for _, acceptor, lines in _plan(alliance, merchants, members, "api")]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server, thread = _serve(alliance, port, indexer_mode=shape)  # type: ignore[arg-type]
    try:
        indexer = _indexer_of(server)
        _wait_indexed(alliance, indexer)  # the funding's events: not the measured work
        pid = getattr(indexer, "pid", None)
        # One request before the clock: a server's first request builds what it keeps for
        # every later one (the request guard's scan of the routes, FastAPI's route state:
        # 0.2-1.3 s of the event loop's CPU), a start-up cost, not a redemption's.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:
            assert r.status == 200, r.status
        start_block = alliance.gateway.block_number()
        start: dict[str, Any] = {}

        def counters_start() -> None:
            # With the clock, when the clients' process is ready: the service's idle rounds
            # while it imported web3 and FastAPI (1-5 s by the load) were counted as the
            # redemptions' CPU before (as in bench_api's batch figure).
            start["threads"], start["cpu"] = _thread_cpu(), time.process_time()
            start["child"] = _proc_cpu(pid)
            start["node"] = _node_cpu_s(alliance)
            if PROFILES is not None:
                PROFILES.on = True

        # The clients run in their own process, as partners' systems would: the measured
        # process is the service alone (API + outbox worker). The clock starts at the first
        # request (the client process's 2-3 s of imports were counted before).
        t0, op_ids = send_from_process(port, [
            {"key_id": m.key_id, "secret": m.secret, "path": "/v1/points/redeem-batch",
             "body": body} for m, body in bodies],
            Path(alliance.settings.data_dir) / "bench-requests.json", at_start=counters_start)
        threads0, cpu0 = start["threads"], start["cpu"]
        accepted = time.perf_counter() - t0
        _wait_confirmed(alliance, op_ids, timeout_s=600)
        elapsed = time.perf_counter() - t0
        cpu_us = (time.process_time() - cpu0) * 1e6 / n
        node_us = (_node_cpu_s(alliance) - start["node"]) * 1e6 / n
        # The service's CPU per redemption by thread (steadier than the rate on a shared
        # machine): request handlers (AnyIO), the outbox worker, the indexer, the event loop.
        per = {k: (v - threads0.get(k, 0.0)) * 1e6 / n for k, v in _thread_cpu().items()}
        if pid is not None:
            per["indexer process"] = (_proc_cpu(pid) - start["child"]) * 1e6 / n
            cpu_us += per["indexer process"]
        if PROFILES is not None:
            PROFILES.on = False
    finally:
        server.should_exit = True
        thread.join(10)
    rate = n / elapsed
    print(f"API: {n:,} cross-merchant redemptions in {len(bodies)} batch requests confirmed in "
          f"{elapsed:.2f} s = {rate:,.0f}/s  (target >= 5,000/s: {rate / 5_000:.2f}x); accepted "
          f"at {n / accepted:,.0f}/s; {SHAPES[shape]}")
    print(f"  the service's CPU per redemption (funding done, clients in their own process): "
          f"{cpu_us:,.0f} us; by thread: " + ", ".join(
              f"{k} {v:,.0f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 1)
          + f"; the node (anvil) {node_us:,.0f} us")
    if PROFILES is not None:
        PROFILES.report(n)
    if replays:
        replay_indexer(alliance, start_block, n, replays)
    if check_replays:
        replay_checks(alliance, merchants, members, check_replays)
    return rate


def _node_cpu_s(alliance: Alliance) -> float:
    """The node's (anvil's process tree's) CPU seconds so far; 0 if it is not ours. On two
    cores the node and the service share the CPU: what the service asks of the node (its
    reads: a redeem batch's nonce words, the indexer's logs, the outbox's receipts) is counted
    here, next to the chain alone's."""
    pid = anvil.status(alliance.settings).pid
    return _tree_cpu_s(pid) if pid else 0.0


# The reference's wait (the twin of bench_points.wait_mined on branch ledger7, for several
# senders): no transaction of ours mined for STALL_S and what still waits is sent again (as
# the outbox does after a block) and, on a node that mines on arrival, one block is mined:
# anvil's automine builds one block per arrival and keeps what did not fit it pending until
# something else arrives, so "send all, then wait" could wait for ever. No progress for
# ALONE_BOUND_S fails the run saying so.
STALL_S = 0.05
ALONE_BOUND_S = 60.0
SEND_BYTES = 1_000_000


def wait_mined(gw: ChainGateway, firsts: dict[str, int], raws: dict[str, list[str]], *,
               bound_s: float = ALONE_BOUND_S) -> int:
    """Wait until every sender's transactions ``raws[address]`` (nonces from
    ``firsts[address]``) are mined, reading the senders' nonces at the latest block in one
    JSON-RPC batch (``bench_points.send_and_wait`` for several senders: nudged the same way,
    ``ChainGateway.mine_stalled``). Gives how often the node was nudged; raises RuntimeError
    after ``bound_s`` without one transaction mined."""
    addresses = list(raws)
    seen, moved_at, nudges = -1, time.monotonic(), 0
    nudged_at = moved_at
    while True:
        answers = gw.rpc_batch([("eth_getTransactionCount", [a, "latest"]) for a in addresses])
        mined = {a: int(str(x), 16) for a, x in zip(addresses, answers, strict=True)}
        done = sum(min(mined[a] - firsts[a], len(raws[a])) for a in addresses)
        now = time.monotonic()
        if done >= sum(len(r) for r in raws.values()):
            return nudges
        if done != seen:
            seen, moved_at = done, now
        elif now - moved_at > bound_s:
            raise RuntimeError(f"the chain alone: {done} pre-signed transactions mined; none "
                               f"more for {bound_s:.0f} s")
        elif now - max(moved_at, nudged_at) > STALL_S:
            waiting = [r for a in addresses for r in raws[a][max(0, mined[a] - firsts[a]):]]
            for k in range(0, len(waiting), 8):  # ~1 MB a batch (see SEND_BYTES)
                gw.rpc_batch([("eth_sendRawTransaction", [r])
                              for r in sending_order(gw, waiting[k:k + 8])])
            gw.mine_stalled()  # on a node that mines on arrival only
            nudges, nudged_at = nudges + 1, now
        time.sleep(0.001)


def chain_alone_redemptions(alliance: Alliance, merchants: list[AdmittedMerchant],
                            n: int) -> float:
    """The reference for the API figure: the same redemption batches (same plan of members,
    issuers and acceptors, fresh members funded the same way) encoded as the outbox encodes
    them (``REDEEM_BATCH``: ``redeemBatch`` of the issuer's program, the kind's gas bound),
    signed beforehand from each acceptor's key, then sent raw (``eth_sendRawTransaction``,
    20 to a JSON-RPC batch) and waited for, every receipt's status checked. Gives
    redemptions/s from the first send to the last receipt: the chain alone."""
    gw = alliance.gateway
    members = [Account.create() for _ in range(n)]
    _fund(alliance, merchants, members, "alone")
    senders = {m.merchant_id: TransactionSender(gw, merchant_signing_key(alliance, m.merchant_id))
               for m in merchants}
    nonces = {mid: gw.nonce(s.address, "pending") for mid, s in senders.items()}
    firsts = {s.address: nonces[mid] for mid, s in senders.items()}
    max_fee, priority = next(iter(senders.values())).fees()
    order: list[str] = []
    raws: dict[str, list[str]] = defaultdict(list)
    for issuer, acceptor, lines in _plan(alliance, merchants, members, "alone"):
        payload = RedeemPayload(issuer.program, tuple(
            RedeemLinePayload(r.member, r.points, r.order_id, order_ref(r.order_id), r.nonce,
                              r.deadline, bytes.fromhex(r.signature[2:]), acceptor.merchant_id,
                              issuer.merchant_id, issuer.program) for r in lines))
        call = REDEEM_BATCH.encode(alliance.contracts, None, [payload])
        sender = senders[acceptor.merchant_id]
        sent = sender.sign(to=call.to, data=call.data, gas=REDEEM_BATCH.gas_bound([payload]),
                           nonce=nonces[acceptor.merchant_id], max_fee=max_fee,
                           priority=priority)
        nonces[acceptor.merchant_id] += 1
        order.append("0x" + sent.raw.hex())
        raws[sender.address].append(order[-1])
    # Sent in the order the API's clients send them (acceptors interleaved).
    order = [r for k in range(max(len(v) for v in raws.values())) for v in raws.values()
             if k < len(v) for r in [v[k]]]
    # JSON-RPC batches of up to ~1 MB: a 200-line redemption is ~120 KB of hex, and anvil
    # answers "Invalid request" to a body of 20 of them.
    chunks: list[list[str]] = [[]]
    for r in order:
        if chunks[-1] and sum(map(len, chunks[-1])) + len(r) > SEND_BYTES:
            chunks.append([])
        chunks[-1].append(r)
    hashes: list[str] = []
    node0 = _node_cpu_s(alliance)
    t0 = time.perf_counter()
    for chunk in chunks:
        # As the outbox's sender sends (highest nonce first on anvil; the answers back in
        # the chunk's order).
        ordered = sending_order(gw, chunk)
        answers = gw.rpc_batch([("eth_sendRawTransaction", [r]) for r in ordered])
        bad = [a for a in answers if isinstance(a, ChainError)]
        assert not bad, f"a pre-signed redemption batch was refused: {bad[0]}"
        by_raw = dict(zip(ordered, answers, strict=True))
        hashes.extend(str(by_raw[r]) for r in chunk)
    nudges = wait_mined(gw, firsts, raws)
    receipts = receipts_of(gw, hashes, bound_s=ALONE_BOUND_S)
    elapsed = time.perf_counter() - t0
    node_us = (_node_cpu_s(alliance) - node0) * 1e6 / n
    failed = [h for h, r in zip(hashes, receipts, strict=True)
              if int(str(r["status"]), 16) != 1]
    assert not failed, f"{len(failed)} pre-signed redemption batches failed: {failed[:3]}"
    rate = n / elapsed
    print(f"the chain alone (the same redemption batches, {len(order)} redeemBatch "
          f"transactions pre-signed from the acceptors' keys, sent raw, receipts waited for): "
          f"{n:,} in {elapsed:.2f} s = {rate:,.0f}/s; the node (anvil) {node_us:,.0f} us a "
          f"redemption" + (f"; the node was nudged {nudges} times" if nudges else ""))
    return rate


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redemptions", type=int, default=10_000)
    ap.add_argument("--skip-api", action="store_true")
    ap.add_argument("--skip-gas", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--replay-indexer", type=int, default=0, metavar="TIMES")
    ap.add_argument("--replay-checks", type=int, default=0, metavar="TIMES")
    ap.add_argument("--api-shape", choices=sorted(SHAPES), default="thread",
                    help="where the server's indexer runs (default: a thread, as measured "
                         "before; production runs it in its own process)")
    args = ap.parse_args()
    if args.profile:
        global PROFILES
        from ledger.indexer.follower import Follower
        from ledger.outbox.worker import OutboxWorker
        from ledger.points import service as points_service

        PROFILES = Profiles()
        PROFILES.wrap(Follower, "process_once", "indexer's rounds")
        PROFILES.wrap(points_service, "check_redeem_batch", "redeem handlers' checks")
        PROFILES.wrap(points_service, "queue_redemptions", "redeem handlers' queueing")
        PROFILES.wrap(OutboxWorker, "step", "outbox's rounds")
    with tempfile.TemporaryDirectory(prefix="alliance-bench-", ignore_cleanup_errors=True) as tmp:
        settings = Settings(data_dir=Path(tmp), batch_max=BATCH, max_batch_items=1000,
                            rate_limit_per_minute=10**9)
        try:
            alliance = Alliance.open(settings)
            # The API part first, on a fresh chain: anvil slows down as its history grows.
            if not args.skip_api:
                merchants = [admit_merchant(alliance, name=f"API Merchant {i}",
                                            symbol=f"API{i}", rate=3 + i) for i in range(4)]
                api = api_redemptions(alliance, merchants, args.redemptions,
                                      args.replay_indexer, args.replay_checks,
                                      args.api_shape)
                alone = chain_alone_redemptions(alliance, merchants, args.redemptions)
                print(f"API vs the chain alone: {api:,.0f}/s vs {alone:,.0f}/s = "
                      f"{api / alone:.2f}x  (target >= 5,000/s or >= 0.9x)")
                nets = sum(alliance.contracts.clearing.position_of(
                    alliance.contracts.clearing.current_period(), m.merchant_id)[0]
                    for m in merchants)
                assert nets == 0, f"positions do not sum to zero: {nets}"
            if not args.skip_gas:
                close_and_redemption_gas(alliance, args.redemptions)
            alliance.close()
        finally:
            anvil.stop(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
