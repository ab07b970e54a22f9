"""The indexer: follows point-program events into the store's read model.

It reads logs of every known program from the block after its cursor up to the head minus
``settings.confirmations``, and inserts one row per event (idempotently, keyed by transaction
hash and log index). Before it reads on, it checks that the block it stopped at still has the
hash it saw; if not (a reorg), it deletes what it indexed from the last
``REORG_DEPTH`` blocks and reads them again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from weakref import WeakKeyDictionary

from ..alliance import Alliance
from ..merchants import repos as merchant_repos
from ..points import repos as point_repos
from ..points.clients import PointProgramClient
from . import repos as cursors

log = logging.getLogger(__name__)

CURSOR = "points"
# Up to which chain time pending issues have their ``released`` rows.
RELEASES = "points-releases"
REORG_DEPTH = 64
CHUNK = 5_000

_KINDS = {
    "PointsIssued": "issued",
    "PointsReversed": "reversed",
    "PointsRedeemed": "redeemed",
    "PointsExpired": "expired",
    "RedemptionRefunded": "refunded",
    "PointsConverted": "converted_out",
    "PointsConvertedIn": "converted_in",
}

# A pending issue also gives a ``released`` row (the day its points become spendable), stored
# with the issue's transaction and block (so a reorg drops both) at this log index offset.
RELEASE_LOG_OFFSET = 1 << 20
DAY = 86_400

_sync_lock = threading.Lock()
# Programs' origins (immutable; the day a pending issue releases counts from it), per program
# client: a client belongs to one deployment, so a reused address never reads a stale origin.
_origins: WeakKeyDictionary[PointProgramClient, int] = WeakKeyDictionary()


class Indexer:
    """Brings the point-event read model up to the chain's confirmed head."""

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def sync(self) -> int:
        """Index new events; give how many rows were added."""
        with _sync_lock:
            return self._sync()

    def _sync(self) -> int:
        head = self.alliance.gateway.block_number() - self.alliance.settings.confirmations
        with self.alliance.store.session() as s:
            released = cursors.get_cursor(s, RELEASES)
        released_until = released[0] if released is not None else -1
        added = self._index_logs(head, released_until)
        return added + self._release_due(head, released_until)

    def _index_logs(self, head: int, released_until: int) -> int:
        gw = self.alliance.gateway
        start_default = self.alliance.contracts.deployment.block
        with self.alliance.store.session() as s:
            cursor = cursors.get_cursor(s, CURSOR)
            programs = {m.program_address: m.id for m in merchant_repos.list_merchants(s)
                        if m.program_address}
        last = start_default - 1
        if cursor is not None:
            last, last_hash = cursor
            if last >= 0 and last <= head and gw.block(last)["hash"].hex().removeprefix("0x") \
                    != last_hash.removeprefix("0x"):
                rewind = max(start_default - 1, last - REORG_DEPTH)
                log.warning("reorg below block %d: re-indexing from %d", last, rewind + 1)
                with self.alliance.store.session() as s:
                    point_repos.delete_events_after(s, rewind)
                last = rewind
        if not programs or last >= head:
            return 0
        added = 0
        frm = last + 1
        while frm <= head:
            to = min(head, frm + CHUNK - 1)
            logs = gw.get_logs(address=list(programs), from_block=frm, to_block=to)
            rows = []
            times: dict[int, int] = {}
            for lg in logs:
                program = self.alliance.contracts.program(str(lg["address"]))
                for name, args, raw in program.decode_logs([lg]):
                    kind = _KINDS.get(name)
                    if kind is None:
                        continue
                    block = int(raw["blockNumber"])
                    if block not in times:
                        times[block] = int(gw.block(block)["timestamp"])
                    row = _row(kind, args, raw, programs, gw.chain_id)
                    row["block_time"] = times[block]
                    day = row.pop("release_day")
                    if day:
                        row["release_at"] = release_time(self.alliance,
                                                         program=row["program"], day=day)
                    rows.append(row)
                    # Indexed after its release time passed (late, or again after a reorg):
                    # its release row goes in now; later ones come with _release_due.
                    if row["release_at"] is not None and row["release_at"] <= released_until:
                        rows.append(released_row(row))
            to_hash = gw.block(to)["hash"].hex()
            with self.alliance.store.session() as s:
                added += point_repos.insert_point_events(s, rows)
                cursors.set_cursor(s, CURSOR, to, to_hash)
            frm = to + 1
        return added

    def _release_due(self, head: int, released_until: int) -> int:
        """Add a ``released`` row for every pending issue whose release time passed since the
        last sync (by the confirmed head's clock): it takes the next id, so the history,
        ordered by id, shows the release when it happened, after what came before it."""
        if head < 0:
            return 0
        now = int(self.alliance.gateway.block(head)["timestamp"])
        if now <= released_until:
            return 0
        with self.alliance.store.session() as s:
            due = point_repos.issues_released_between(s, after=released_until, until=now)
            added = point_repos.insert_point_events(s, [released_row(r) for r in due])
            # The cursor's block column holds a time here (seconds), not a block number.
            cursors.set_cursor(s, RELEASES, now, "")
        return added


def released_row(issued: dict[str, Any]) -> dict[str, Any]:
    """The row of the moment a pending issue's points become spendable (same transaction and
    block as the issue, so a reorg that drops the issue drops it too)."""
    return {**issued, "kind": "released",
            "log_index": issued["log_index"] + RELEASE_LOG_OFFSET,
            "block_time": issued["release_at"]}


def release_time(alliance: Alliance, *, program: str, day: int) -> int:
    """The unix time at which day ``day`` of a program begins (pending points release then)."""
    client = alliance.contracts.program(program)
    if client not in _origins:
        _origins[client] = client.origin()
    return _origins[client] + day * DAY


def _row(kind: str, args: dict[str, Any], raw: Any, programs: dict[str, int],
         chain_id: int) -> dict[str, Any]:
    order_ref = args.get("orderRef", args.get("conversionId"))
    program = str(raw["address"])
    # The other merchant of the event: where points were spent, converted to or from.
    other = args.get("merchantId", args.get("toMerchantId", args.get("fromMerchantId")))
    return {
        "chain_id": chain_id,
        "program": program,
        "merchant_id": int(other) if other is not None else programs[program],
        "member": str(args["member"]),
        "kind": kind,
        "amount": int(args["amount"] if "amount" in args else args["spent"]),
        "period": _opt_int(args.get("earnPeriod", args.get("period"))),
        "release_day": _opt_int(args.get("releaseDay")),
        "release_at": None,
        "burned": _opt_int(args.get("burned")),
        "order_ref": "0x" + order_ref.hex() if isinstance(order_ref, bytes) else None,
        "tx_hash": "0x" + bytes(raw["transactionHash"]).hex().removeprefix("0x"),
        "block_number": int(raw["blockNumber"]),
        "log_index": int(raw["logIndex"]),
    }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
