"""The offers projection: confirmed point events fire the merchants' rules and pay gifts.

It follows every program's ``PointsIssued`` (purchase and referral rules of the program's
merchant) and ``PointsRedeemed`` (a gift redemption's points taken: its coupon grant is
queued), with a cursor of its own, in the indexer's store transaction: a firing, the grant it
queues and the cursor move together, so a crash or a retried round never fires twice, and
the unique (rule, cause) record keeps a re-read block (after a reorg) from firing again.
A confirmed ``PointsReversed`` takes back the coupon a purchase rule granted for the order
once what is left of the order no longer meets the rule (see ``service.settle_firings``);
each is recorded with its block, so a reorg rollback undoes what it counted.
The points capability knows nothing of this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..contracts.client import ContractClient
from ..indexer.follower import ChainEvent, Head
from ..indexer.repos import round_merchants
from ..store.models import GiftRedemption
from . import service
from .repos import GiftRedemptionStatus

CURSOR = "offers"
# Whether any gift redemption waits for its points to be taken (one cached statement).
_ANY_PAYING = select(GiftRedemption.id).where(
    GiftRedemption.status == GiftRedemptionStatus.PAYING.value).limit(1)


class OffersProjection:
    """Rules fired and gift coupons queued from the point programs' events."""

    name = CURSOR
    events = frozenset({"PointsIssued", "PointsRedeemed", "PointsReversed"})

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        return {m.program_address: self.alliance.contracts.program(m.program_address)
                for m in round_merchants(session) if m.program_address}

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        if not events:
            return 0
        programs = {m.program_address.lower(): m.id
                    for m in round_merchants(session) if m.program_address}
        issues: dict[int, list[tuple[str, bytes, int]]] = {}
        reversals: dict[int, list[service.Reversal]] = {}
        redeemed: list[str] = []
        for e in events:
            ref = bytes(e.args["orderRef"])
            merchant = programs.get(e.address.lower())
            if e.name == "PointsIssued":
                if merchant is not None:
                    issues.setdefault(merchant, []).append(
                        (str(e.args["member"]), ref, int(e.args["amount"])))
            elif e.name == "PointsReversed":
                if merchant is not None:
                    reversals.setdefault(merchant, []).append(service.Reversal(
                        ref, int(e.args["amount"]), e.tx_hash, e.log_index, e.block_number))
            else:
                redeemed.append("0x" + ref.hex())
        done = 0
        for merchant, lines in issues.items():
            done += service.on_points_issued(self.alliance, session, merchant_id=merchant,
                                             issues=lines)
        # After the issues: an order issued and reversed in one round fires, then revokes.
        for merchant, refs in reversals.items():
            done += service.on_points_reversed(session, merchant_id=merchant, reversals=refs)
        # Redemptions are many and gift redemptions few: the look-up of a chunk's refs (an
        # IN of every ref, built anew each round) only when some gift redemption is paying.
        if redeemed and session.scalar(_ANY_PAYING) is None:
            return done
        return done + service.on_points_redeemed(session, redeemed)

    def rollback(self, session: Session, after_block: int) -> None:
        """Reversals counted above ``after_block`` are taken back from their firings (read
        again in their new blocks, they count once). What fired stays fired (a grant queued
        for an issue a reorg undid is not taken back; the firing record keeps the re-mined
        issue from firing again)."""
        service.undo_reversals_after(session, after_block)

    def on_head(self, session: Session, head: Head) -> int:
        return (service.release_failed_gift_redemptions(session)
                + service.settle_firings(self.alliance, session))


