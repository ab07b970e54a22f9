"""The clearing read model: every ``Cleared`` act of the Clearing and the program events of
its transaction that make it up (the redemptions, the conversion or the refunds a
statement lists), so statements read the store instead of the chain's logs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..contracts.client import ContractClient
from ..indexer.follower import ChainEvent, Head
from ..indexer.repos import round_merchants
from . import repos as clearing_repos
from .service import KIND_NAMES

# The projection's cursor (the block its rows reflect).
CURSOR = "clearing"
# The program events that make up an act, per act kind, and the argument naming the
# merchant that accepted the points.
LINE_EVENTS = {"redemption": ("PointsRedeemed", "merchantId"),
               "refund": ("RedemptionRefunded", "merchantId"),
               "conversion": ("PointsConverted", "toMerchantId"),
               # A coupon of the debtor used at the creditor, and its rollback: the coupon
               # book's event carries the discount (points = value, rate 1).
               "coupon": ("CouponRedeemed", "acceptor"),
               "coupon_rollback": ("CouponRedemptionRolledBack", "acceptor")}
# The kinds whose debtor and creditor are the acceptor and the issuer (value moving back).
REVERSED = {"refund", "coupon_rollback"}
COUPON_KINDS = {"coupon", "coupon_rollback"}


class ClearingProjection:
    """``Cleared`` acts and their lines into ``cleared_acts`` and ``cleared_lines``."""

    name = CURSOR
    events = frozenset({"Cleared", *(name for name, _ in LINE_EVENTS.values())})

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        contracts = self.alliance.contracts
        out: dict[str, ContractClient] = {contracts.clearing.address: contracts.clearing}
        if contracts.coupons is not None:
            out[contracts.coupons.address] = contracts.coupons
        for m in round_merchants(session):
            if m.program_address:
                out[m.program_address] = contracts.program(m.program_address)
        return out

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        clearing = self.alliance.contracts.clearing.address.lower()
        cleared = [e for e in events if e.name == "Cleared" and e.address.lower() == clearing]
        if not cleared:
            return 0
        programs = {m.id: m.program_address for m in round_merchants(session)}
        # A transaction's line events by (emitter, event name): an act takes those of its
        # program and kind (a 200-line act looked at every event of its transaction with two
        # address lowerings each).
        of_tx: dict[tuple[str, str, str], list[ChainEvent]] = defaultdict(list)
        for e in events:
            if e.name != "Cleared":
                of_tx[(e.tx_hash, e.address.lower(), e.name)].append(e)
        chain_id = self.alliance.gateway.chain_id
        book = self.alliance.contracts.coupons
        acts: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        for c in cleared:
            debtor, creditor = int(c.args["debtor"]), int(c.args["creditor"])
            value, rate = int(c.args["value"]), int(c.args["rate"])
            kind = KIND_NAMES[int(c.args["kind"])]
            acts.append({"chain_id": chain_id,
                         "period": int(c.args["period"]), "kind": kind, "debtor": debtor,
                         "creditor": creditor, "value": value, "rate": rate,
                         "tx_hash": c.tx_hash, "block_number": c.block_number,
                         "log_index": c.log_index})
            # The program whose points moved (for a coupon: the issuer's, its book the
            # emitter): the debtor's, or for a refund or rollback the creditor's.
            points_of = creditor if kind in REVERSED else debtor
            acceptor = debtor if kind in REVERSED else creditor
            if kind in COUPON_KINDS:
                program = book.address if book is not None else ""
            else:
                program = programs.get(points_of) or self._program_on_chain(points_of)
            event_name, acceptor_arg = LINE_EVENTS[kind]
            for ev in of_tx.get((c.tx_hash, program.lower(), event_name), ()):
                args = ev.args
                if int(args[acceptor_arg]) != acceptor:
                    continue
                if kind == "conversion":
                    pts, val = int(args["spent"]), value
                elif kind in COUPON_KINDS:
                    pts = val = int(args["discount"])
                else:
                    pts = int(args["amount"])
                    val = pts * rate
                lines.append({
                    "tx_hash": c.tx_hash, "act_log_index": c.log_index, "kind": kind,
                    "block_number": ev.block_number, "log_index": ev.log_index,
                    "points_of": points_of, "accepted_by": acceptor,
                    "order_ref": "0x" + bytes(args["orderRef"]).hex(), "points": pts,
                    "rate": rate, "value": val})
        return clearing_repos.insert_acts(session, acts, lines)

    def rollback(self, session: Session, after_block: int) -> None:
        clearing_repos.delete_after(session, after_block)

    def on_head(self, session: Session, head: Head) -> int:
        return 0

    def _program_on_chain(self, merchant_id: int) -> str:
        return str(self.alliance.contracts.registry.merchant(merchant_id).program)
