"""Memberships: card issue / earn / renew requests, a member's cards, tiers and the tier gate
of coupon campaigns.

Card mutations are *requests*, as the points' and the coupons': each checks what the chain
would refuse (the member already holds the merchant's card, a payment reference used before,
a renewal of no card), then queues one outbox operation that the merchant's account sends.

A card is paid either off chain (``payment_ref``: the merchant's reference of the payment,
e.g. its till's receipt number; on chain its keccak-256, usable once per merchant) or with
points: the member signs a points redemption at the merchant (``/v1/points/redeem``, the
points service), and once it is indexed the merchant asks for the card naming that
redemption's order; the redemption's order ref is then the card's payment reference, so one
redemption pays for one card, once.

Tiers are read-model arithmetic: the points a member was issued (less reversals) over a
rolling window before the chain's current time, at one merchant's program or at every one
(alliance-wide tiers, merchant 0). The highest tier whose threshold is met is the member's;
its multiplier raises the points an issue gives (:func:`boosted_points`, applied by the
API's issue route so the points package imports nothing of this one), and a campaign may be
locked to a tier (:func:`request_tier_grant` refuses members below it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from eth_utils.crypto import keccak
from sqlalchemy.orm import Session

from .. import limits
from ..alliance import Alliance
from ..coupons import service as coupons
from ..errors import (
    ContractRevertError,
    LedgerConflictError,
    LedgerNotFoundError,
    LedgerPermissionError,
    LedgerValidationError,
)
from ..merchants.repos import MerchantRow
from ..merchants.service import require_merchant
from ..outbox import repos as outbox
from ..outbox.views import OperationView, operation_view
from ..points.service import order_ref
from ..store.models import CampaignTierLock
from . import kinds, repos
from .clients import ALLIANCE_WIDE, MembershipCardsClient, card_id
from .kinds import IssueCardPayload, RenewCardPayload

DAY = 86_400
MAX_DAYS = 3660
MAX_TIERS = 16
MAX_WINDOW_DAYS = 3660
BPS = 10_000
MAX_MULTIPLIER_BPS = 100_000
MAX_PAYMENT_REF = 128
# Problem code of a grant refused because a member is below the campaign's tier (409).
TIER_TOO_LOW = "tier-too-low"


class CardStatus(StrEnum):
    """A card as its member sees it."""

    VALID = "valid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class CardView:
    """A member's card, from the read model, its status at the chain's time."""

    token_id: str
    merchant_id: int
    member: str
    tier: int
    expires_at: int
    status: CardStatus


@dataclass(frozen=True)
class TierDef:
    """One tier of a scope: ``level`` 1.. (higher is better)."""

    level: int
    name: str
    min_points: int
    window_days: int
    multiplier_bps: int


@dataclass(frozen=True)
class MemberTier:
    """Where a member stands in a scope's tiers: ``level`` 0 is below every tier."""

    merchant_id: int
    member: str
    level: int
    name: str | None
    points_in_window: int
    multiplier_bps: int


def _cards(alliance: Alliance) -> MembershipCardsClient:
    return kinds.cards(alliance.contracts)


def _now(alliance: Alliance) -> int:
    return int(alliance.gateway.block("latest")["timestamp"])


def _enqueue(session: Session, merchant: MerchantRow, kind: Any, payload: Any) -> OperationView:
    op = outbox.enqueue(session, kind=kind, payload=payload, merchant_id=merchant.id,
                        signer=merchant.account_address)
    return operation_view(op)


def payment_ref_of(reference: str) -> bytes:
    """The on-chain payment reference of a merchant's off-chain payment reference text."""
    if not isinstance(reference, str) or not 0 < len(reference) <= MAX_PAYMENT_REF:
        raise LedgerValidationError(f"payment_ref must be 1 to {MAX_PAYMENT_REF} characters",
                                    field="payment_ref")
    return keccak(text="payment:" + reference)


def _require_fresh_ref(alliance: Alliance, merchant_id: int, ref: bytes) -> None:
    if _cards(alliance).payment_ref_used(merchant_id, ref):
        raise LedgerConflictError("this payment reference already paid for a card",
                                  code="membership-payment-ref-used", merchant_id=merchant_id)


def _card_exists(alliance: Alliance, token_id: int) -> bool:
    try:
        _cards(alliance).card(token_id)
    except ContractRevertError as exc:
        if exc.name == "MembershipUnknownCard":
            return False
        raise
    return True


# ---------------------------------------------------------------------- cards


def request_issue_card(alliance: Alliance, session: Session, *, merchant_id: int, member: str,
                       tier: int, days: int, payment_ref: str) -> OperationView:
    """Queue a card of the calling merchant for ``member``, valid ``days`` from now, paid
    by the off-chain payment ``payment_ref``."""
    merchant = require_merchant(session, merchant_id)
    return _issue(alliance, session, merchant, member=member, tier=tier, days=days,
                  ref=payment_ref_of(payment_ref))


def request_earn_card(alliance: Alliance, session: Session, *, merchant_id: int, member: str,
                      tier: int, days: int, points_order_id: str,
                      price_points: int) -> OperationView:
    """Queue a card paid with points: the member's signed redemption of at least
    ``price_points`` at this merchant, for order ``points_order_id``, must be indexed."""
    merchant = require_merchant(session, merchant_id)
    account = limits.address(member)
    oid = limits.order_id(points_order_id)
    price = limits.points(price_points, "price_points")
    ref = bytes(order_ref(oid))
    spent = repos.points_redeemed(session, member=account, merchant_id=merchant.id,
                                  order_ref="0x" + ref.hex())
    if spent < price:
        raise LedgerConflictError(
            f"no indexed redemption of {price} points by {account} for order {oid} at "
            f"merchant {merchant.id} (found {spent})", code="membership-points-not-redeemed",
            field="points_order_id")
    return _issue(alliance, session, merchant, member=account, tier=tier, days=days, ref=ref)


def _issue(alliance: Alliance, session: Session, merchant: MerchantRow, *, member: str,
           tier: int, days: int, ref: bytes) -> OperationView:
    account = limits.address(member)
    t = limits.bounded_int(tier, "tier", low=1, high=kinds.MAX_TIER)
    d = limits.bounded_int(days, "days", low=1, high=MAX_DAYS)
    tid = card_id(merchant.id, account)
    if _card_exists(alliance, tid):
        raise LedgerConflictError(f"{account} already holds a card of merchant {merchant.id}; "
                                  "renew it", code="membership-card-exists", token_id=str(tid))
    _require_fresh_ref(alliance, merchant.id, ref)
    payload = IssueCardPayload(merchant.id, account, t, _now(alliance) + d * DAY, ref)
    return _enqueue(session, merchant, kinds.ISSUE_CARD, payload)


def request_renew_card(alliance: Alliance, session: Session, *, merchant_id: int, member: str,
                       days: int, payment_ref: str, tier: int | None = None) -> OperationView:
    """Queue a renewal of ``member``'s card of the calling merchant: ``days`` more from its
    expiry (from now if it has passed), with ``tier`` (default: the card's)."""
    merchant = require_merchant(session, merchant_id)
    account = limits.address(member)
    d = limits.bounded_int(days, "days", low=1, high=MAX_DAYS)
    ref = payment_ref_of(payment_ref)
    tid = card_id(merchant.id, account)
    try:
        current = _cards(alliance).card(tid)
    except ContractRevertError as exc:
        if exc.name == "MembershipUnknownCard":
            raise LedgerNotFoundError(f"{account} holds no card of merchant {merchant.id}",
                                      token_id=str(tid)) from exc
        raise
    t = current.tier if tier is None else limits.bounded_int(tier, "tier", low=1,
                                                             high=kinds.MAX_TIER)
    _require_fresh_ref(alliance, merchant.id, ref)
    expires = max(current.expires_at, _now(alliance)) + d * DAY
    return _enqueue(session, merchant, kinds.RENEW_CARD, RenewCardPayload(tid, t, expires, ref))


def member_cards(alliance: Alliance, session: Session, *, member: str) -> list[CardView]:
    """A member's cards (indexed), each valid or expired at the chain's current time."""
    account = limits.address(member)
    now = _now(alliance)
    return [CardView(c.token_id, c.merchant_id, c.member, c.tier, c.expires_at,
                     CardStatus.VALID if c.expires_at >= now else CardStatus.EXPIRED)
            for c in repos.cards_of(session, account)]


def card_view(card: CardView) -> dict[str, Any]:
    return {**asdict(card), "status": str(card.status)}


# ---------------------------------------------------------------------- tiers


def set_tiers(session: Session, *, merchant_id: int, tiers: list[TierDef]) -> list[TierDef]:
    """Replace the calling merchant's tiers (merchant 0: the alliance-wide ones, the
    operator's). Levels run 1..n, thresholds rise strictly with the level."""
    if merchant_id != ALLIANCE_WIDE:
        require_merchant(session, merchant_id)
    if len(tiers) > MAX_TIERS:
        raise LedgerValidationError(f"at most {MAX_TIERS} tiers", field="tiers")
    rows: list[dict[str, Any]] = []
    last = -1
    for i, t in enumerate(sorted(tiers, key=lambda t: t.level)):
        if t.level != i + 1:
            raise LedgerValidationError("tier levels must be 1, 2, ... without gaps",
                                        field="tiers")
        low = limits.bounded_int(t.min_points, "min_points", low=0, high=2**128)
        if low <= last:
            raise LedgerValidationError("min_points must rise with the level",
                                        field="min_points")
        last = low
        rows.append({"level": t.level, "name": t.name[:64] or f"tier {t.level}",
                     "min_points": low,
                     "window_days": limits.bounded_int(t.window_days, "window_days", low=1,
                                                       high=MAX_WINDOW_DAYS),
                     "multiplier_bps": limits.bounded_int(t.multiplier_bps, "multiplier_bps",
                                                          low=BPS, high=MAX_MULTIPLIER_BPS)})
    repos.replace_tiers(session, merchant_id, rows)
    return get_tiers(session, merchant_id=merchant_id)


def get_tiers(session: Session, *, merchant_id: int) -> list[TierDef]:
    return [TierDef(r.level, r.name, r.min_points, r.window_days, r.multiplier_bps)
            for r in repos.tiers(session, merchant_id)]


def member_tier(alliance: Alliance, session: Session, *, merchant_id: int,
                member: str) -> MemberTier:
    """``member``'s tier in ``merchant_id``'s tiers (0: alliance-wide) at the chain's time:
    the highest whose threshold the points earned over its window meet."""
    account = limits.address(member)
    now = _now(alliance)
    scope = None if merchant_id == ALLIANCE_WIDE else merchant_id
    best = MemberTier(merchant_id, account, 0, None, 0, BPS)
    earned_by_window: dict[int, int] = {}
    for t in get_tiers(session, merchant_id=merchant_id):
        earned = earned_by_window.get(t.window_days)
        if earned is None:
            earned = repos.points_earned(session, member=account, merchant_id=scope,
                                         since=now - t.window_days * DAY)
            earned_by_window[t.window_days] = earned
        if earned >= t.min_points:
            best = MemberTier(merchant_id, account, t.level, t.name, earned, t.multiplier_bps)
        elif best.level == 0:
            best = MemberTier(merchant_id, account, 0, None, earned, BPS)
    return best


def boosted_points(alliance: Alliance, session: Session, *, merchant_id: int, member: str,
                   points: int) -> int:
    """``points`` raised by the member's tier at ``merchant_id`` (its own tiers, else the
    alliance-wide ones), rounded down; unchanged below every tier."""
    tier = member_tier(alliance, session, merchant_id=merchant_id, member=member)
    if tier.level == 0 and not get_tiers(session, merchant_id=merchant_id):
        tier = member_tier(alliance, session, merchant_id=ALLIANCE_WIDE, member=member)
    return points * tier.multiplier_bps // BPS


# ---------------------------------------------------------------------- tier-locked campaigns


def lock_campaign(session: Session, *, merchant_id: int, campaign_id: int,
                  min_level: int, scope_merchant_id: int | None = None) -> int:
    """Lock the calling merchant's campaign to members of ``min_level`` or above (of its own
    tiers, or ``scope_merchant_id``'s; 0: alliance-wide)."""
    merchant = require_merchant(session, merchant_id)
    cid = limits.bounded_int(campaign_id, "campaign_id", low=1, high=2**64 - 1)
    # The coupons read model: a campaign is lockable once its creation is indexed.
    if cid not in {c["campaign_id"] for c in coupons.list_campaigns(session,
                                                                    merchant_id=merchant.id)}:
        raise LedgerPermissionError(f"no indexed campaign {cid} of merchant {merchant.id}",
                                    campaign_id=cid)
    scope = merchant.id if scope_merchant_id is None else scope_merchant_id
    levels = [t.level for t in get_tiers(session, merchant_id=scope)]
    level = limits.bounded_int(min_level, "min_level", low=1, high=MAX_TIERS)
    if level not in levels:
        raise LedgerValidationError(f"merchant {scope} has no tier {level}", field="min_level")
    repos.set_tier_lock(session, campaign_id=cid, scope_merchant_id=scope, min_level=level)
    return scope


def tier_lock_of(session: Session, campaign_id: int) -> CampaignTierLock | None:
    """The campaign's tier lock, if it has one."""
    return repos.tier_lock(session, campaign_id)


def check_tier_gate(alliance: Alliance, session: Session, *, campaign_id: int,
                    members: list[str]) -> None:
    """Refuse (409 ``tier-too-low``) if the campaign is tier-locked and a member is below."""
    lock = repos.tier_lock(session, campaign_id)
    if lock is None:
        return
    for i, m in enumerate(members):
        t = member_tier(alliance, session, merchant_id=lock.scope_merchant_id, member=m)
        if t.level < lock.min_level:
            raise LedgerConflictError(
                f"campaign {campaign_id} needs tier {lock.min_level}; {t.member} is at "
                f"tier {t.level}", code=TIER_TOO_LOW, index=i, campaign_id=campaign_id)


def request_tier_grant(alliance: Alliance, session: Session, *, merchant_id: int,
                       campaign_id: int, members: list[str]) -> OperationView:
    """Queue a grant of the campaign's coupons, refused if a member is below its tier lock."""
    accounts: list[str] = [limits.address(m, "members") for m in members]
    check_tier_gate(alliance, session, campaign_id=campaign_id, members=accounts)
    return coupons.request_grant(alliance, session, merchant_id=merchant_id,
                                 campaign_id=campaign_id, members=accounts)


def request_tier_claim_voucher(alliance: Alliance, session: Session, *, merchant_id: int,
                               code: str, to: str) -> OperationView:
    """Queue the claim of a voucher for ``to``, refused (409 ``tier-too-low``) as a grant is
    if the voucher's campaign is tier-locked and ``to`` is below its tier."""
    voucher = coupons.Voucher.parse(code)
    account = limits.address(to, "to")
    check_tier_gate(alliance, session, campaign_id=voucher.campaign_id, members=[account])
    return coupons.request_claim_voucher(alliance, session, merchant_id=merchant_id, code=code,
                                         to=account)
