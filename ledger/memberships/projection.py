"""The memberships read model: one ``membership_events`` row per card issued or renewed by
the deployment's MembershipCards (a card never moves, so no transfer rows); a reorg drops the
rows of the blocks it undoes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..contracts.client import ContractClient
from ..indexer.follower import ChainEvent, Head
from . import repos
from .clients import merchant_of
from .repos import CardEventKind

CURSOR = "memberships"


def _ref(value: Any) -> str:
    return "0x" + bytes(value).hex()


class MembershipsProjection:
    """Events of the deployment's MembershipCards into ``membership_events``."""

    name = CURSOR
    events = frozenset({"CardIssued", "CardRenewed"})

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        cards = self.alliance.contracts.memberships
        return {cards.address: cards} if cards is not None else {}

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        cards = self.alliance.contracts.memberships
        if cards is None:
            return 0
        rows: list[dict[str, Any]] = []
        for e in events:
            if e.address.lower() != cards.address.lower():
                continue
            a = e.args
            tid = int(a["tokenId"])
            # A renewal's event names no member: the card's id does (merchant << 160 | member).
            member = "0x" + (tid & ((1 << 160) - 1)).to_bytes(20).hex()
            rows.append({
                "kind": CardEventKind.ISSUED if e.name == "CardIssued" else CardEventKind.RENEWED,
                "token_id": str(tid), "merchant_id": merchant_of(tid),
                "member": str(a["member"]) if "member" in a else member,
                "tier": int(a["tier"]), "expires_at": int(a["expiresAt"]),
                "payment_ref": _ref(a["paymentRef"]), "tx_hash": e.tx_hash,
                "block_number": e.block_number, "log_index": e.log_index,
                "block_time": e.block_time})
        return repos.insert_events(session, rows)

    def rollback(self, session: Session, after_block: int) -> None:
        repos.delete_after(session, after_block)

    def on_head(self, session: Session, head: Head) -> int:
        return 0
