"""The indexer: follows the alliance's contracts into the store's read model.

The :class:`Follower` owns what every read model needs from the chain, once: a cursor per
projection (the last block read and its hash), the confirmation depth (it reads up to the
head minus ``settings.confirmations``), reorg rollback (before it reads on, it checks that
each cursor's block still has the hash it saw; if not, it asks the projection to drop what
it built from the last :data:`REORG_DEPTH` blocks and reads them again) and the log reads
(one ``eth_getLogs`` per chunk of blocks for every contract any projection follows, decoded
once). What the events mean is the business of the :class:`Projection` s the runtime hands it,
one per capability; the follower imports none of them.

It runs as a :class:`~ledger.worker.Worker` started by :mod:`ledger.runtime`; no read syncs it.
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
from ..contracts.client import ContractClient
from ..store.db import Store
from ..worker import Worker, WorkerTimeoutError
from . import repos as cursors

log = logging.getLogger(__name__)

REORG_DEPTH = 64
# Blocks per eth_getLogs (nodes cap the range or the answer size).
CHUNK = 5_000
# Seconds the follower waits for new blocks after a round that found none.
POLL_S = 0.5


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
    what depends on the chain's clock rather than on an event)."""

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


class Follower(Worker):
    """Brings every projection's read model up to the chain's confirmed head."""

    name = "indexer"

    def __init__(self, alliance: Alliance, projections: Sequence[Projection], *,
                 idle_sleep_s: float = POLL_S) -> None:
        super().__init__(idle_sleep_s=idle_sleep_s)
        self.alliance = alliance
        self.projections = list(projections)
        self._clock_at: Head | None = None

    def process_once(self) -> int:
        return self.sync()

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
            return {p.name: _block_of(cursors.get_cursor(s, p.name)) for p in self.projections}

    # ------------------------------------------------------------------ one round

    def _head(self) -> int:
        return self.alliance.gateway.block_number() - self.alliance.settings.confirmations

    def _sync(self) -> int:
        gw = self.alliance.gateway
        # The head first, then the followed addresses: a program admitted before an event of
        # it was mined is in the store by then (its operations are queued after admission).
        latest = gw.block_number()
        head = latest - self.alliance.settings.confirmations
        start = self.alliance.contracts.deployment.block
        if head < start:
            return 0
        with self.alliance.store.read_session() as s:
            last = {p.name: _block_of(cursors.get_cursor(s, p.name), start - 1)
                    for p in self.projections}
            hashes = {p.name: cursors.get_cursor(s, p.name) for p in self.projections}
            clients: dict[str, ContractClient] = {}
            follows: dict[str, set[str]] = {}
            for p in self.projections:
                followed = p.follows(s)
                follows[p.name] = {a.lower() for a in followed}
                for address, client in followed.items():
                    clients.setdefault(address.lower(), client)
        wanted = frozenset().union(*(p.events for p in self.projections))
        self._rewind_reorged(last, hashes, latest=latest, start=start)
        added = 0
        frm = min(last.values(), default=head) + 1
        while frm <= head:
            to = min(head, frm + CHUNK - 1)
            # The hash before the logs: a reorg between the two leaves a hash the next round
            # finds changed (and reads again), never new logs under an old hash.
            to_hash = _hash_hex(gw.block(to)["hash"])
            events = self._read(clients, wanted, frm, to) if clients else []
            with self.alliance.store.session() as s:
                for p in self.projections:
                    if last[p.name] >= to:
                        continue
                    mine = [e for e in events if e.block_number > last[p.name]
                            and e.name in p.events and e.address.lower() in follows[p.name]]
                    added += p.apply(s, mine)
                    cursors.set_cursor(s, p.name, to, to_hash)
                    last[p.name] = to
            frm = to + 1
        if self._clock_at is None or self._clock_at.block != head:
            now = Head(head, int(gw.block(head)["timestamp"]))
            with self.alliance.store.session() as s:
                for p in self.projections:
                    added += p.on_head(s, now)
            self._clock_at = now
        return added

    def _rewind_reorged(self, last: dict[str, int], stored: Mapping[str, Any], *,
                        latest: int, start: int) -> None:
        """Rewind every projection whose cursor block is gone or has another hash now."""
        gw = self.alliance.gateway
        seen: dict[int, str | None] = {}
        for p in self.projections:
            cursor = stored[p.name]
            block = last[p.name]
            if cursor is None or block < start:
                continue
            if block not in seen:
                seen[block] = _hash_hex(gw.block(block)["hash"]) if block <= latest else None
            if seen[block] == _hash_hex(cursor[1]):
                continue
            rewind = max(start - 1, block - REORG_DEPTH)
            log.warning("reorg below block %d: %s re-reads from block %d", block, p.name,
                        rewind + 1)
            rewind_hash = _hash_hex(gw.block(rewind)["hash"]) if rewind >= start else ""
            with self.alliance.store.session() as s:
                p.rollback(s, rewind)
                cursors.set_cursor(s, p.name, rewind, rewind_hash)
            last[p.name] = rewind
            self._clock_at = None

    def _read(self, clients: Mapping[str, ContractClient], wanted: frozenset[str], frm: int,
              to: int) -> list[ChainEvent]:
        """The decoded events named ``wanted`` of every followed contract in blocks
        ``frm``..``to``."""
        gw = self.alliance.gateway
        # Only the wanted events' topics: a redemption's Transfer log, say, is not even sent.
        abis = {id(c.abi): c.abi for c in clients.values()}  # every program shares one
        topics = sorted({"0x" + gw.event_topic(abi, str(e["name"])).hex()
                         for abi in abis.values() for e in abi
                         if e.get("type") == "event" and e.get("name") in wanted})
        if not topics:
            return []
        logs = gw.get_logs(address=sorted(clients), from_block=frm, to_block=to,
                           topics=[topics])
        times: dict[int, int] = {}
        out = []
        for lg in logs:
            client = clients.get(str(lg["address"]).lower())
            if client is None:
                continue
            for name, args, raw in client.decode_logs([lg]):
                block = int(raw["blockNumber"])
                if block not in times:
                    times[block] = int(gw.block(block)["timestamp"])
                out.append(ChainEvent(
                    name=name, args=args, address=str(raw["address"]),
                    tx_hash="0x" + _hash_hex(raw["transactionHash"]),
                    block_number=block, log_index=int(raw["logIndex"]),
                    block_time=times[block]))
        out.sort(key=lambda e: (e.block_number, e.log_index))
        return out


def _block_of(cursor: tuple[int, str] | None, default: int = -1) -> int:
    return default if cursor is None else cursor[0]


def _hash_hex(value: Any) -> str:
    """A block or transaction hash as lowercase hex without ``0x``."""
    raw = value.hex() if not isinstance(value, str) else value
    return raw.removeprefix("0x").lower()
