"""The member's standing in the member app: membership cards and tiers, per shop and
alliance-wide, read through the memberships service (cards from its read model, valid or
expired at the chain's time; tiers from the points earned over each tier's rolling window).

One entry per scope where there is something to show: every shop that defined tiers or gave
the member a card, and the alliance (merchant 0) if the operator defined alliance-wide tiers.
Each says the member's card (tier, expiry, valid or expired), the tier reached (its name and
the multiplier on points issued there), the ladder of tiers, and, when every tier of the
scope counts the same window, how many points the next tier still needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from .. import limits
from ..alliance import Alliance
from ..memberships import service as memberships
from ..merchants.repos import list_merchants

ALLIANCE_WIDE = 0


@dataclass(frozen=True)
class TierStep:
    level: int
    name: str
    min_points: int
    window_days: int
    multiplier_bps: int
    reached: bool


@dataclass(frozen=True)
class MyCard:
    token_id: str
    tier: int
    tier_name: str | None
    expires_at: int
    status: str


@dataclass(frozen=True)
class Standing:
    """The member in one scope: ``merchant_id`` 0 and ``merchant_name`` None for the
    alliance-wide tiers."""

    merchant_id: int
    merchant_name: str | None
    card: MyCard | None
    level: int
    tier_name: str | None
    multiplier_bps: int
    points_in_window: int | None
    next_needed: int | None
    tiers: list[TierStep]


def my_standing(alliance: Alliance, session: Session, *, member: str) -> list[Standing]:
    """The member's cards and tiers: the alliance-wide scope first, then shops by id."""
    account = limits.address(member)
    cards = {c.merchant_id: c for c in memberships.member_cards(alliance, session,
                                                                member=account)}
    scopes: list[tuple[int, str | None]] = [(ALLIANCE_WIDE, None)]
    scopes += [(m.id, m.name) for m in list_merchants(session)]
    out: list[Standing] = []
    for merchant_id, name in scopes:
        tiers = memberships.get_tiers(session, merchant_id=merchant_id)
        card = cards.get(merchant_id)
        if not tiers and card is None:
            continue
        names = {t.level: t.name for t in tiers}
        mine = memberships.member_tier(alliance, session, merchant_id=merchant_id,
                                       member=account) if tiers else None
        level = mine.level if mine is not None else 0
        one_window = len({t.window_days for t in tiers}) == 1
        earned = mine.points_in_window if mine is not None and one_window else None
        above = [t for t in tiers if t.level > level]
        needed = (max(0, above[0].min_points - earned)
                  if above and earned is not None else None)
        out.append(Standing(
            merchant_id=merchant_id, merchant_name=name,
            card=MyCard(card.token_id, card.tier, names.get(card.tier), card.expires_at,
                        str(card.status)) if card is not None else None,
            level=level, tier_name=mine.name if mine is not None else None,
            multiplier_bps=mine.multiplier_bps if mine is not None else memberships.BPS,
            points_in_window=earned, next_needed=needed,
            tiers=[TierStep(t.level, t.name, t.min_points, t.window_days, t.multiplier_bps,
                            t.level <= level) for t in tiers]))
    return out
