"""The points read model: one ``point_events`` row per point event of every program.

Issues, releases, reversals, redemptions, refunds, conversions out and in, and expiries, as
a member's history shows them (``ledger.points.reads.history``). A pending issue also gives
a ``released`` row, the moment its points become spendable: stored with the issue's
transaction and block (so a reorg drops both), when the chain's clock passes its release
time (:meth:`PointsProjection.on_head`; or at once, if indexed after that time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..contracts.client import ContractClient
from ..indexer import repos as cursors
from ..indexer.follower import ChainEvent, Head
from ..indexer.repos import round_merchants
from . import repos as point_repos
from .clients import PointProgramClient

# The projection's cursor (the block its rows reflect).
CURSOR = "points"
# Up to which chain time pending issues have their ``released`` rows (the cursor's block
# column holds a time here, in seconds, not a block number).
RELEASES = "points-releases"

KINDS = {
    "PointsIssued": "issued",
    "PointsReversed": "reversed",
    "PointsRedeemed": "redeemed",
    "PointsExpired": "expired",
    "RedemptionRefunded": "refunded",
    "PointsConverted": "converted_out",
    "PointsConvertedIn": "converted_in",
    "PointsMoved": "moved_out",
}

# A ``released`` row takes its issue's log index plus this offset (unique, after any log).
RELEASE_LOG_OFFSET = 1 << 20
# A move's ``moved_in`` row (the wallet's) takes its log index plus this offset.
MOVED_IN_LOG_OFFSET = 2 << 20
DAY = 86_400

# Programs' origins (immutable; the day a pending issue releases counts from it), per program
# client: a client belongs to one deployment, so a reused address never reads a stale origin.
_origins: WeakKeyDictionary[PointProgramClient, int] = WeakKeyDictionary()


class PointsProjection:
    """Point events of every admitted merchant's program into ``point_events``."""

    name = CURSOR
    events = frozenset(KINDS)

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        return {m.program_address: self.alliance.contracts.program(m.program_address)
                for m in round_merchants(session) if m.program_address}

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        if not events:
            return 0
        programs = {m.program_address: m.id for m in round_merchants(session)
                    if m.program_address}
        released = cursors.get_cursor(session, RELEASES)
        released_until = released[0] if released is not None else -1
        rows = []
        for ev in events:
            if ev.name == "PointsMoved":
                rows += moved_rows(ev, programs, self.alliance.gateway.chain_id)
                continue
            row = _row(KINDS[ev.name], ev, programs, self.alliance.gateway.chain_id)
            day = row.pop("release_day")
            if day:
                row["release_at"] = release_time(self.alliance, program=row["program"], day=day)
            rows.append(row)
            # Indexed after its release time passed (late, or again after a reorg): its
            # release row goes in now; later ones come with on_head.
            if row["release_at"] is not None and row["release_at"] <= released_until:
                rows.append(released_row(row))
        return point_repos.insert_point_events(session, rows)

    def rollback(self, session: Session, after_block: int) -> None:
        point_repos.delete_events_after(session, after_block)

    def on_head(self, session: Session, head: Head) -> int:
        """Add a ``released`` row for every pending issue whose release time passed since
        the last round (by the confirmed head's clock): it takes the next id, so the history,
        ordered by id, shows the release when it happened, after what came before it."""
        released = cursors.get_cursor(session, RELEASES)
        released_until = released[0] if released is not None else -1
        if head.time <= released_until:
            return 0
        due = point_repos.issues_released_between(session, after=released_until,
                                                  until=head.time)
        added = point_repos.insert_point_events(session, [released_row(r) for r in due])
        cursors.set_cursor(session, RELEASES, head.time, "")
        return added


def released_row(issued: dict[str, Any]) -> dict[str, Any]:
    """The row of the moment a pending issue's points become spendable (same transaction and
    block as the issue, so a reorg that drops the issue drops it too)."""
    return {**issued, "kind": "released",
            "log_index": issued["log_index"] + RELEASE_LOG_OFFSET,
            "block_time": issued["release_at"]}


def moved_rows(ev: ChainEvent, programs: dict[str, int], chain_id: int
               ) -> list[dict[str, Any]]:
    """A move's two rows: ``moved_out`` for the custodial account, ``moved_in`` for the
    wallet (its log index offset by :data:`MOVED_IN_LOG_OFFSET`)."""
    base = {"chain_id": chain_id, "program": ev.address, "merchant_id": programs[ev.address],
            "amount": int(ev.args["amount"]), "period": None, "release_at": None,
            "burned": None, "order_ref": None, "tx_hash": ev.tx_hash,
            "block_number": ev.block_number, "block_time": ev.block_time}
    return [{**base, "member": str(ev.args["from"]), "kind": "moved_out",
             "log_index": ev.log_index},
            {**base, "member": str(ev.args["to"]), "kind": "moved_in",
             "log_index": ev.log_index + MOVED_IN_LOG_OFFSET}]


def release_time(alliance: Alliance, *, program: str, day: int) -> int:
    """The unix time at which day ``day`` of a program begins (pending points release then)."""
    client = alliance.contracts.program(program)
    if client not in _origins:
        _origins[client] = client.origin()
    return _origins[client] + day * DAY


def _row(kind: str, ev: ChainEvent, programs: dict[str, int], chain_id: int
         ) -> dict[str, Any]:
    args = ev.args
    order_ref = args.get("orderRef", args.get("conversionId"))
    # The other merchant of the event: where points were spent, converted to or from.
    other = args.get("merchantId", args.get("toMerchantId", args.get("fromMerchantId")))
    return {
        "chain_id": chain_id,
        "program": ev.address,
        "merchant_id": int(other) if other is not None else programs[ev.address],
        "member": str(args["member"]),
        "kind": kind,
        "amount": int(args["amount"] if "amount" in args else args["spent"]),
        "period": _opt_int(args.get("earnPeriod", args.get("period"))),
        "release_day": _opt_int(args.get("releaseDay")),
        "release_at": None,
        "burned": _opt_int(args.get("burned")),
        "order_ref": "0x" + order_ref.hex() if isinstance(order_ref, bytes) else None,
        "tx_hash": ev.tx_hash,
        "block_number": ev.block_number,
        "log_index": ev.log_index,
        "block_time": ev.block_time,
    }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
