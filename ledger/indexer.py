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

from .alliance import Alliance
from .store import repos

log = logging.getLogger(__name__)

CURSOR = "points"
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

_sync_lock = threading.Lock()


class Indexer:
    """Brings the point-event read model up to the chain's confirmed head."""

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def sync(self) -> int:
        """Index new events; give how many rows were added."""
        with _sync_lock:
            return self._sync()

    def _sync(self) -> int:
        gw = self.alliance.gateway
        head = gw.block_number() - self.alliance.settings.confirmations
        start_default = self.alliance.contracts.deployment.block
        with self.alliance.store.session() as s:
            cursor = repos.get_cursor(s, CURSOR)
            programs = {m.program_address: m.id for m in repos.list_merchants(s)
                        if m.program_address}
        last = start_default - 1
        if cursor is not None:
            last, last_hash = cursor
            if last >= 0 and last <= head and gw.block(last)["hash"].hex().removeprefix("0x") \
                    != last_hash.removeprefix("0x"):
                rewind = max(start_default - 1, last - REORG_DEPTH)
                log.warning("reorg below block %d: re-indexing from %d", last, rewind + 1)
                with self.alliance.store.session() as s:
                    repos.delete_events_after(s, rewind)
                last = rewind
        if not programs or last >= head:
            return 0
        added = 0
        frm = last + 1
        while frm <= head:
            to = min(head, frm + CHUNK - 1)
            logs = gw.get_logs(address=list(programs), from_block=frm, to_block=to)
            rows = []
            for lg in logs:
                program = self.alliance.contracts.program(str(lg["address"]))
                for name, args, raw in program.decode_logs([lg]):
                    kind = _KINDS.get(name)
                    if kind is None:
                        continue
                    rows.append(_row(kind, args, raw, programs, gw.chain_id))
            to_hash = gw.block(to)["hash"].hex()
            with self.alliance.store.session() as s:
                added += repos.insert_point_events(s, rows)
                repos.set_cursor(s, CURSOR, to, to_hash)
            frm = to + 1
        return added


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
        "order_ref": "0x" + order_ref.hex() if isinstance(order_ref, bytes) else None,
        "tx_hash": "0x" + bytes(raw["transactionHash"]).hex().removeprefix("0x"),
        "block_number": int(raw["blockNumber"]),
        "log_index": int(raw["logIndex"]),
    }
