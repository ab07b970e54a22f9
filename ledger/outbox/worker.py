"""The outbox worker: sends queued operations to the chain, exactly once.

Crash safety comes from the order of steps, each its own database commit:

1. claim: queued operations of one signer become ``sending`` (no other worker takes them);
2. sign: the transaction is signed, and its hash, nonce and raw bytes are recorded with the
   operations marked ``submitted`` — *before* it is broadcast;
3. broadcast, then wait for the receipt; mark ``confirmed`` (block number) or, on a revert,
   bisect the batch so only the offending operations fail, each with the Solidity error name.

The service's thread does not wait for receipts (:meth:`OutboxWorker.step`): each signer keeps
a window of transactions in flight, up to ``WINDOW_BLOCKS`` blocks' gas limit, sends more while
the window has room and collects receipts as they come, so a chain that mines a block every
second always finds the next block's worth waiting in its pool. On such a chain (two of its
transactions seen in one block, or ``settings.block_time_s`` set) a batch's gas limit is its
gas used as one
``eth_createAccessList`` measures it plus headroom instead of the kind's worst-case bound (a
block takes a transaction while the gas used before it plus its gas limit fits), and a signer's
batches are sized so that whole blocks fill: equal batches, a whole number of which fill a
block wherever the node starts it. Tools and tests call :meth:`OutboxWorker.process_once`,
which sends a round and waits for all of it.

On start, :meth:`OutboxWorker.recover` looks at what a crash may have left: ``submitted``
operations whose transaction was mined are settled from the receipt; ones the node never saw
are rebroadcast from the recorded raw bytes (same nonce, so it cannot land twice); ``sending``
ones (claimed, never signed) go back to ``queued``; then the signer's nonce counter is aligned
with the node. A resend that races a landed one is harmless: the program rejects a second
issue of the same order reference, and the operation ends confirmed by the transaction that
landed (:meth:`OutboxWorker._landed_before`).

A chain can also fall behind the outbox: a node restarted from an older state (anvil killed
with -9 comes back from its last state dump), a reorganisation deeper than what its pool kept.
Every ROLLBACK_CHECK_S the worker compares each signer's nonces at the node with the store's
(:meth:`OutboxWorker._check_rollback`); a signer the chain fell behind is re-synced: what the
store saw mined from the node's latest nonce on is pending again (its operations back to
``submitted``), then settled, rebroadcast from its recorded bytes in nonce order, or, where no
recorded transaction holds a nonce, the gap is filled with an empty transaction; the counter
restarts from the node. Nothing is signed again at another nonce, so nothing can land twice.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..chain.funding import ether
from ..chain.sender import SentTx, StoreNonces, TransactionSender
from ..errors import ChainError, ContractRevertError, LedgerError, SignerUnfundedError
from ..logs import operations as log_operations
from ..metrics import OPS_CONFIRMED, OPS_ROLLED_BACK
from ..store import repos as store_repos
from ..store.models import OperationStatus
from ..worker import Worker
from . import repos as outbox_repos
from .bell import BELL
from .kinds import Call, Claimed, Group, KindRegistry, Signer

log = logging.getLogger(__name__)

# Transactions sent back to back per merchant per round before their receipts are awaited.
PIPELINE_TXS = 4

# Seconds before a merchant whose relaying key cannot pay is tried again.
UNFUNDED_RETRY_S = 5.0

# The thread's window per signer: the gas limits of its unsettled transactions, in blocks'
# gas limits (a block-producing chain finds the next block's worth waiting while one is mined).
WINDOW_BLOCKS = 3
# Two of the thread's transactions mined in one block mean a chain that mines in blocks (an
# automining node gives each its own): for this many seconds after, batches get gas limits
# measured, not bounded, and are sized to fill blocks.
BLOCK_MODE_S = 30.0
# A measured batch's gas limit: its gas used (eth_createAccessList) plus this much.
MEASURED_HEADROOM_PERCENT = 5
MEASURED_HEADROOM_GAS = 30_000
# In block mode a thread's round claims as many blocks' worth of a signer's queue as the
# window has room for (shared among the signers with queued work), not one block's: a round
# costs the worker some hundreds of milliseconds on a loaded machine (claim, measure, sign,
# record, broadcast), and a worker that sends one block per round, just in time, leaves a
# block empty at every hiccup; the node keeps a sender's transactions that do not fit the
# block it builds for the next ones (anvil 1.7 included). Receipts are then read in one
# JSON-RPC batch per round. False: one block per round and a receipt per request (the
# behaviour before; scripts/bench_nodes.py --old-rounds measures it).
FILL_WINDOW = True
# Seconds an unmined transaction waits before the node is asked whether it still has it (a
# node may drop a transaction from its pool: a restart, a full pool; anvil 1.7 keeps a
# sender's transactions that do not fit the block it builds for the next one, tried in
# round prod4); one it lost is rebroadcast at once.
DROP_CHECK_S = 3.0
# A block's worth in block mode is n even batches and one tail batch sized so that the n + 1
# fit a block as a node packs it wherever it starts one (any n + 1 consecutive batches of the
# repeating pattern hold the same gas, and the last one's headroom is at most an even
# batch's). A batch's gas is modelled as a fixed cost (21,000 intrinsic, the call's
# overhead: ~83k for an issue batch on anvil) plus a cost per line, both learned from a
# round's largest and smallest batches measured; this fixed cost until then.
TAIL_FIXED_GAS = 100_000
# False: n even batches a block, no tail (the plan before; scripts/bench_nodes.py --old-plan).
BLOCK_TAIL = True
# Gas limits measured by ``eth_simulateV1`` (the round's batches executed in sequence, each
# on the state the ones before it leave, as the node will run them) where the node has it;
# ``eth_createAccessList`` (each batch alone, on the latest state) otherwise. False: the
# access-list measure only (scripts/bench_nodes.py --old-rounds).
MEASURE_IN_SEQUENCE = True
# JSON-RPC error codes of a node that has no such method: -32601 "method not found" (geth,
# anvil) and -32004 "method not supported" (EIP-1474; Hardhat Network's answer to
# eth_simulateV1).
NO_SUCH_METHOD = frozenset({-32601, -32004})
# Seconds without a transaction of the outbox mined, some waiting, before a node that mines on
# arrival (anvil, Hardhat Network in automine: ``ChainGateway.automines``) is asked to mine
# what it holds: it builds one block per arrival, what does not fit waits for the next
# arrival, and a round's transactions sent in one request can be more than one block takes.
# The benchmark's reference waits the same way (scripts/bench_points.py, ``send_and_wait``).
AUTOMINE_STALL_S = 0.25
# On a node that mines on arrival, the thread's round reads the receipts of what is in flight
# in a helper thread while it claims, signs and records the next round, and broadcasts that
# round once the read is back (:meth:`OutboxWorker.step`). Read in the round's own thread, the
# read came after the round's work and waited for the node to finish mining: the thread's
# Python and the node's mining took turns (scratch timeline on fad99b7, ledger layer, 10,000
# ops: the receipts read 5-100 ms a round, the broadcast 4-160, the node idle a quarter to
# half of the run). False: read in the round's thread, after its work (the shape before).
READ_AHEAD = True
# The key of the block plan shared by every signer in block mode.
ALL_SIGNERS = ""
# Seconds between two comparisons of the signers' nonces at the node with the store's (one
# JSON-RPC batch of two eth_getTransactionCount per signer).
ROLLBACK_CHECK_S = 2.0
# Seconds a signer's counter may stay ahead of the node's pending nonce (transactions the
# store holds as sent that the node does not have, and no rebroadcast filled the gap) before
# the outbox re-syncs the signer. Above DROP_CHECK_S: a transaction a node dropped from its
# pool is rebroadcast first.
GAP_BOUND_S = 6.0
# How far back (blocks) the outbox checks that a transaction it saw mined is still in the
# block it was seen in: a reorganisation may mine it again in another block, and the
# operation's block number follows it (:meth:`OutboxWorker._check_moved`). Deeper
# reorganisations are the rollback case above.
MOVED_CHECK_BLOCKS = 32

SignerLookup = Callable[[int], Signer]


@dataclass
class Prepared:
    """A signer's round claimed, signed and recorded (``submitted``), not yet broadcast: the
    thread's round (:meth:`OutboxWorker.step`) broadcasts it once the last round's receipts
    are read."""

    merchant_id: int
    signer: Signer
    signed: list[tuple[Group, SentTx]]
    claimed: int  # operations the round took off the queue


@dataclass(frozen=True)
class UnfundedSigner:
    """A relaying key whose operations wait for gas money, and why."""

    merchant_id: int
    address: str
    reason: str
    since: float  # unix time
    need_wei: int = 0  # what its last round needed up front (0: unknown)


@dataclass
class InFlight:
    """A transaction sent and not yet settled, and the group it carries; ``candidates`` are
    the transactions of its nonce sent so far (the first, then fee-bumped replacements)."""

    signer: Signer
    group: Group
    sent: SentTx
    candidates: list[SentTx] = field(default_factory=list)
    checked_at: float = 0.0  # when the node was last asked whether it still has it

    def __post_init__(self) -> None:
        if not self.candidates:
            self.candidates.append(self.sent)


def group_operations(claimed: Sequence[Claimed], home: str | None,
                     limit: int | Callable[[Claimed], int]) -> list[Group]:
    """Split claimed operations into transactions: batchable ones by batch key, up to
    ``limit`` lines each, in the order claimed; the rest one per transaction. ``limit`` may
    be a function giving the line limit of each group as it is opened (by its first
    operation): the outbox sizes batches to fill blocks that way."""
    limit_of: Callable[[Claimed], int] = limit if callable(limit) else (lambda _c: limit)
    open_groups: dict[Hashable, tuple[list[Claimed], int, int]] = {}
    groups: list[list[Claimed]] = []
    for c in claimed:
        key = c.kind.batch_key(c.payload, home)
        if key is None:
            groups.append([c])
            continue
        n = c.lines
        current = open_groups.get(key)
        if current is None or current[1] + n > current[2]:
            group: list[Claimed] = []
            groups.append(group)
            current = (group, 0, limit_of(c))
        current[0].append(c)
        open_groups[key] = (current[0], current[1] + n, current[2])
    return [Group(tuple(g)) for g in groups]


class OutboxWorker(Worker):
    """Sends the outbox's operations; one thread per process is enough for many signers.

    It knows no capability: ``registry`` holds the kinds it can send, ``signer_for`` gives
    a merchant's sender and own contract (both composed in :mod:`ledger.runtime`)."""

    name = "outbox"

    def __init__(self, alliance: Alliance, *, registry: KindRegistry, signer_for: SignerLookup,
                 idle_sleep_s: float | None = None) -> None:
        super().__init__(idle_sleep_s=idle_sleep_s if idle_sleep_s is not None
                         else alliance.settings.batch_window_ms / 1000)
        self.alliance = alliance
        self.registry = registry
        self.signer_for = signer_for
        # Relaying keys that cannot pay, by address (``/ready`` reports them).
        self.unfunded: dict[str, UnfundedSigner] = {}
        self._budget: dict[str, int] = {}  # wei a key is known to hold beyond what it sent
        self._retry_at: dict[int, float] = {}  # merchant id -> monotonic time
        # The thread's rounds (:meth:`step`): transactions in flight by signer, in nonce
        # order; the last block a receipt came from, and until when the chain is known to
        # mine in blocks; the block gas limit; per
        # signer the gas used planned into the block being filled; per kind the gas used per
        # line last measured.
        self._in_flight: dict[str, list[InFlight]] = {}
        self._last_block = -1
        self._block_mode_until = 0.0
        self._block_gas: int | None = None
        self._fill: dict[str, int] = {}
        self._line_gas: dict[str, int] = {}
        self._turn = 0
        # Whether the node measures a round's batches in sequence (None: not asked yet); per
        # signer, the batches of the block's worth being planned that are already opened.
        self._sequence_measure: bool | None = None
        self._period_pos: dict[str, int] = {}
        self._line_fixed: dict[str, int] = {}  # per kind: a batch's gas beyond its lines
        self._patterns: dict[tuple[int, ...], tuple[int, int, int]] = {}
        # Noticing a chain that rolled back under the outbox: when the signers' nonces are
        # next compared with the node's; per signer whose counter is ahead of the node's
        # pending nonce, that nonce and since when the node has not moved from it; and the
        # signers whose oldest waiting transaction sits behind a gap (re-synced at the next
        # check, without waiting GAP_BOUND_S).
        self._next_check = 0.0
        self._next_moved_check = 0.0
        self._moved_checked_head = -1
        self._gap_since: dict[str, tuple[int, float]] = {}
        self._suspect: set[str] = set()
        # When a transaction of the thread's was last sent or seen mined (a node that mines on
        # arrival and holds some unmined past AUTOMINE_STALL_S is asked to mine them).
        self._progress_at = 0.0
        # Per signer whose last round sent less than a batch: until when its next round
        # waits for more operations to gather (the thread's rounds only; see :meth:`step`).
        self.gather_s = alliance.settings.batch_window_ms / 1000
        self._gather_until: dict[str, float] = {}
        # The bell (:mod:`ledger.outbox.bell`) as the thread's round began; as the queue was
        # last read, whether it held work then, and when it is read again unrung (what other
        # processes queue rings no bell here: read every batch_window_ms, as the thread
        # polled before the bell).
        self._bell_seen = BELL.rung
        self._bell_read = -1
        self._queue_had_work = True
        self._queue_read_due = 0.0
        # The helper thread that reads a round's receipts ahead (READ_AHEAD), made on first
        # use: one thread, so one kept connection to the node.
        self._reader: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ one round

    def process_once(self) -> int:
        """Send up to PIPELINE_TXS batches per signer with queued work, then settle them;
        give the operations done. Every signer's transactions go out before any receipt is
        awaited, so the chain works on one merchant's batch while the next is being sent."""
        self._check_rollback()
        self._check_moved()
        done, in_flight = self._submit_round()
        self._settle_round(in_flight)
        return done

    def _submit_round(self) -> tuple[int, list[InFlight]]:
        """Claim and send every signer's queued work; give the count and what is in flight."""
        done = 0
        in_flight: list[InFlight] = []
        for merchant_id in self._queued_merchants():
            n, sent = self._submit_merchant(merchant_id)
            done += n
            in_flight.extend(sent)
        return done, in_flight

    def _queued_merchants(self) -> list[int]:
        return list(self._queued_counts())

    def _queued_counts(self) -> dict[int, int]:
        """Queued operations by merchant (of those with any)."""
        depth = self.alliance.settings.confirmations
        if depth > 0:
            with self.alliance.store.session() as s:
                outbox_repos.promote_confirmed(
                    s, max_block=self.alliance.gateway.block_number() - depth)
        with self.alliance.store.read_session() as s:
            # (counted up to a batch: a round asks no more of it)
            return outbox_repos.queued_counts(s, cap=self.alliance.settings.batch_max)

    # ------------------------------------------------------------------ the thread's round

    def step(self) -> int:
        """The thread's round: send more of each signer's queue while its window has room,
        then settle whatever receipts have come, waiting for none. Gives the operations sent
        and settled (0: nothing happened, the thread pauses ``idle_sleep_s``)."""
        self._bell_seen = BELL.rung
        done = self._check_rollback()
        self._check_moved()
        block_mode = self.block_mode
        if block_mode:
            done += self._collect()
        # On a node that mines on arrival (not block mode) the round overlaps the node's
        # work: the signers' rounds are claimed, signed and recorded while the node still
        # mines what the last round sent; then that round's receipts are read (a read waits
        # while the node mines), the new rounds broadcast, and only then the receipts read
        # settled, while the node mines the new ones. Read before the round's work (and again
        # right after its broadcast), the two ran one after the other: the node idle while
        # the round was built, the thread idle while it was mined.
        prepared: list[Prepared] = []
        window = WINDOW_BLOCKS * self._block_gas_limit()
        # (the receipts of what is in flight, read while this round is built: see READ_AHEAD)
        ahead = self._read_ahead() if not block_mode else None
        if block_mode:
            if not self._in_flight:
                self._fill.pop(ALL_SIGNERS, None)  # idle: the next batch starts a block
            elif self._in_flight_gas() >= window:
                return done
        queued = self._queued_counts_if_due()
        merchant_ids = list(queued)
        if merchant_ids and block_mode:
            k = self._turn % len(merchant_ids)  # every merchant opens a block in turn
            merchant_ids = merchant_ids[k:] + merchant_ids[:k]
            self._turn += 1
        limit = self.alliance.settings.batch_max
        now = time.monotonic()
        for merchant_id in merchant_ids:
            address = self.signer_for(merchant_id).sender.address
            if not block_mode and queued[merchant_id] < limit \
                    and now < self._gather_until.get(address, 0.0):
                continue  # its last round sent less than a batch: more gathers first
            flights = self._in_flight.get(address, [])
            if not flights:
                self._fill.pop(address, None)  # idle: its next batch starts a block
                self._period_pos.pop(address, None)
            elif sum(f.candidates[-1].gas for f in flights) >= \
                    WINDOW_BLOCKS * self._block_gas_limit():
                continue
            if block_mode and self._in_flight_gas() >= window:
                break
            blocks = 1
            if block_mode and FILL_WINDOW:
                # the window's free blocks, shared among the signers with queued work
                room = (window - self._in_flight_gas()) // self._block_gas_limit()
                blocks = max(1, room // len(merchant_ids))
            if not block_mode:
                ready = self._prepare_merchant(merchant_id)
                if ready is not None:
                    prepared.append(ready)
                continue
            n, sent = self._submit_merchant(merchant_id, blocks=blocks)
            done += n
            if sent:
                self._in_flight.setdefault(address, []).extend(sent)
            self._gather_until.pop(address, None)
        if not block_mode:
            def broadcast() -> int:  # once: the rounds are taken off the list
                ready, prepared[:] = prepared[:], []
                return self._broadcast_prepared(ready, limit)
            try:
                done += self._collect(then=broadcast, ahead=ahead)
            finally:
                done += broadcast()  # (the read failed: what is recorded goes out anyway)
        elif ahead is not None:
            ahead.cancel()
        return done

    def _read_ahead(self) -> Future[dict[str, dict[str, Any] | None] | None] | None:
        """The receipts of every candidate in flight now, being read in the helper thread
        (None: nothing in flight, or not READ_AHEAD / FILL_WINDOW)."""
        if not (READ_AHEAD and FILL_WINDOW and self._in_flight):
            return None
        if self._reader is None:
            self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-receipts")
        return self._reader.submit(self._read_receipts, self._in_flight_hashes())

    def _broadcast_prepared(self, prepared: list[Prepared], limit: int) -> int:
        """Broadcast the signers' rounds prepared by :meth:`step`; give the operations sent
        (or given back to the queue, the node refusing a key that cannot pay). Every round is
        recorded before the first is broadcast: one signer's broadcast that fails does not
        keep the others' rounds unsent (they would wait for a re-sync); its error is raised
        once all were tried (the round fails as before, the thread retries)."""
        done = 0
        failure: Exception | None = None
        for ready in prepared:
            address = ready.signer.sender.address
            try:
                with log_operations(g_id for g, _ in ready.signed for g_id in g.op_ids):
                    n, sent = self._broadcast_merchant(ready)
            except Exception as exc:  # noqa: BLE001 - raised below, after the others
                failure = failure or exc
                continue
            done += n
            if sent:
                self._in_flight.setdefault(address, []).extend(sent)
            if sent and sum(f.group.lines for f in sent) < limit:
                # It took the whole queue, less than a batch: operations trickle in one by
                # one. Its next round waits batch_window_ms (unless a batch's worth queues
                # up meanwhile), so a transaction carries what arrived in that window
                # where a thread going round as fast as it could sent one or two operations
                # a transaction, each round costing the same (scripts/bench_outbox_singles.py).
                self._gather_until[address] = time.monotonic() + self.gather_s
            else:
                self._gather_until.pop(address, None)
        if failure is not None:
            raise failure
        return done

    def _queued_counts_if_due(self) -> dict[int, int]:
        """:meth:`_queued_counts`, unless nothing can have been queued since the last read
        found the queue empty: this process queued nothing (the bell did not ring) and the
        poll for other processes' work (``batch_window_ms``) is not due."""
        now = time.monotonic()
        rung = BELL.rung
        if not self._queue_had_work and rung == self._bell_read \
                and now < self._queue_read_due:
            return {}
        self._bell_read = rung  # (noted before the read: a ring during it reads again)
        self._queue_read_due = now + self.gather_s
        queued = self._queued_counts()
        self._queue_had_work = bool(queued)
        return queued

    def idle(self) -> None:
        """Wait after a round that did nothing: ``idle_sleep_s`` at most, less if this
        process queues operations meanwhile (the bell). While a signer gathers a batch
        (:meth:`step`) only the time wakes it, when its gathering ends: a ring per operation
        trickling in would be a round each, the cost the gathering saves. With transactions
        in flight it waits ``batch_window_ms`` at most, however long ``idle_sleep_s`` is:
        their receipts are read by the rounds, and no bell rings for them."""
        now = time.monotonic()
        timeout = min(self.idle_sleep_s, self.gather_s) if self._in_flight \
            else self.idle_sleep_s
        gathering = [t - now for t in self._gather_until.values() if t > now]
        if gathering:
            self._stop.wait(min(timeout, max(gathering)))
        elif not self._stop.is_set():
            BELL.wait(self._bell_seen, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        BELL.ring()  # idle() may be waiting on it (other outboxes woken read their queue)
        super().stop(timeout)
        if self._reader is not None:
            self._reader.shutdown(wait=False)
            self._reader = None

    def _in_flight_gas(self) -> int:
        return sum(f.candidates[-1].gas for v in self._in_flight.values() for f in v)

    @property
    def in_flight(self) -> int:
        """Transactions sent by the thread's rounds and not settled yet."""
        return sum(len(v) for v in self._in_flight.values())

    @property
    def nonce_gaps(self) -> dict[str, float]:
        """Signers stuck behind a nonce gap that re-syncing has not closed: the node's
        pending nonce below the store's counter and not moving for twice GAP_BOUND_S (a key
        that cannot pay for the empty transactions that would fill it, a node refusing
        them), with since when (unix time). ``/ready`` reports them."""
        now, wall = time.monotonic(), time.time()
        return {signer: wall - (now - since) for signer, (_, since) in self._gap_since.items()
                if now - since > 2 * GAP_BOUND_S}

    @property
    def block_mode(self) -> bool:
        """Whether the chain mines in blocks (batches then get measured gas limits): said by
        ``settings.block_time_s``, or seen (two transactions mined in one block, on a node that
        does not mine on arrival)."""
        return self.alliance.settings.block_time_s > 0 \
            or time.monotonic() < self._block_mode_until

    def _block_gas_limit(self) -> int:
        if self._block_gas is None:
            raw = self.alliance.gateway.rpc("eth_getBlockByNumber", ["latest", False])
            self._block_gas = int(str(raw["gasLimit"]), 16)
        return self._block_gas

    def _collect(self, then: Callable[[], int] | None = None,
                 ahead: Future[dict[str, dict[str, Any] | None] | None] | None = None) -> int:
        """Settle each signer's transactions whose receipts are in, oldest first (a later
        nonce cannot be mined before an earlier one); nudge the oldest still waiting.
        ``then`` runs after the receipts are read and before they are settled (the thread's
        round broadcasts there); what it gives is added to what this gives. ``ahead``: the
        receipts already being read (:meth:`_read_ahead`); a candidate it did not cover is
        read on its own."""
        settled = 0
        mined = False
        found_mined: list[tuple[InFlight, SentTx, dict[str, Any] | None]] = []
        # Every receipt in flight in one JSON-RPC batch (a request each, in nonce order, was
        # one round trip per transaction on a node that mines on arrival).
        if ahead is not None:
            receipts = ahead.result()  # (a read that failed raises here, as in this thread)
        else:
            receipts = self._receipts_batch() if FILL_WINDOW else None
        for address, flights in list(self._in_flight.items()):
            while flights:
                f = flights[0]
                found, block_number, receipt = self._receipt_candidate(f, receipts)
                if found is None:
                    if not self._nudge(f):
                        flights.pop(0)
                        continue
                    break
                flights.pop(0)
                mined = True
                if block_number == self._last_block and not self.alliance.gateway.automines:
                    # (a node that mines on arrival puts a round sent in one request in one
                    # block: not a chain that mines in blocks, nothing to measure or plan)
                    self._block_mode_until = time.monotonic() + BLOCK_MODE_S
                self._last_block = block_number
                # the receipt just read (it was read a second time here, by the sender's
                # wait, when receipts were not read in a batch: a 200-line issue's receipt
                # carries 400 logs)
                found_mined.append((f, found, receipt))
                settled += len(f.group.op_ids)
            if not flights:
                del self._in_flight[address]
        if then is not None:
            settled += then()
        self._settle_mined(found_mined)
        now = time.monotonic()
        if mined:
            self._progress_at = now
        if mined and self.block_mode and self._in_flight:
            self._rebroadcast_waiting()
        elif self._in_flight and now - self._progress_at > AUTOMINE_STALL_S \
                and self.alliance.gateway.automines:
            # Nothing mined for a while on a node that mines on arrival: what it holds
            # waits for an arrival that may never come (a round larger than its block).
            self._progress_at = now
            self._rebroadcast_waiting()
            try:
                self.alliance.gateway.mine_stalled()
            except ChainError as exc:
                log.debug("cannot mine what waits: %s", exc.message)
        return settled

    def _rebroadcast_waiting(self) -> None:
        """After a block: send again, in one JSON-RPC batch, what is still waiting. A node
        building a block from its pool may drop a sender's transactions that follow one
        that did not fit (reported by an earlier round; anvil 1.7.1 keeps them); the copies it kept
        answer "already known"."""
        raws = [f.candidates[-1].raw for v in self._in_flight.values() for f in v]
        try:
            self.alliance.gateway.rpc_batch(
                [("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in raws])
        except ChainError as exc:
            log.debug("rebroadcast after a block failed: %s", exc.message)

    def _receipts_batch(self) -> dict[str, dict[str, Any] | None] | None:
        """The receipts of every candidate in flight, read in one JSON-RPC batch (None for
        one not mined); None if the batch failed (then each is read on its own)."""
        return self._read_receipts(self._in_flight_hashes())

    def _in_flight_hashes(self) -> list[str]:
        return [c.tx_hash for v in self._in_flight.values() for f in v for c in f.candidates]

    def _read_receipts(self, hashes: list[str]) -> dict[str, dict[str, Any] | None] | None:
        """The receipts of ``hashes`` in one JSON-RPC batch (None for one not mined); None if
        the batch failed (then each is read on its own)."""
        if not hashes:
            return {}
        try:
            raws = self.alliance.gateway.rpc_batch(
                [("eth_getTransactionReceipt", [h]) for h in hashes], drop_logs=True)
        except ChainError as exc:
            log.debug("cannot read receipts in a batch: %s", exc.message)
            return None
        out: dict[str, dict[str, Any] | None] = {}
        for h, raw in zip(hashes, raws, strict=True):
            if isinstance(raw, ChainError):
                return None
            out[h] = None if raw is None else self.alliance.gateway.parse_receipt(raw,
                                                                                  logs=False)
        return out

    def _receipt_candidate(self, f: InFlight,
                           receipts: dict[str, dict[str, Any] | None] | None = None
                           ) -> tuple[SentTx | None, int, dict[str, Any] | None]:
        """The candidate of ``f``'s nonce that was mined, if one was, its block and its
        receipt (``receipts``: read beforehand, in one batch)."""
        for cand in f.candidates:
            receipt = (receipts.get(cand.tx_hash) if receipts is not None
                       and cand.tx_hash in receipts
                       else self.alliance.gateway.receipt(cand.tx_hash))
            if receipt is not None:
                return cand, int(receipt["blockNumber"]), receipt
        return None, -1, None

    def _nudge(self, f: InFlight) -> bool:
        """A transaction still unmined: rebroadcast or replace it with a fee bump once it
        has waited ``receipt_timeout_s``; give False once it has waited three times that
        (then it stays ``submitted`` for the recovery pass, as a timed-out wait leaves it)."""
        sender = f.signer.sender
        now = time.monotonic()
        if now - f.sent.sent_at > sender.receipt_timeout_s * 3:
            log.warning("no receipt for %s (nonce %d) in time; left for recovery",
                        f.sent.tx_hash, f.sent.nonce)
            return False
        last = f.candidates[-1]
        waited = now - last.sent_at
        if waited > DROP_CHECK_S and now - f.checked_at > DROP_CHECK_S \
                and waited <= sender.receipt_timeout_s:
            f.checked_at = now
            if self.alliance.gateway.transaction(last.tx_hash) is not None:
                return True
            if last.nonce > self.alliance.gateway.nonce(sender.address, "pending"):
                # Nonces below it are neither mined nor waiting: the chain lost them (it
                # rolled back). A rebroadcast would only park it behind the gap; the signer
                # is re-synced instead.
                self._suspect.add(sender.address)
                return True
            try:
                self.alliance.gateway.send_raw(last.raw)
                log.warning("rebroadcast %s (nonce %d): the node had dropped it",
                            last.tx_hash, last.nonce)
            except ChainError as exc:
                log.warning("rebroadcast of dropped %s failed: %s", last.tx_hash, exc.message)
            last.sent_at = now
        elif now - last.sent_at > sender.receipt_timeout_s:
            try:
                with log_operations(f.group.op_ids):
                    f.candidates.append(sender.replace(last, self._record_replacement))
            except ChainError as exc:
                if "nonce too low" not in str(exc).lower():
                    log.warning("replacing %s failed: %s", last.tx_hash, exc.message)
                last.sent_at = now
        return True

    # ------------------------------------------------------------------ settling

    def _settle_round(self, in_flight: list[InFlight]) -> None:
        self._settle_flights(in_flight)

    def _settle_mined(self, mined: list[tuple[InFlight, SentTx, dict[str, Any] | None]]
                      ) -> None:
        """Settle transactions found mined, with their receipts: the ones that succeeded are
        confirmed in one store transaction (one each before: a write transaction and its
        commit per 200-line batch, under the store's one writer), a reverted one (or one
        without its receipt) as :meth:`_settle_flights` does."""
        succeeded = [(f, sent, receipt) for f, sent, receipt in mined
                     if receipt is not None and int(receipt.get("status", 0)) == 1]
        others = [(f, sent, receipt) for f, sent, receipt in mined
                  if receipt is None or int(receipt.get("status", 0)) != 1]
        if succeeded:
            with self.alliance.store.session() as s:
                for f, sent, read in succeeded:
                    assert read is not None
                    f.signer.sender.check(read, sent)  # (counts it; it succeeded)
                    self._confirm_operations(s, f.group.op_ids, read)
            for f, _, _ in succeeded:
                self._count_confirmed(f.group.op_ids)
        for f, sent, found in others:
            self._settle_flights([InFlight(f.signer, f.group, sent)], found)

    def _confirm_operations(self, s: Session, op_ids: list[str],
                            receipt: dict[str, Any]) -> None:
        """Record ``op_ids`` mined by the transaction of ``receipt`` (confirmed, or mined with
        confirmations to wait for), in the caller's store transaction; once it has committed,
        :meth:`_count_confirmed` them."""
        outbox_repos.confirm_operations(s, op_ids, tx_hash=str(receipt["transactionHash"]),
                                        block_number=int(receipt["blockNumber"]),
                                        final=self.alliance.settings.confirmations == 0)

    def _count_confirmed(self, op_ids: list[str]) -> None:
        OPS_CONFIRMED.inc(len(op_ids))
        self._confirmed(op_ids)

    def _confirmed(self, op_ids: list[str]) -> None:
        """Called with the operations of each transaction once they are recorded confirmed
        (or mined, with confirmations to wait for); the benchmark notes the time here."""

    def _settle_flights(self, in_flight: list[InFlight],
                        receipt: dict[str, Any] | None = None) -> None:
        """Settle each transaction (``receipt``: the one of a single transaction, already
        read)."""
        for f in in_flight:
            try:
                with log_operations(f.group.op_ids):
                    if not self._settle(f.signer.sender, f.group.op_ids, f.sent, receipt):
                        self._isolate(f.signer, f.group)
            except ChainError as exc:
                # The node failed while a reverted batch was being split: what was not sent
                # again goes back to the queue (not left claimed until a restart), and the
                # round goes on with the other transactions.
                log.warning("settling %s failed (%s); its unsent operations are requeued",
                            f.sent.tx_hash, exc.message)
                self._requeue_claimed(f.group.op_ids, exc)

    def _requeue_claimed(self, op_ids: list[str], exc: LedgerError) -> None:
        with self.alliance.store.session() as s:
            claimed = [i for i in op_ids
                       if (op := outbox_repos.get_operation(s, i)) is not None
                       and op.status == OperationStatus.SENDING]
            if claimed:
                outbox_repos.requeue_operations(s, claimed, error_code=exc.code)

    def _parse(self, op: outbox_repos.ClaimedRow) -> Claimed | LedgerError:
        """A claimed row, its payload typed by its kind (the one this process queued, taken
        by the claim, or its stored JSON parsed); the error if it cannot be sent."""
        held = op.held
        try:
            kind = self.registry.get(op.kind)
            if held is not None and isinstance(held, kind.payload_type):
                return Claimed(op.id, kind, held)
            return Claimed(op.id, kind, kind.parse(op.payload or {}))
        except (LedgerError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, LedgerError):
                return exc
            return LedgerError(f"operation {op.id}: unreadable {op.kind} payload ({exc!r})")

    def _submit_merchant(self, merchant_id: int, *, blocks: int = 1
                         ) -> tuple[int, list[InFlight]]:
        """Claim a merchant's queued operations and send them; give how many were claimed and
        the transactions in flight.

        Two write transactions per round, whatever the number of batches: one claims the
        operations, one reserves their nonces and records every signed transaction; only then
        is anything broadcast (so a crash leaves nothing sent that is not recorded). Between
        the two the signer's balance is checked against what the round costs up front: a key
        that cannot pay keeps its operations queued, saying why (``signer-unfunded``).
        In block mode a round claims ``blocks`` blocks' worth."""
        with ExitStack() as context:
            ready = self._submit_merchant_in(merchant_id, context, blocks)
            return (0, []) if ready is None else self._broadcast_merchant(ready)

    def _prepare_merchant(self, merchant_id: int) -> Prepared | None:
        """:meth:`_submit_merchant` up to its record: the round recorded, not broadcast (None:
        nothing to send), for :meth:`_broadcast_merchant` (the thread's round, :meth:`step`)."""
        with ExitStack() as context:
            return self._submit_merchant_in(merchant_id, context)

    def _submit_merchant_in(self, merchant_id: int, context: ExitStack, blocks: int = 1
                            ) -> Prepared | None:
        if merchant_id in self._retry_at and not self._funds_back(merchant_id):
            return None
        limit = self.alliance.settings.batch_max
        signer = self.signer_for(merchant_id)
        sender = signer.sender
        measure = self.block_mode
        max_lines = self._block_room_lines(limit) * blocks if measure \
            else limit * PIPELINE_TXS
        with self.alliance.store.session() as s:
            ops = outbox_repos.claim_operations(s, merchant_id=merchant_id, max_lines=max_lines)
            if not ops:
                return None
            # Every line logged from here on names the operations it is about.
            context.enter_context(log_operations(o.id for o in ops))
            claimed: list[Claimed] = []
            for op in ops:
                parsed = self._parse(op)
                if not isinstance(parsed, Claimed) and op.payload is None:
                    # held, but not as its kind's payload type: read from its column
                    outbox_repos.claimed_payload(s, op)
                    op.held = None
                    parsed = self._parse(op)
                if isinstance(parsed, Claimed):
                    claimed.append(parsed)
                else:
                    # A kind no capability registered (or a payload it cannot read) fails
                    # alone, at once, instead of blocking the merchant's queue.
                    log.error("operation %s cannot be sent: %s", op.id, parsed.message)
                    outbox_repos.fail_operations(
                        s, [op.id], error_code="unknown-kind", error_message=parsed.message)
            # Operations with one batch key share a call, up to batch_max lines (issues one
            # issueBatch, redemptions one redeemBatch per program); others go alone.
            planned: list[tuple[int, int]] = []
            pos = self._period_pos.get(sender.address)
            groups = group_operations(
                claimed, signer.home,
                self._block_filler(limit, sender.address, planned) if measure else limit)
            if measure and self._learn_line_gas(sender, signer.home, groups):
                # The first round of a kind: grouped again with its gas per line known, so
                # its blocks are planned like every later one's (they went at batch_max
                # lines, four batches and ~26M of a 30M block).
                planned.clear()
                self._period_pos.pop(sender.address, None)
                if pos is not None:
                    self._period_pos[sender.address] = pos
                groups = group_operations(claimed, signer.home,
                                          self._block_filler(limit, sender.address, planned))
            if measure:
                held = self._hold_back_tail(s, groups, signer.home, sender.address, planned)
                if held:
                    groups = groups[:-1]
                    ops = [o for o in ops if o.id not in held]
            prepared = [(group, group.call(self.alliance.contracts, signer.home),
                         group.gas_bound()) for group in groups]
        # Claimed and committed: a failure before the round's transactions are recorded (the
        # node unreachable for fees or measuring, a store error) puts the operations back in
        # the queue instead of leaving them claimed until the process restarts.
        claimed_ids = [o.id for o in ops]

        def requeue_on_failure(exc_type: type[BaseException] | None,
                               exc: BaseException | None, tb: TracebackType | None) -> bool:
            if exc is not None:
                self._requeue_claimed(claimed_ids, exc if isinstance(exc, LedgerError)
                                      else LedgerError(repr(exc)))
            return False
        context.push(requeue_on_failure)
        if not prepared:
            return Prepared(merchant_id, signer, [], len(ops))
        if measure:
            # Its last transaction in flight runs ahead of the round's in the measure: the
            # state it leaves (members' slots written) is the state the round's first batch
            # meets on chain; measured on the latest state alone, that batch's limit came out
            # ~15% high and a block's worth no longer fitted where a round began.
            ahead = [f.group.call(self.alliance.contracts, f.signer.home)
                     for f in self._in_flight.get(sender.address, [])[-1:]]
            prepared = self._measure(sender, prepared, ahead)
        prepared = self._fit_blocks(sender, signer.home, prepared)
        if not prepared:
            return Prepared(merchant_id, signer, [], len(ops))
        max_fee, priority = sender.fees()
        try:
            self._ensure_funds(merchant_id, sender.address,
                               sum(gas for _, _, gas in prepared) * max_fee)
        except SignerUnfundedError as exc:
            self._wait_for_funds(merchant_id, sender.address,
                                 [i for g, _, _ in prepared for i in g.op_ids], exc)
            return None
        with self.alliance.store.session() as s:
            first = sender.nonces.reserve_in(s, len(prepared))
            signed = [(group, sender.sign(to=call.to, data=call.data, gas=gas, nonce=first + i,
                                          max_fee=max_fee, priority=priority))
                      for i, (group, call, gas) in enumerate(prepared)]
            for group, sent in signed:
                self._record(s, sender, group, sent)
        return Prepared(merchant_id, signer, signed, len(ops))

    def _broadcast_merchant(self, ready: Prepared) -> tuple[int, list[InFlight]]:
        """Broadcast a signer's round recorded by :meth:`_submit_merchant_in`; give how many
        operations it took off the queue and the transactions in flight."""
        merchant_id, signer, signed = ready.merchant_id, ready.signer, ready.signed
        sender = signer.sender
        if not signed:
            return ready.claimed, []
        # The round's transactions go in one JSON-RPC batch (one arrival: an automining node
        # mines as many as a block takes at once, where a request each made a block each).
        answers = self._broadcast_round(sender, [sent for _, sent in signed])
        self._progress_at = time.monotonic()
        refused_at = next((i for i, a in enumerate(answers)
                           if isinstance(a, SignerUnfundedError)), None)
        if refused_at is None:
            in_flight = [InFlight(signer, group, sent) for group, sent in signed]
        else:
            # The node refused one for want of ether (the key was drained since its balance
            # was read): it and every later one the node refused too go back to the queue.
            # Later ones it took anyway wait in its pool behind the refused nonces and stay
            # in flight; the gap below them is filled by the re-sync (:meth:`_check_rollback`);
            # with none, the key's nonces restart from the node (none was taken).
            refused = [t for (_, t), a in zip(signed[refused_at:], answers[refused_at:],
                                              strict=True) if a is not None]
            in_flight = [InFlight(signer, group, sent) for i, ((group, sent), a)
                         in enumerate(zip(signed, answers, strict=True))
                         if i < refused_at or a is None]
            unfunded = answers[refused_at]
            assert isinstance(unfunded, SignerUnfundedError)
            with self.alliance.store.session() as s:
                outbox_repos.unrecord_submissions(
                    s, [t.tx_hash for t in refused], error_code=unfunded.code,
                    error_message=unfunded.message)
            if not any(a is None for a in answers[refused_at:]):
                sender.nonces.resync()
            else:
                self._suspect.add(sender.address)
            self._wait_for_funds(merchant_id, sender.address, [], unfunded)
        return sum(len(f.group.op_ids) for f in in_flight), in_flight

    # ------------------------------------------------------------------ filling blocks

    def _block_room_lines(self, limit: int) -> int:
        """Lines to claim in block mode: a block's worth (see :meth:`_block_pattern`) at the
        cheapest kind's gas per line measured; batch_max × PIPELINE_TXS before any measure."""
        if not self._line_gas:
            return limit * PIPELINE_TXS
        lines, count, tail = self._block_pattern(limit, min(self._line_gas.values()), 1)
        return lines * count + tail

    def _block_pattern(self, limit: int, per_line: int, op_lines: int,
                       fixed: int = TAIL_FIXED_GAS) -> tuple[int, int, int]:
        """A block's worth as (lines per even batch, even batches, lines of the tail batch;
        0: no tail), in whole operations of ``op_lines`` lines: the most lines a block can
        hold wherever the node starts it, then the fewest batches. A batch of k lines is
        taken to use ``fixed`` + m·k gas (m: ``per_line``, the average of a large batch,
        less its share of the fixed cost) and to need that plus headroom as its limit. Any
        n + 1 consecutive batches of the repeating pattern (n even, one tail no larger)
        hold the same gas, and the last one's headroom is at most an even batch's: a block
        holds n + 1 of them wherever it starts, where n even batches alone (the plan before)
        left a batch's granularity and the last one's rounding free (0.976 of the block in
        the fourth round's runs: 29.27M)."""
        if not BLOCK_TAIL:
            return (*self._even_batch(limit, per_line), 0)
        key = (limit, per_line, op_lines, fixed, self._block_gas_limit())
        cached = self._patterns.get(key)
        if cached is not None:
            return cached
        block = self._block_gas_limit()
        op_lines = max(op_lines, 1)
        marginal = max(per_line - fixed // max(limit, 1), 1)
        best = (0, 0)  # (lines a block, -batches)
        best_plan = (max(limit // op_lines, 1) * op_lines, 1, 0)
        top = max(limit // op_lines, 1) * op_lines
        for count in range(1, 64):
            for lines in range(top, 0, -op_lines):
                used = fixed + marginal * lines
                room = block - count * used - (_with_headroom(used) - used)
                if room < 0:
                    continue
                tail = 0
                if room >= fixed + marginal * op_lines:
                    tail = min((room - fixed) // marginal // op_lines * op_lines, lines)
                score = (count * lines + tail, -(count + (1 if tail else 0)))
                if score > best:
                    best, best_plan = score, (lines, count, tail)
            if count * marginal * op_lines > block:
                break
        self._patterns[key] = best_plan
        return best_plan

    def _even_batch(self, limit: int, per_line: int) -> tuple[int, int]:
        """(lines per batch, batches per block) so that a block holds that many equal
        batches whatever batch it starts with. A node packs a block in nonce order while the
        gas used before a transaction plus its gas limit fits; with full batches and a cut
        tail (full, full, full, full, tail) the plan only fills blocks when the node's block
        boundaries fall where the plan put them, and one block started elsewhere leaves a
        batch's worth of room in every block after it. Even batches fill any run of blocks:
        the smallest count n whose n batches of at most batch_max lines fill the block, each
        as large as (n - 1) gas used + 1 gas limit allows."""
        block = self._block_gas_limit() - 2 * MEASURED_HEADROOM_GAS
        per_line = max(per_line, 1)
        limit_per_line = per_line * (100 + MEASURED_HEADROOM_PERCENT) // 100
        count = 1
        while True:
            lines = block // ((count - 1) * per_line + limit_per_line)
            if lines < limit or count * limit * per_line >= block:
                return max(min(lines, limit), 1), count
            count += 1

    def _learn_line_gas(self, sender: TransactionSender, home: str | None,
                        groups: list[Group]) -> bool:
        """Measure the gas per line of each batching kind among ``groups`` that has none yet:
        its first two batches, in sequence (the second runs on the state the first leaves,
        as the round's later batches will: members' slots written once), the lower per-line
        average of the two. Gives whether any was learned."""
        probes: dict[str, list[Group]] = {}
        for g in groups:
            name = g.kind.name
            if name in self._line_gas or g.kind.batch_key(g.ops[0].payload, home) is None:
                continue
            if len(probes.setdefault(name, [])) < 2:
                probes[name].append(g)
        if not probes:
            return False
        picked = [g for gs in probes.values() for g in gs]
        prepared = [(g, g.call(self.alliance.contracts, home),
                     min(g.gas_bound(), self._block_gas_limit())) for g in picked]
        used_of = self._measure_in_sequence(sender, prepared)
        if used_of is None:
            return False
        learned = False
        largest = max(g.lines for g in picked)
        for g, used in zip(picked, used_of, strict=True):
            if used is None or 2 * g.lines < largest:
                continue
            per_line = max(used // max(g.lines, 1), 1)
            name = g.kind.name
            self._line_gas[name] = min(self._line_gas.get(name, per_line), per_line)
            learned = True
        return learned

    def _hold_back_tail(self, s: Session, groups: list[Group], home: str | None,
                        address: str, planned: list[tuple[int, int]]) -> set[str]:
        """In block mode, a round's last batch left under half the size planned for it (the
        claim did not divide into whole operations) goes back to the queue for the next
        round instead of taking a block slot of its own: gives its operation ids (none if it
        stays). Its place in the block's worth is planned again."""
        if len(groups) < 2 or len(planned) != len(groups):
            return set()
        tail = groups[-1]
        kind = tail.ops[0].kind
        if kind.name not in self._line_gas or kind.batch_key(tail.ops[0].payload, home) is None:
            return set()
        if 2 * tail.lines >= planned[-1][0]:
            return set()
        outbox_repos.unclaim_operations(s, tail.op_ids)
        self._period_pos[address] = planned[-1][1]
        return set(tail.op_ids)

    def _block_filler(self, limit: int, address: str, planned: list[tuple[int, int]]
                      ) -> Callable[[Claimed], int]:
        """The line limit of each batch a signer opens in block mode: the repeating block's
        worth of :meth:`_block_pattern` (n even batches, then the tail; gas per line is the
        kind's last measure; batch_max before one). Appends (limit, place in the block's
        worth before it) of each to ``planned``."""

        def next_limit(c: Claimed) -> int:
            per_line = self._line_gas.get(c.kind.name)
            pos = self._period_pos.get(address, 0)
            if per_line is None:
                planned.append((limit, pos))
                return limit
            lines, count, tail = self._block_pattern(
                limit, per_line, c.lines, self._line_fixed.get(c.kind.name, TAIL_FIXED_GAS))
            period = count + 1 if tail else count
            pos %= period
            size = tail if pos == count else lines
            planned.append((size, pos))
            self._period_pos[address] = (pos + 1) % period
            return size

        return next_limit

    def _fit_blocks(self, sender: TransactionSender, home: str | None,
                    prepared: list[tuple[Group, Call, int]]) -> list[tuple[Group, Call, int]]:
        """Only transactions a block can hold. A batch whose gas bound (a worst case) is
        above the block gas limit is measured and sent with its measure; if even that does
        not fit, a group of several operations is halved, and a single operation that no
        block can take fails at once with ``batch-exceeds-block-gas`` (the node would refuse
        it for ever, and everything queued behind its nonce would wait)."""
        block = self._block_gas_limit()
        if all(gas <= block for _, _, gas in prepared):
            return prepared
        out: list[tuple[Group, Call, int]] = []
        for group, call, gas in prepared:
            if gas > block:
                self._fit_group(sender, home, group, call, block, out)
            else:
                out.append((group, call, gas))
        return out

    def _fit_group(self, sender: TransactionSender, home: str | None, group: Group,
                   call: Call, block: int, out: list[tuple[Group, Call, int]]) -> None:
        gas = self._measured_gas(sender, call, block)
        if gas is not None and gas <= block:
            out.append((group, call, gas))
            return
        if len(group.ops) > 1:
            for half in group.split():
                bound = half.gas_bound()
                half_call = half.call(self.alliance.contracts, home)
                if bound <= block:
                    out.append((half, half_call, bound))
                else:
                    self._fit_group(sender, home, half, half_call, block, out)
            return
        message = (f"this {group.kind.name} operation needs more gas than a block holds "
                   f"({block:,}): send it as smaller batches")
        log.error("operation %s cannot be sent: %s", group.ops[0].op_id, message)
        with self.alliance.store.session() as s:
            outbox_repos.fail_operations(s, group.op_ids, error_code="batch-exceeds-block-gas",
                                         error_message=message)

    def _measured_gas(self, sender: TransactionSender, call: Call, block: int) -> int | None:
        """Gas used by one execution of ``call`` (capped at the block), plus headroom; None
        when it reverts or needs more than a block."""
        try:
            res = self.alliance.gateway.rpc(*_access_list(sender, call, block))
        except ChainError:
            return None
        used = _gas_used(res)
        return None if used is None else _with_headroom(used)

    def _measure(self, sender: TransactionSender, prepared: list[tuple[Group, Call, int]],
                 ahead: Sequence[Call] = ()) -> list[tuple[Group, Call, int]]:
        """Gas limits measured: each batch's gas used plus headroom, by one
        ``eth_simulateV1`` running the round's batches in sequence (:meth:`_measure_in_sequence`)
        or, on a node without it, one ``eth_createAccessList`` per batch (one execution, where
        eth_estimateGas runs a batch some twenty times), all in one JSON-RPC batch; a batch
        the node cannot measure (a revert, a node without either method) keeps its kind's
        bound. Notes each kind's gas per line and the block fill the signer's transactions
        plan (as the node will pack them)."""
        used_of = self._measure_in_sequence(sender, prepared, ahead)
        if used_of is None:
            calls = [_access_list(sender, call, min(bound, self._block_gas_limit()))
                     for _, call, bound in prepared]
            try:
                results: list[Any] = self.alliance.gateway.rpc_batch(calls)
            except ChainError as exc:
                log.debug("cannot measure gas (%s); kinds' bounds used", exc.message)
                return prepared
            used_of = [_gas_used(res) for res in results]
        block = self._block_gas_limit()
        fill = self._fill.get(ALL_SIGNERS, 0)
        out: list[tuple[Group, Call, int]] = []
        largest: dict[str, tuple[int, int]] = {}  # kind -> (lines, gas per line)
        sizes: dict[str, dict[int, int]] = defaultdict(dict)  # kind -> lines -> lowest used
        for (group, call, bound), measured in zip(prepared, used_of, strict=True):
            gas, used = bound, bound
            if measured is not None:
                used = measured
                gas = _with_headroom(used)
                name = group.ops[0].kind.name
                lines, per_line = group.lines, max(used // max(group.lines, 1), 1)
                sizes[name][lines] = min(used, sizes[name].get(lines, used))
                seen = largest.get(name)
                if seen is None or lines > seen[0] or (lines == seen[0] and per_line < seen[1]):
                    largest[name] = (lines, per_line)
            fill = used if fill + gas > block else fill + used
            out.append((group, call, gas))
        for name, (_, per_line) in largest.items():
            # the per-line average of the kind's largest batch (a tail's would carry its
            # fixed cost over few lines, and size the next round's batches too small), the
            # lowest of those (the first batch of a round runs on members' slots not yet
            # written by the batches ahead of it, still in flight)
            self._line_gas[name] = per_line
        for name, by_lines in sizes.items():
            if len(by_lines) > 1:  # fixed cost from the largest and the smallest batch
                big, small = max(by_lines), min(by_lines)
                marginal = (by_lines[big] - by_lines[small]) / (big - small)
                if marginal > 0:
                    self._line_fixed[name] = max(int(by_lines[big] - marginal * big), 21_000)
        self._fill[ALL_SIGNERS] = fill
        return out

    def _measure_in_sequence(self, sender: TransactionSender,
                             prepared: list[tuple[Group, Call, int]],
                             ahead: Sequence[Call] = ()) -> list[int | None] | None:
        """The gas each batch uses when the round's batches run in sequence, each on the state
        the ones before it leave (one ``eth_simulateV1``, in one simulated block as large as
        they need), as the node will run them: a batch measured alone on the latest state
        pays for the members' slots the batches ahead of it write first (~17k gas a member
        and batch), and the first blocks of a run, measured so, carried ~26M of 30M. None
        per batch that reverted; None if the node cannot (a node without the method is not
        asked again). ``ahead``: calls run first, not measured (transactions in flight)."""
        if not MEASURE_IN_SEQUENCE or self._sequence_measure is False:
            return None
        block = self._block_gas_limit()
        gases = [block] * len(ahead) + [min(bound, block) for _, _, bound in prepared]
        calls = [{"from": sender.address, "to": call.to, "input": "0x" + call.data.hex(),
                  "gas": hex(gas)} for call, gas in
                 zip([*ahead, *(c for _, c, _ in prepared)], gases, strict=True)]
        try:
            answer = self.alliance.gateway.rpc("eth_simulateV1", [{"blockStateCalls": [
                {"blockOverrides": {"gasLimit": hex(sum(gases) + block)}, "calls": calls}]},
                "latest"])
            results = answer[0]["calls"]
        except ChainError as exc:
            rpc = exc.details.get("rpc")
            if isinstance(rpc, dict) and rpc.get("code") in NO_SUCH_METHOD:
                self._sequence_measure = False  # no such method: access lists from now on
            log.debug("cannot measure in sequence (%s)", exc.message)
            return None
        except (KeyError, IndexError, TypeError) as exc:
            log.debug("unexpected eth_simulateV1 answer (%r)", exc)
            return None
        if not isinstance(results, list) or len(results) != len(ahead) + len(prepared):
            return None
        results = results[len(ahead):]
        self._sequence_measure = True
        return [int(str(r["gasUsed"]), 16)
                if isinstance(r, dict) and str(r.get("status")) == "0x1" and r.get("gasUsed")
                else None for r in results]

    # ------------------------------------------------------------------ gas money

    def _ensure_funds(self, merchant_id: int, address: str, cost: int) -> None:
        """Make sure ``address`` can pay ``cost`` wei up front (topping it up from the funder
        key when low); raise SignerUnfundedError if it cannot. The balance is read from the
        node only when what is known of it would not cover the round."""
        if cost == 0:
            self._funded(merchant_id, address)
            return
        budget = self._budget.get(address)
        if budget is None or budget < cost:
            budget = self.alliance.funder.ensure(address, need_wei=cost)
            if budget < cost:
                raise SignerUnfundedError(
                    f"relaying key {address} holds {ether(budget)}; this round needs "
                    f"{ether(cost)}", address=address, need=cost)
        self._budget[address] = budget - cost
        self._funded(merchant_id, address)

    def _funds_back(self, merchant_id: int) -> bool:
        """Whether a merchant waiting for gas money may be tried again: its retry time came
        and its key now holds what its last round needed (read before anything is claimed,
        so waiting operations stay ``queued`` and say why)."""
        if self._retry_at[merchant_id] > time.monotonic():
            return False
        waiting = next((u for u in self.unfunded.values() if u.merchant_id == merchant_id),
                       None)
        if waiting is None:
            return True
        try:
            self.alliance.funder.ensure(waiting.address, need_wei=waiting.need_wei)
        except SignerUnfundedError:
            self._retry_at[merchant_id] = time.monotonic() + UNFUNDED_RETRY_S
            return False
        except ChainError as exc:
            log.warning("cannot read %s's balance: %s", waiting.address, exc.message)
            self._retry_at[merchant_id] = time.monotonic() + UNFUNDED_RETRY_S
            return False
        return True

    def _funded(self, merchant_id: int, address: str) -> None:
        if self.unfunded.pop(address, None) is not None:
            log.info("relaying key %s of merchant %d is funded again", address, merchant_id)
        self._retry_at.pop(merchant_id, None)

    def _wait_for_funds(self, merchant_id: int, address: str, op_ids: list[str],
                        exc: SignerUnfundedError) -> None:
        """Put operations back in the queue, visibly: their status says why, ``/ready`` says
        not ready, and the merchant is retried after UNFUNDED_RETRY_S."""
        self._budget.pop(address, None)
        first = address not in self.unfunded
        self.unfunded[address] = UnfundedSigner(
            merchant_id, address, exc.message,
            self.unfunded[address].since if not first else time.time(),
            int(exc.details.get("need", 0)))
        self._retry_at[merchant_id] = time.monotonic() + UNFUNDED_RETRY_S
        (log.error if first else log.debug)(
            "merchant %d's relaying key %s cannot pay; its operations wait: %s", merchant_id,
            address, exc.message)
        if op_ids:
            with self.alliance.store.session() as s:
                outbox_repos.requeue_operations(s, op_ids, error_code=exc.code,
                                                error_message=exc.message)

    def _record(self, s: Session, sender: TransactionSender, group: Group, sent: SentTx
                ) -> None:
        outbox_repos.record_submission(
            s, op_ids=group.op_ids, chain_id=self.alliance.gateway.chain_id,
            signer=sender.address, tx_hash=sent.tx_hash, nonce=sent.nonce,
            raw="0x" + sent.raw.hex(), max_fee=sent.max_fee, priority_fee=sent.priority_fee,
            lines=group.lines)

    def _record_replacement(self, stuck: SentTx, replacement: SentTx) -> None:
        """Record a fee-bumped replacement (signed, not yet broadcast) in ``chain_txs`` with
        the operations of the transaction it replaces."""
        with self.alliance.store.session() as s:
            outbox_repos.record_replacement(
                s, replaced=stuck.tx_hash, tx_hash=replacement.tx_hash,
                raw="0x" + replacement.raw.hex(), max_fee=replacement.max_fee,
                priority_fee=replacement.priority_fee)

    @staticmethod
    def _broadcast_round(sender: TransactionSender, sents: list[SentTx]
                         ) -> list[ChainError | None]:
        """Broadcast a round's transactions in one request; per transaction None or the
        node's refusal. A node that is down or busy is retried by the recovery pass (logged
        here); a signer that cannot pay comes back as SignerUnfundedError."""
        answers = sender.broadcast_many(sents)
        for sent, answer in zip(sents, answers, strict=True):
            if answer is not None and not isinstance(answer, SignerUnfundedError):
                # Recorded but not accepted: the recovery pass rebroadcasts or replaces it.
                log.warning("broadcast of %s failed (%s); will retry", sent.tx_hash, answer)
        return answers

    @staticmethod
    def _broadcast(sender: TransactionSender, sent: SentTx) -> None:
        """Broadcast; a node that is down or busy is retried by the recovery pass, a signer
        that cannot pay raises SignerUnfundedError to the caller."""
        try:
            sender.broadcast(sent)
        except SignerUnfundedError:
            raise
        except ChainError as exc:
            # Recorded but not accepted: the recovery pass rebroadcasts or replaces it.
            log.warning("broadcast of %s failed (%s); will retry", sent.tx_hash, exc)

    # ------------------------------------------------------------------ submit / settle

    def _isolate(self, signer: Signer, group: Group) -> None:
        """Send a group that failed again, simulating first, bisecting so only the
        operations that revert on their own fail (each with the Solidity error's name)."""
        sent = self._submit(signer, group, simulate=True)
        if sent is not None:
            self._settle(signer.sender, group.op_ids, sent)

    def _name_line(self, signer: Signer, op: Claimed, exc: ContractRevertError
                   ) -> ContractRevertError:
        """The revert of a many-line operation (sent all or none), named after its first
        offending line: the shortest failing prefix of its lines, found in log2(lines)
        simulations (a revert aborts every longer prefix, so failing is monotone)."""
        kind, payload = op.kind, op.payload
        n = kind.lines(payload)
        if n < 2 or kind.prefix(payload, n) is None:
            return exc
        lo, hi, culprit = 1, n, exc
        while lo < hi:
            mid = (lo + hi) // 2
            prefix = kind.prefix(payload, mid)
            call = kind.encode(self.alliance.contracts, signer.home, [prefix])
            try:
                signer.sender.estimate(call.to, call.data)
                lo = mid + 1
            except ContractRevertError as err:
                hi, culprit = mid, err
        return ContractRevertError(
            culprit.name, culprit.args_,
            message=f"{kind.describe_line(payload, hi - 1)}: {culprit.message}",
            index=hi - 1)

    def _submit(self, signer: Signer, group: Group, *, simulate: bool) -> SentTx | None:
        """Record, then broadcast one group (simulated first when ``simulate``)."""
        sender = signer.sender
        call: Call = group.call(self.alliance.contracts, signer.home)
        gas = group.gas_bound()
        if simulate:
            try:
                gas = sender.estimate(call.to, call.data)
            except ContractRevertError as exc:
                if len(group.ops) == 1:
                    self._fail([group.ops[0].op_id], self._name_line(signer, group.ops[0], exc))
                    return None
                first, second = group.split()
                self._isolate(signer, first)
                self._isolate(signer, second)
                return None
        sent = sender.sign(to=call.to, data=call.data, gas=gas)
        with self.alliance.store.session() as s:
            self._record(s, sender, group, sent)
        self._broadcast(sender, sent)
        return sent

    def _settle(self, sender: TransactionSender, op_ids: list[str], sent: SentTx,
                receipt: dict[str, Any] | None = None) -> bool:
        """Wait for a transaction (unless its ``receipt`` was read already); mark its
        operations confirmed. On a revert, give False with the operations marked for another
        attempt (the caller isolates the culprit)."""
        try:
            receipt = sender.wait(sent, on_replace=self._record_replacement) \
                if receipt is None else sender.check(receipt, sent)
        except ContractRevertError as exc:
            log.info("tx %s reverted with %s; retrying its %d operations with simulation",
                     sent.tx_hash, exc.name, len(op_ids))
            with self.alliance.store.session() as s:
                outbox_repos.requeue_operations(s, op_ids, error_code=exc.name,
                                                status=OperationStatus.SENDING)
            return False
        with self.alliance.store.session() as s:
            self._confirm_operations(s, op_ids, receipt)
        self._count_confirmed(op_ids)
        return True

    def _fail(self, op_ids: list[str], exc: LedgerError) -> None:
        op_ids = self._landed_before(op_ids)
        if not op_ids:
            return
        name = exc.name if isinstance(exc, ContractRevertError) else exc.code
        log.info("operations %s failed: %s", op_ids, exc.message)
        with self.alliance.store.session() as s:
            outbox_repos.fail_operations(s, op_ids, error_code=name, error_message=exc.message)

    def _landed_before(self, op_ids: list[str]) -> list[str]:
        """Of operations about to fail, confirm those an earlier transaction of theirs
        carried that IS mined on the chain as it is now (one given up by a re-sync or a
        failed rebroadcast that landed after all: the resend reverts, as a second issue of
        one order reference must, but the operation's effect is there); give the rest."""
        gw = self.alliance.gateway
        with self.alliance.store.read_session() as s:
            earlier = outbox_repos.given_up_transactions(s, op_ids)
        if not earlier:
            return op_ids
        landed: dict[str, tuple[str, int]] = {}
        for op_id, tx_hash in earlier:
            if op_id in landed:
                continue
            receipt = gw.receipt(tx_hash)
            if receipt is not None and int(receipt.get("status", 0)) == 1:
                landed[op_id] = (tx_hash, int(receipt["blockNumber"]))
        by_tx: dict[tuple[str, int], list[str]] = defaultdict(list)
        for op_id, mined in landed.items():
            by_tx[mined].append(op_id)
        for (tx_hash, block), ops in by_tx.items():
            log.warning("operations %s were carried by %s, mined in block %d after all; "
                        "confirmed (their resend reverted)", ops, tx_hash, block)
            with self.alliance.store.session() as s:
                outbox_repos.confirm_operations(
                    s, ops, tx_hash=tx_hash, block_number=block,
                    final=self.alliance.settings.confirmations == 0)
        return [i for i in op_ids if i not in landed]

    # ------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """Settle or resend what a crash left behind (see the module docstring)."""
        self._in_flight.clear()  # what this process had in flight is recovered from the store
        self._fill.clear()
        self._period_pos.clear()
        with self.alliance.store.session() as s:
            outbox_repos.requeue_sending(s)
            unsettled = outbox_repos.unsettled_transactions(s)
        by_signer: dict[str, list[outbox_repos.UnsettledTx]] = defaultdict(list)
        for t in unsettled:
            by_signer[t.signer].append(t)
        for signer, rows in by_signer.items():
            self._recover_signer(signer, rows)
        # A crash between reserving a nonce and recording its transaction leaves a gap that
        # would stall every later transaction, and the chain may have rolled back while the
        # process was down: every signer of the outbox is compared with the node.
        self._check_rollback(force=True)
        with self.alliance.store.session() as s:
            signers = set(outbox_repos.signers(s))
        for signer in signers - set(by_signer):
            self._resync_nonces(signer)

    # ------------------------------------------------------------------ a chain that rolled back

    def _check_rollback(self, *, force: bool = False) -> int:
        """Compare every signer's nonces at the node with what the store believes, at most
        every ROLLBACK_CHECK_S; re-sync a signer when the node's latest nonce is at or below a
        transaction seen mined (the chain rolled back below it), when its counter has been
        ahead of the node's pending nonce, that nonce not moving, for GAP_BOUND_S
        (``force``: at once), or when its oldest waiting transaction was found behind a
        gap. Gives the operations re-synced."""
        now = time.monotonic()
        if not force and not self._suspect and now < self._next_check:
            return 0
        self._next_check = now + ROLLBACK_CHECK_S
        gw = self.alliance.gateway
        with self.alliance.store.read_session() as s:
            heads = outbox_repos.signer_heads(s, chain_id=gw.chain_id)
        if not heads:
            return 0
        try:
            answers = gw.rpc_batch([("eth_getTransactionCount", [h.signer, tag])
                                    for h in heads for tag in ("latest", "pending")])
        except ChainError as exc:
            log.debug("cannot compare nonces with the node: %s", exc.message)
            return 0
        resynced = 0
        for i, head in enumerate(heads):
            latest_raw, pending_raw = answers[2 * i], answers[2 * i + 1]
            if isinstance(latest_raw, ChainError) or isinstance(pending_raw, ChainError):
                continue
            latest, pending = int(str(latest_raw), 16), int(str(pending_raw), 16)
            rolled_back = head.mined is not None and latest <= head.mined
            gap = head.next_nonce is not None and pending < head.next_nonce
            since = now
            if not gap:
                self._gap_since.pop(head.signer, None)
            else:
                # A gap only counts while the node does not move: a key several processes
                # sign with (the operator's) is ahead of the node for a moment at each
                # reservation, and the node's count keeps rising.
                seen = self._gap_since.get(head.signer)
                if seen is not None and seen[0] == pending:
                    since = seen[1]
                else:
                    self._gap_since[head.signer] = (pending, now)
            stuck = gap and (force or head.signer in self._suspect
                             or now - since >= GAP_BOUND_S)
            if rolled_back or stuck:
                resynced += self._resync_signer(head.signer, latest=latest, pending=pending,
                                                counter=head.next_nonce)
        self._suspect.clear()
        return resynced

    def _check_moved(self, *, force: bool = False) -> int:
        """At most every ROLLBACK_CHECK_S, and only when the chain's head moved: check that
        each transaction the store saw mined in the last MOVED_CHECK_BLOCKS blocks is still in
        the block it was seen in (one JSON-RPC batch of ``eth_getBlockByNumber`` without
        bodies, which list their transaction hashes). One a reorganisation mined again in
        another block is followed there (its receipt's block): the store's transaction and
        its operations get the new block number. One no longer mined at all is left to the
        rollback check (the node's nonce falls below it). Gives the transactions moved."""
        now = time.monotonic()
        if not force and now < self._next_moved_check:
            return 0
        self._next_moved_check = now + ROLLBACK_CHECK_S
        gw = self.alliance.gateway
        try:
            head = gw.block_number()
        except ChainError:
            return 0
        if head == self._moved_checked_head and not force:
            return 0
        with self.alliance.store.read_session() as s:
            recorded = outbox_repos.mined_since(s, chain_id=gw.chain_id,
                                                block=max(0, head - MOVED_CHECK_BLOCKS))
        if not recorded:
            self._moved_checked_head = head
            return 0
        numbers = sorted(recorded)
        try:
            blocks = gw.rpc_batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        except ChainError as exc:
            log.debug("cannot check mined blocks: %s", exc.message)
            return 0
        away = [h for n, b in zip(numbers, blocks, strict=True)
                for h in _not_in_block(recorded[n], b)]
        moved = 0
        for tx_hash in away:
            try:
                receipt = gw.receipt(tx_hash)
            except ChainError:
                return moved  # checked again next time (the head is not marked checked)
            if receipt is None:
                continue  # not mined now: the rollback check re-syncs its signer
            block = int(receipt["blockNumber"])
            with self.alliance.store.session() as s:
                ops = outbox_repos.move_mined(s, tx_hash=tx_hash, block_number=block)
            log.warning("%s was mined again in block %d by a reorganisation; %d operations "
                        "follow it", tx_hash, block, ops)
            moved += 1
        self._moved_checked_head = head
        return moved

    def _resync_signer(self, signer: str, *, latest: int, pending: int, counter: int | None
                       ) -> int:
        """Bring a signer the chain fell behind back in line with the node: what the store
        holds as mined from the node's latest nonce on is pending again (its operations no
        longer confirmed), then every pending transaction is settled if mined, else
        rebroadcast in nonce order (the same signed bytes: it cannot land twice), a nonce no
        recorded transaction holds being filled with an empty one; the counter restarts
        from the node. Gives the operations looked at again (at least 1: the round did
        something)."""
        self._in_flight.pop(signer, None)
        self._fill.pop(signer, None)
        self._period_pos.pop(signer, None)
        chain_id = self.alliance.gateway.chain_id
        with self.alliance.store.session() as s:
            unconfirmed = outbox_repos.unmine_from(s, chain_id=chain_id, signer=signer,
                                                   nonce=latest)
            rows = [t for t in outbox_repos.unsettled_transactions(s) if t.signer == signer]
        log.warning("the chain is behind the outbox for %s (node nonce %d latest, %d pending; "
                    "store counter %s): %d operations seen mined are not any more, %d "
                    "transactions to settle, resend or requeue", signer, latest, pending,
                    counter, unconfirmed, len(rows))
        OPS_ROLLED_BACK.inc(unconfirmed)
        self._recover_signer(signer, rows)
        return max(sum(len(t.op_ids) for t in rows), 1)

    def _recover_signer(self, signer: str, rows: list[outbox_repos.UnsettledTx]) -> None:
        """Settle or rebroadcast a signer's unsettled transactions, in nonce order (a gap
        below one is filled first, see :meth:`_fill_gap`); then align its counter with the
        node."""
        try:
            pending = self.alliance.gateway.nonce(signer, "pending")
        except ChainError as exc:
            log.warning("cannot read %s's nonce (%s); its recovery waits", signer, exc.message)
            return
        behind = -1
        for t in sorted(rows, key=lambda r: r.nonce):
            if t.nonce > pending:
                pending = self._fill_gap(signer, pending, t.nonce)
            if t.nonce > pending:
                # Still behind the gap (it could not be filled): left as it is, and the
                # counter above it, for the next check to try again.
                log.warning("%s (nonce %d) is still behind a gap at nonce %d", t.tx_hash,
                            t.nonce, pending)
                behind = t.nonce
                continue
            with log_operations(t.op_ids):
                pending = self._recover_one(t, pending)
        if behind < 0:
            self._resync_nonces(signer)
            return
        with self.alliance.store.session() as s:
            store_repos.reset_nonce(s, chain_id=self.alliance.gateway.chain_id, address=signer,
                                    next_nonce=max(pending, behind + 1))

    def _fill_gap(self, signer: str, first: int, end: int) -> int:
        """Send an empty transaction (no ether, to itself, 21,000 gas) at each nonce from
        ``first`` to ``end`` - 1 of ``signer``: nonces the node holds no transaction for and
        the store has none recorded at (a crash between reserving and recording, a chain
        that lost transactions the outbox never recorded), below transactions that must
        land. Gives the node's pending nonce after it (``first`` if nothing could be sent)."""
        with self.alliance.store.read_session() as s:
            merchant_id = outbox_repos.merchant_of_signer(s, signer)
        if merchant_id is None:
            return first
        sender = self.signer_for(merchant_id).sender
        try:
            max_fee, priority = sender.fees()
            for nonce in range(first, end):
                sender.broadcast(sender.sign(to=signer, data=b"", gas=21_000, nonce=nonce,
                                             max_fee=max_fee, priority=priority))
                first = nonce + 1
        except ChainError as exc:
            log.warning("cannot fill %s's nonce %d: %s", signer, first, exc.message)
            return first
        log.warning("filled %s's nonces up to %d with empty transactions (no transaction of "
                    "the outbox held them)", signer, end - 1)
        return end

    def _recover_one(self, t: outbox_repos.UnsettledTx, pending: int) -> int:
        """Settle, or rebroadcast then settle, one transaction left unsettled (by a crash or
        a chain that rolled back) at or below the node's pending nonce; give that nonce after
        it."""
        gw = self.alliance.gateway
        raw = bytes.fromhex(t.raw[2:])
        receipt = gw.receipt(t.tx_hash)
        if receipt is None and gw.transaction(t.tx_hash) is None:
            log.warning("rebroadcasting %s (nonce %d), unsettled and unknown to the node",
                        t.tx_hash, t.nonce)
            try:
                gw.send_raw(raw)
            except ChainError as exc:
                log.warning("rebroadcast failed: %s; operations requeued", exc)
                with self.alliance.store.session() as s:
                    outbox_repos.requeue_operations(s, t.op_ids,
                                                    error_code="rebroadcast-failed")
                return pending
            pending = max(pending, t.nonce + 1)
        sent = SentTx(t.tx_hash, t.nonce, raw, None, b"", 0, t.max_fee, t.priority_fee,
                      time.monotonic())
        self._settle_recovered(list(t.op_ids), sent)
        return pending

    def _settle_recovered(self, op_ids: list[str], sent: SentTx) -> None:
        deadline = time.monotonic() + self.alliance.settings.receipt_timeout_s
        while time.monotonic() < deadline:
            receipt = self.alliance.gateway.receipt(sent.tx_hash)
            if receipt is not None:
                with self.alliance.store.session() as s:
                    if int(receipt.get("status", 0)) == 1:
                        outbox_repos.confirm_operations(
                            s, op_ids, tx_hash=sent.tx_hash,
                            block_number=int(receipt["blockNumber"]),
                            final=self.alliance.settings.confirmations == 0)
                    else:
                        outbox_repos.requeue_operations(s, op_ids, error_code="reverted")
                return
            time.sleep(0.05)
        log.warning("recovered tx %s still unmined; left for the next start", sent.tx_hash)

    def _resync_nonces(self, signer: str) -> None:
        StoreNonces(self.alliance.store, self.alliance.gateway, signer).resync()


def _not_in_block(tx_hashes: list[str], block: Any) -> list[str]:
    """Of ``tx_hashes``, recorded as mined in a block, those the node's copy of that block
    (an ``eth_getBlockByNumber`` answer without bodies) does not hold; all of them if the
    block is not there any more, none if the node could not answer."""
    if isinstance(block, ChainError):
        return []
    if not isinstance(block, dict):
        return list(tx_hashes)
    held = {str(h).lower() for h in block.get("transactions") or []}
    return [h for h in tx_hashes if h.lower() not in held]


def _access_list(sender: TransactionSender, call: Call, gas: int) -> tuple[str, list[Any]]:
    """The ``eth_createAccessList`` request that measures ``call`` (one execution, at most
    ``gas``)."""
    return ("eth_createAccessList",
            [{"from": sender.address, "to": call.to, "data": "0x" + call.data.hex(),
              "gas": hex(gas)}, "latest"])


def _gas_used(res: Any) -> int | None:
    """The gas an ``eth_createAccessList`` answer says the call used; None if it failed."""
    if isinstance(res, dict) and res.get("gasUsed") and not res.get("error"):
        return int(str(res["gasUsed"]), 16)
    return None


def _with_headroom(used: int) -> int:
    """A gas limit for a measured call: what it used, plus the headroom measures get."""
    return used + used * MEASURED_HEADROOM_PERCENT // 100 + MEASURED_HEADROOM_GAS
