"""The indexer: follows the alliance's contracts into the store's read model.

The :class:`Follower` owns what every read model needs from the chain, once: a cursor per
projection (the last block read and its hash), the confirmation depth (it reads up to the
head minus ``settings.confirmations``), reorg rollback (before it reads on, it checks that
each cursor's block still has the hash it saw; if not, it asks the projection to drop what
it built above the common ancestor, the highest block it read up to whose hash the chain
still has, and reads on from there) and the log reads
(one ``eth_getLogs`` per chunk of blocks for every contract any projection follows, decoded
once). What the events mean is the business of the :class:`Projection` s the runtime hands it,
one per capability; the follower imports none of them.

It runs as a :class:`~ledger.worker.Worker` started by :mod:`ledger.runtime`, in a thread or in
a process of its own (:mod:`ledger.indexer.process`); no read syncs it.
Tools and tests that need the read model at the head call :meth:`Follower.catch_up`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..chain.gateway import BlockHeader, ChainGateway
from ..contracts.client import ContractClient
from ..errors import LedgerError
from ..store.db import Store
from ..worker import Worker, WorkerTimeoutError
from . import repos as cursors
from .decode import LogDecoder

log = logging.getLogger(__name__)

# How far below a reorganised cursor a store that noted no block yet (one from before
# 0012) rewinds.
REORG_DEPTH = 64
# Blocks read up to that are noted with their hash: the rewind finds the common ancestor
# among them (one row per round; those this far below the head are forgotten).
NOTED_KEEP = 50_000
# Noted blocks looked at, newest first, in one JSON-RPC batch of headers each, before the
# rewind gives up and reads every block again from the deployment.
ANCESTOR_PAGE = 32
ANCESTOR_PAGES = 8
# Blocks per eth_getLogs (nodes cap the range or the answer size).
CHUNK = 5_000
# Seconds the follower waits for new blocks after a round that found none (a round that
# finds the same tip costs one eth_getBlockByNumber and no store access). It wakes sooner
# when this process sees a new block (the outbox's receipt: ChainGateway.wait_for_new_block):
# the poll is for blocks other processes make.
POLL_S = 0.1
# Seconds between two rounds that found something. None: the next round starts at once (it
# finds the same tip, unless blocks came meanwhile, and waits for a new block as above). A
# gap made the read model lag by about the gap times the blocks a second the chain makes
# (0.05 s here and a 0.1 s poll: p50 2 blocks in scripts/bench_lag.py).
ROUND_GAP_S = 0.0
# Seconds between two looks at the chain's head (eth_blockNumber) while a follower that runs
# in a process of its own waits for a block: no outbox in its process tells it of one.
HEAD_POLL_S = 0.02


@dataclass(frozen=True)
class ChainEvent:
    """One decoded log of a followed contract, with its block's time."""

    name: str
    args: Mapping[str, Any]
    address: str
    tx_hash: str
    block_number: int
    log_index: int
    block_time: int


@dataclass(frozen=True)
class Head:
    """The confirmed head a round read up to: its number and its block's time."""

    block: int
    time: int


class Projection(Protocol):
    """One capability's read model, built from the events of the contracts it follows.

    ``name`` is its cursor's name. :meth:`follows` is asked every round (programs are added
    as merchants are admitted) and gives a client per followed address, to decode its logs.
    :meth:`apply` gets the events of ``events`` in chain order, one chunk of whole blocks at a
    time, in the session that then moves the cursor; :meth:`rollback` drops what was built
    from blocks after ``after_block``; :meth:`on_head` runs at the end of every round (for
    what depends on the chain's clock rather than on an event). A projection following
    contracts for different events may also have ``events_at(address)``, the events it wants
    of that contract (see :func:`_events_at`)."""

    name: str
    events: frozenset[str]

    def follows(self, session: Session) -> Mapping[str, ContractClient]: ...

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int: ...

    def rollback(self, session: Session, after_block: int) -> None: ...

    def on_head(self, session: Session, head: Head) -> int: ...


# One follower round at a time per store (the API's worker and a test's catch-up may share
# one): rows are inserted idempotently anyway, this keeps cursors and rollbacks in order.
_locks: WeakKeyDictionary[Store, threading.Lock] = WeakKeyDictionary()
_locks_guard = threading.Lock()


def _lock_of(store: Store) -> threading.Lock:
    with _locks_guard:
        lock = _locks.get(store)
        if lock is None:
            lock = _locks[store] = threading.Lock()
        return lock


class Progress:
    """How often a store's read model moved in this process (each round that read new blocks
    or rolled back counts once): readers that push figures as blocks are applied (the
    console's stream) compare :attr:`version` instead of asking the store."""

    def __init__(self) -> None:
        self.version = 0
        self.block = -1

    def moved(self, block: int) -> None:
        self.block = block
        self.version += 1


_progress: WeakKeyDictionary[Store, Progress] = WeakKeyDictionary()


def progress_of(store: Store) -> Progress:
    """The :class:`Progress` of a store's read model in this process."""
    with _locks_guard:
        found = _progress.get(store)
        if found is None:
            found = _progress[store] = Progress()
        return found


class Follower(Worker):
    """Brings every projection's read model up to the chain's confirmed head."""

    name = "indexer"

    def __init__(self, alliance: Alliance, projections: Sequence[Projection], *,
                 idle_sleep_s: float = POLL_S, busy_sleep_s: float = ROUND_GAP_S,
                 head_poll_s: float | None = None) -> None:
        super().__init__(idle_sleep_s=idle_sleep_s, busy_sleep_s=busy_sleep_s)
        self.alliance = alliance
        # Set: idle() looks at the head this often instead of waiting for this process's
        # outbox to see a block (the indexer in a process of its own).
        self.head_poll_s = head_poll_s
        self.projections = list(projections)
        self._clock_at: Head | None = None
        # The hash of the tip the last complete round read from: a round that finds the same
        # tip has nothing to do (one eth_getBlockByNumber, no store access).
        self._tip_read: str | None = None
        self._topic_cache: dict[tuple[int, frozenset[str]], set[str]] = {}
        self._decoders: dict[int, tuple[Any, LogDecoder]] = {}
        # The gateway's count of blocks seen when the last round began: idle() waits for it
        # to move (a block seen during a round makes the next round start at once).
        self._seen_at = alliance.gateway.blocks_seen

    def process_once(self) -> int:
        return self.sync()

    def idle(self) -> None:
        """Wait for a new block: until this process sees one (the outbox's receipts) or
        ``idle_sleep_s`` passes (blocks other processes make), or the worker is stopped."""
        if self._stop.is_set():
            return
        gw = self.alliance.gateway
        if self.head_poll_s is None:
            gw.wait_for_new_block(self._seen_at, self.idle_sleep_s)
            return
        # In a process of its own: ask the node for its head every head_poll_s (an
        # eth_blockNumber; a round's eth_getBlockByNumber costs more) until it moves.
        deadline = time.monotonic() + self.idle_sleep_s
        while not self._stop.is_set():
            try:
                # Notes the block: blocks_seen moves when it is new (read raw, as every read
                # of a round is: ChainGateway.reads).
                gw.saw_block(int(gw.reads.call("eth_blockNumber"), 16))
            except LedgerError:
                self._stop.wait(self.idle_sleep_s)  # the node is away: the round says so
                return
            if gw.blocks_seen != self._seen_at or time.monotonic() >= deadline:
                return
            self._stop.wait(self.head_poll_s)

    def sync(self) -> int:
        """One round: read every projection up to the confirmed head; give rows added."""
        with _lock_of(self.alliance.store):
            return self._sync()

    def catch_up(self, timeout_s: float = 60.0) -> int:
        """Read until every projection reflects the confirmed head as it is now (for tools
        and tests that read right after a write); give rows added."""
        target = self._head()
        if target < self.alliance.contracts.deployment.block:
            return 0
        deadline = time.monotonic() + timeout_s
        added = 0
        while True:
            added += self.sync()
            if min(self.synced_blocks().values(), default=target) >= target:
                return added
            if time.monotonic() > deadline:
                raise WorkerTimeoutError(f"{self.name} did not reach block {target} in time")

    def synced_blocks(self) -> dict[str, int]:
        """The block each projection's read model reflects (-1: nothing read yet)."""
        with self.alliance.store.read_session() as s:
            return {name: _block_of(cursor) for name, cursor in
                    cursors.get_cursors(s, [p.name for p in self.projections]).items()}

    # ------------------------------------------------------------------ one round

    def _head(self) -> int:
        return self.alliance.gateway.block_number() - self.alliance.settings.confirmations

    def _sync(self) -> int:
        gw = self.alliance.gateway
        self._seen_at = gw.blocks_seen
        # The tip first, then the followed addresses: a program admitted before an event of
        # it was mined is in the store by then (its operations are queued after admission).
        blocks = _RoundBlocks(gw)
        tip = blocks.tip()
        latest = tip.number
        tip_hash = tip.hash
        if tip_hash == self._tip_read:
            return 0  # the same tip as the last full round: nothing new, nothing reorged
        head = latest - self.alliance.settings.confirmations
        start = self.alliance.contracts.deployment.block
        if head < start:
            return 0
        with self.alliance.store.read_session() as s:
            stored = cursors.get_cursors(s, [p.name for p in self.projections])
            clients: dict[str, ContractClient] = {}
            follows: dict[str, set[str]] = {}
            wanted: dict[str, set[str]] = {}  # by address: the events a projection wants
            for p in self.projections:
                followed = p.follows(s)
                follows[p.name] = {a.lower() for a in followed}
                for address, client in followed.items():
                    clients.setdefault(address.lower(), client)
                    wanted.setdefault(address.lower(), set()).update(
                        _events_at(p, address))
        last = {name: _block_of(cursor, start - 1) for name, cursor in stored.items()}
        before = dict(last)
        self._rewind_reorged(last, stored, blocks, latest=latest, start=start)
        moved_to: int | None = None if before == last else min(last.values(), default=head)
        added = 0
        # The head's clock, when it moved: applied in the write transaction of the round's
        # last chunk (one write transaction a round, was two: SQLite's one writer, which
        # requests and the outbox queue for, taken once), else in one of its own.
        clock = (Head(head, blocks.get(head).timestamp)
                 if self._clock_at is None or self._clock_at.block != head else None)
        frm = min(last.values(), default=head) + 1
        while frm <= head:
            to = min(head, frm + CHUNK - 1)
            # The hash before the logs: a reorg between the two leaves a hash the next round
            # finds changed (and reads again), never new logs under an old hash.
            to_hash = blocks.hash_of(to)
            events = self._read(clients, wanted, frm, to, blocks) if clients else []
            # Each projection's events, picked before the write transaction (the address
            # lowered once an event, not once a projection).
            lowered = [(e, e.address.lower()) for e in events]
            picked = {p.name: [e for e, address in lowered if e.block_number > last[p.name]
                               and e.name in p.events and address in follows[p.name]]
                      for p in self.projections if last[p.name] < to}
            with self.alliance.store.session() as s:
                moved = []
                for p in self.projections:
                    if last[p.name] >= to:
                        continue
                    added += p.apply(s, picked[p.name])
                    moved.append(p.name)
                    last[p.name] = to
                # Every cursor the chunk moved, in one statement.
                cursors.set_cursors(s, moved, to, to_hash)
                cursors.note_block(s, to, to_hash, keep=NOTED_KEEP)
                if clock is not None and to == head:
                    for p in self.projections:
                        added += p.on_head(s, clock)
            moved_to = to
            if clock is not None and to == head:
                self._clock_at, clock = clock, None
            frm = to + 1
        if clock is not None:
            with self.alliance.store.session() as s:
                for p in self.projections:
                    added += p.on_head(s, clock)
            self._clock_at = clock
        self._tip_read = tip_hash
        if moved_to is not None:
            progress_of(self.alliance.store).moved(moved_to)
        return added

    def _rewind_reorged(self, last: dict[str, int], stored: Mapping[str, Any],
                        blocks: _RoundBlocks, *, latest: int, start: int) -> None:
        """Rewind every projection whose cursor block is gone or has another hash now."""
        for p in self.projections:
            cursor = stored[p.name]
            block = last[p.name]
            if cursor is None or block < start:
                continue
            now = blocks.hash_of(block) if block <= latest else None
            if now == _hash_hex(cursor[1]):
                continue
            rewind = self._common_ancestor(min(block, latest), blocks, start)
            log.warning("reorg below block %d (the chain's head is %d): %s re-reads from "
                        "block %d", block, latest, p.name, rewind + 1)
            rewind_hash = blocks.hash_of(rewind) if rewind >= start else ""
            with self.alliance.store.session() as s:
                p.rollback(s, rewind)
                cursors.set_cursor(s, p.name, rewind, rewind_hash)
                cursors.forget_blocks_after(s, rewind)
            last[p.name] = rewind
            self._clock_at = None

    def _common_ancestor(self, below: int, blocks: _RoundBlocks, start: int) -> int:
        """The highest block noted at or below ``below`` whose hash the chain still has
        (every block under it is unchanged too); without any noted block (a store from
        before they were noted) :data:`REORG_DEPTH` below; ``start - 1`` if none matches."""
        with self.alliance.store.read_session() as s:
            noted = cursors.noted_blocks(s, at_most=below,
                                         limit=ANCESTOR_PAGE * ANCESTOR_PAGES)
        if not noted:
            return max(start - 1, below - REORG_DEPTH)
        for i in range(0, len(noted), ANCESTOR_PAGE):
            page = [(n, h) for n, h in noted[i:i + ANCESTOR_PAGE] if n >= start]
            blocks.fetch({n for n, _ in page})
            for number, block_hash in page:
                if blocks.hash_of(number) == _hash_hex(block_hash):
                    return number
        return start - 1

    def _topics(self, abi: Sequence[Mapping[str, Any]], names: frozenset[str]) -> set[str]:
        """The topics of the events ``names`` that ``abi`` declares (kept per ABI and names:
        every program shares one ABI)."""
        key = (id(abi), names)
        known = self._topic_cache.get(key)
        if known is None:
            gw = self.alliance.gateway
            known = self._topic_cache[key] = {
                "0x" + gw.event_topic(abi, str(e["name"])).hex() for e in abi
                if e.get("type") == "event" and e.get("name") in names}
        return known

    def _decoder(self, abi: Any) -> LogDecoder:
        """The fast decoder of an ABI (kept per ABI: every program shares one)."""
        hit = self._decoders.get(id(abi))
        if hit is None or hit[0] is not abi:
            hit = self._decoders[id(abi)] = (abi, LogDecoder(abi))
        return hit[1]

    def _read(self, clients: Mapping[str, ContractClient], wanted: Mapping[str, set[str]],
              frm: int, to: int, blocks: _RoundBlocks) -> list[ChainEvent]:
        """The decoded events of every followed contract in blocks ``frm``..``to``, each
        contract's only of the events some projection wants of it."""
        gw = self.alliance.gateway
        # Only the wanted events' topics, per contract: a redemption's Transfer log, say, is
        # not even sent (the coupon book's Transfer is wanted, a point program's is not).
        # Contracts wanting the same topics (every program) share one eth_getLogs, and the
        # group's queries go in one JSON-RPC batch.
        groups: dict[tuple[str, ...], list[str]] = {}
        for address, client in clients.items():
            topics = tuple(sorted(self._topics(client.abi, frozenset(wanted[address]))))
            if topics:
                groups.setdefault(topics, []).append(address)
        logs = gw.raw_logs([(sorted(addresses), topics) for topics, addresses in groups.items()],
                           from_block=frm, to_block=to)
        blocks.fetch({lg.block_number for lg in logs})
        out = []
        # Each emitter's client and decoder, looked up once a round (every log of a 200-line
        # batch has the same emitter).
        readers: dict[str, tuple[ContractClient, LogDecoder] | None] = {}
        for lg in logs:
            if lg.address in readers:
                hit = readers[lg.address]
            else:
                emitter = clients.get(lg.address.lower())
                hit = readers[lg.address] = (None if emitter is None
                                             else (emitter, self._decoder(emitter.abi)))
            if hit is None:
                continue
            reader, decoder = hit
            fast = decoder.decode(lg)
            if fast is None:
                continue
            decoded = ([fast] if fast is not False and fast is not True
                       else [(n, a) for n, a, _ in reader.decode_logs([lg])])
            for name, args in decoded:
                out.append(ChainEvent(
                    name=name, args=args, address=lg.address, tx_hash=lg.tx_hash,
                    block_number=lg.block_number, log_index=lg.log_index,
                    block_time=blocks.get(lg.block_number).timestamp))
        out.sort(key=lambda e: (e.block_number, e.log_index))
        return out


class _RoundBlocks:
    """The block headers one round has fetched, so that no block is asked for twice in a
    round (the tip is also the confirmed head with no confirmation depth, the block of its
    logs and the block whose time the projections' clocks take); the hash of a block whose
    child is known comes from the child's parent hash, and the blocks of a chunk's logs come
    in one batch. The gateway reads them raw (``ChainGateway.reads``: no web3 formatting)."""

    def __init__(self, gateway: ChainGateway) -> None:
        self._gateway = gateway
        self._blocks: dict[int, BlockHeader] = {}

    def tip(self) -> BlockHeader:
        block = self._gateway.header("latest")
        self._blocks[block.number] = block
        return block

    def get(self, number: int) -> BlockHeader:
        block = self._blocks.get(number)
        if block is None:
            block = self._blocks[number] = self._gateway.header(number)
        return block

    def fetch(self, numbers: set[int]) -> None:
        """Fetch the headers of ``numbers`` not fetched yet, in one round trip."""
        missing = sorted(n for n in numbers if n not in self._blocks)
        for block in self._gateway.headers(missing):
            self._blocks[block.number] = block

    def hash_of(self, number: int) -> str:
        child = self._blocks.get(number + 1)
        if number not in self._blocks and child is not None:
            return child.parent_hash
        return self.get(number).hash


def _events_at(p: Projection, address: str) -> frozenset[str]:
    """The events ``p`` wants of the contract at ``address``: what its optional
    ``events_at(address)`` says when it follows contracts for different events (the webhooks
    want the coupon book's Transfer, not every point program's), else all of ``p.events``."""
    narrow = getattr(p, "events_at", None)
    return p.events if narrow is None else frozenset(narrow(address))


def _block_of(cursor: tuple[int, str] | None, default: int = -1) -> int:
    return default if cursor is None else cursor[0]


def _hash_hex(value: Any) -> str:
    """A block or transaction hash as lowercase hex without ``0x``."""
    raw = value.hex() if not isinstance(value, str) else value
    return raw.removeprefix("0x").lower()
