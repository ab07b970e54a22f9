"""The demo alliance's memberships: the department store's tiers (silver from 500 store points
over a year, earning 1.25x; gold from 2,000, earning 1.5x) and a store membership card for the
demo wallet, at the tier its earnings give it (silver: it earned 1,600 store points), valid a
year, paid by a till receipt reference."""

from __future__ import annotations

from eth_account import Account

from ..alliance import Alliance
from ..indexer.follower import Follower
from ..outbox.worker import OutboxWorker
from ..points.projection import PointsProjection
from . import service
from .clients import card_id
from .service import TierDef

DEMO_TIERS = (TierDef(level=1, name="silver", min_points=500, window_days=365,
                      multiplier_bps=12_500),
              TierDef(level=2, name="gold", min_points=2000, window_days=365,
                      multiplier_bps=15_000))
CARD_DAYS = 365
CARD_PAYMENT_REF = "demo-GPDS-till-1/membership-1"


def seed_demo_memberships(alliance: Alliance, worker: OutboxWorker, *, store: int,
                          wallet_key: bytes) -> dict[str, object]:
    """Set the store's tiers and issue the demo wallet's store card (once its earnings are
    indexed: the tier is read from the read model); give the card's id and tier."""
    if alliance.contracts.memberships is None:
        return {}
    wallet = Account.from_key(wallet_key).address
    worker.drain()
    # Tiers are read-model arithmetic: index the points first (the service's indexer goes on
    # from this projection's cursor when it starts).
    Follower(alliance, [PointsProjection(alliance)]).catch_up()
    with alliance.store.session() as s:
        service.set_tiers(s, merchant_id=store, tiers=list(DEMO_TIERS))
        tier = service.member_tier(alliance, s, merchant_id=store, member=wallet)
        service.request_issue_card(alliance, s, merchant_id=store, member=wallet,
                                   tier=max(tier.level, 1), days=CARD_DAYS,
                                   payment_ref=CARD_PAYMENT_REF)
    worker.drain()
    token = card_id(store, wallet)
    card = alliance.contracts.memberships.card(token)
    return {"card_id": str(token), "merchant_id": store,
            "tier": card.tier, "tier_name": tier.name or DEMO_TIERS[0].name}
