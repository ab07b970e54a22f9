"""Triggered offers and gifts: what the API and the CLI call.

Rules (per merchant): a *purchase* rule grants a coupon of one of the merchant's campaigns
for every order whose points issue is at least ``min_points``; a *birthday* rule grants one to
every member whose birth month the merchant recorded, once per member per year, by the
scheduled job (:func:`run_birthday_offers`); a *referral* rule grants one to both the inviter
and the invitee on the invitee's first purchase at the merchant after being referred.

Firing (:func:`fire`) is idempotent: a unique (rule, cause) record in the store, inserted in
the same transaction that queues the grant (the coupons service's grant kind, through the
outbox), so a rule never grants twice for one cause across retries, restarts and concurrent
runs. Purchases and referrals fire from the read model (the offers projection reads confirmed
``PointsIssued`` events); points know nothing of offers.

Gifts: a merchant lists gifts priced in its points; a member redeems points for one with the
ordinary signed points redemption, for the order id ``gift-<gift id>-<request id>`` (so one
request can never pay twice, in the store or on chain). The gift coupon's grant is queued by
the projection in the store transaction that records the confirmed redemption.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import limits
from ..alliance import Alliance
from ..coupons import kinds as coupon_kinds
from ..coupons import repos as coupon_repos
from ..coupons import service as coupons
from ..coupons.clients import CampaignState, CouponKind
from ..errors import (
    ContractRevertError,
    LedgerConfigError,
    LedgerConflictError,
    LedgerNotFoundError,
    LedgerPermissionError,
    LedgerValidationError,
)
from ..memberships import service as memberships
from ..merchants.service import program_of, require_merchant
from ..outbox import repos as outbox
from ..outbox.views import OperationView
from ..points import service as points
from ..store.models import (
    Gift,
    GiftRedemption,
    OfferBirthMonth,
    OfferFiring,
    OfferInvite,
    OfferReferral,
    OfferRule,
    OperationStatus,
    PointEvent,
)
from ..types import MerchantId
from . import repos
from .repos import FiringStatus, GiftRedemptionStatus, RuleKind

log = logging.getLogger(__name__)

MAX_GIFT_STOCK = 1_000_000
MAX_NAME = 120
# Refusals of the coupons service that make a firing ``skipped`` (a chain or store outage is
# not one of them: it propagates and the round runs again).
GRANT_REFUSALS = (LedgerConflictError, LedgerPermissionError, LedgerNotFoundError,
                  LedgerValidationError, LedgerConfigError)
# Firings that granted a coupon (counted as fired).
GRANTED = (FiringStatus.QUEUED, FiringStatus.REVOKING, FiringStatus.REVOKED, FiringStatus.KEPT)


# ---------------------------------------------------------------------- rules


def _campaign(alliance: Alliance, merchant_id: int, campaign_id: Any) -> CampaignState:
    """One of the merchant's own campaigns, as the chain has it."""
    cid = limits.bounded_int(campaign_id, "campaign_id", low=1, high=coupons.MAX_U64)
    try:
        c = coupon_kinds.book(alliance.contracts).campaign(cid)
    except ContractRevertError as exc:
        if exc.name == "CouponUnknownCampaign":
            raise LedgerNotFoundError(f"no campaign {cid}", campaign_id=cid) from exc
        raise
    if c.issuer != merchant_id:
        raise LedgerPermissionError(
            f"campaign {cid} is merchant {c.issuer}'s: a rule or gift grants only your own "
            "campaigns", campaign_id=cid)
    return c


def rule_out(r: OfferRule) -> dict[str, Any]:
    return {"rule_id": r.id, "merchant_id": r.merchant_id, "kind": r.kind,
            "campaign_id": r.campaign_id, "min_points": r.min_points,
            "min_spend": r.min_spend, "active": r.active}


def create_rule(alliance: Alliance, session: Session, *, merchant_id: int, kind: str,
                campaign_id: int, min_points: int | None = None,
                min_spend: int | None = None) -> dict[str, Any]:
    """A rule of the calling merchant, active at once. A purchase rule's threshold is in
    points issued for the order (``min_points``) or in what the order was worth
    (``min_spend``, minor units, as the issue request's ``spend`` gives it): one of them."""
    require_merchant(session, merchant_id)
    try:
        rk = RuleKind(kind)
    except ValueError as exc:
        raise LedgerValidationError("kind is purchase, birthday or referral",
                                    field="kind") from exc
    if rk is RuleKind.PURCHASE:
        if (min_points is None) == (min_spend is None):
            raise LedgerValidationError("a purchase rule needs one of min_points and "
                                        "min_spend", field="min_points")
        if min_points is not None:
            min_points = limits.points(min_points)
        else:
            min_spend = limits.bounded_int(min_spend, "min_spend", low=1,
                                           high=limits.MAX_SPEND)
    elif min_points is not None or min_spend is not None:
        raise LedgerValidationError("min_points and min_spend are for purchase rules",
                                    field="min_points" if min_points is not None
                                    else "min_spend")
    _campaign(alliance, merchant_id, campaign_id)
    row = OfferRule(merchant_id=merchant_id, kind=rk.value, campaign_id=int(campaign_id),
                    min_points=min_points, min_spend=min_spend, active=True)
    session.add(row)
    session.flush()
    return rule_out(row)


def _own_rule(session: Session, merchant_id: int, rule_id: int) -> OfferRule:
    r = repos.rule(session, rule_id)
    if r is None or r.merchant_id != merchant_id:
        raise LedgerNotFoundError(f"no rule {rule_id} of yours", rule_id=rule_id)
    return r


def list_rules(session: Session, *, merchant_id: int) -> list[dict[str, Any]]:
    return [rule_out(r) for r in repos.rules(session, merchant_id=merchant_id)]


def show_rule(session: Session, *, merchant_id: int, rule_id: int) -> dict[str, Any]:
    """A rule with how often it fired."""
    r = _own_rule(session, merchant_id, rule_id)
    fs = repos.firings(session, r.id)
    count = Counter(FiringStatus(f.status) for f in fs)
    return {**rule_out(r), "fired": sum(count[st] for st in GRANTED),
            "skipped": count[FiringStatus.SKIPPED], "failed": count[FiringStatus.FAILED],
            "revoked": count[FiringStatus.REVOKED], "kept": count[FiringStatus.KEPT],
            "kept_coupons": [f.coupon_id for f in fs
                             if f.status == FiringStatus.KEPT and f.coupon_id is not None]}


def disable_rule(session: Session, *, merchant_id: int, rule_id: int) -> dict[str, Any]:
    """Disable a rule: it never fires again (what it fired stays granted)."""
    r = _own_rule(session, merchant_id, rule_id)
    if not r.active:
        raise LedgerConflictError(f"rule {rule_id} is already disabled",
                                  code="offers-rule-disabled")
    r.active = False
    session.flush()
    return rule_out(r)


# ---------------------------------------------------------------------- firing


@dataclass(frozen=True)
class Cause:
    """Why a rule fires (``key`` is unique per rule) and who gets a coupon; a purchase names
    its order (0x-hex ref), the points it issued and its spend, if the request gave one."""

    key: str
    members: tuple[str, ...]
    order_ref: str | None = None
    points: int | None = None
    spend: int | None = None


def fire(alliance: Alliance, session: Session, rule: OfferRule,
         causes: Sequence[Cause]) -> int:
    """Fire ``rule`` for every cause it has not fired for yet: record each firing and queue
    one grant (the coupons service's grant, through the outbox) of the rule's campaign to
    their members, in the caller's transaction. Give how many firings were new."""
    fired = repos.fired_causes(session, rule.id, [c.key for c in causes])
    new: list[OfferFiring] = []
    for c in causes:
        if c.key in fired:
            continue
        fired.add(c.key)
        row = repos.insert_firing(session, rule_id=rule.id, cause=c.key,
                                  members=list(c.members), order_ref=c.order_ref,
                                  order_points=c.points, order_spend=c.spend)
        if row is not None:
            new.append(row)
    new = _tier_gate(alliance, session, rule, new)
    for i in range(0, len(new), limits.MAX_BATCH_ITEMS):
        chunk = new[i:i + limits.MAX_BATCH_ITEMS]
        members = [m for f in chunk for m in f.members]
        try:
            with session.begin_nested():
                view = coupons.request_grant(alliance, session, merchant_id=rule.merchant_id,
                                             campaign_id=rule.campaign_id, members=members)
        except GRANT_REFUSALS as exc:
            reason = str(exc.code)[:64]
            log.info("offer rule %s skipped %d firing(s): %s", rule.id, len(chunk), reason)
            for f in chunk:
                f.status = FiringStatus.SKIPPED.value
                f.reason = reason
            continue
        offset = 0
        for f in chunk:
            # grantBatch mints in list order: this firing's coupon is firstId + offset.
            f.operation_id, f.grant_index = view.id, offset
            offset += len(f.members)
    session.flush()
    return len(new)


def _tier_gate(alliance: Alliance, session: Session, rule: OfferRule,
               firings: list[OfferFiring]) -> list[OfferFiring]:
    """The firings whose members all meet the tier lock of the rule's campaign (if it has
    one), as a grant by hand must; the others are ``skipped`` with ``tier-too-low`` and grant
    nothing (a referral firing grants its two members together or not at all)."""
    if not firings or memberships.tier_lock_of(session, rule.campaign_id) is None:
        return firings
    kept: list[OfferFiring] = []
    for f in firings:
        try:
            memberships.check_tier_gate(alliance, session, campaign_id=rule.campaign_id,
                                        members=list(f.members))
        except LedgerConflictError as exc:
            log.info("offer rule %s skipped firing %s: %s", rule.id, f.cause, exc.message)
            f.status = FiringStatus.SKIPPED.value
            f.reason = str(exc.code)[:64]
            continue
        kept.append(f)
    return kept


def on_points_issued(alliance: Alliance, session: Session, *, merchant_id: int,
                     issues: Sequence[tuple[str, bytes, int]]) -> int:
    """Fire the merchant's purchase and referral rules for confirmed issues, each
    ``(member, order_ref, points)``; give the firings made."""
    rules = repos.rules(session, merchant_id=merchant_id, active=True)
    if not rules:
        return 0
    made = 0
    # What each order was worth, if its issue request said (off chain, keyed by the order).
    orders = [(member, "0x" + ref.hex(), amount) for member, ref, amount in issues]
    spends = {key: points.order_spend(session, merchant_id=merchant_id, order_ref_hex=key)
              for _, key, _ in orders} if any(r.min_spend is not None for r in rules) else {}
    for r in rules:
        if r.kind == RuleKind.PURCHASE:
            causes = [Cause(f"order:{key}", (member,), key, amount, spends.get(key))
                      for member, key, amount in orders
                      if _meets(r, amount, spends.get(key))]
        elif r.kind == RuleKind.REFERRAL:
            causes = []
            for member, _, _ in issues:
                ref_row = session.get(OfferReferral, (merchant_id, member))
                if ref_row is not None:
                    causes.append(Cause(f"referral:{ref_row.inviter}:{member}",
                                        (ref_row.inviter, member)))
        else:
            continue
        if causes:
            made += fire(alliance, session, r, causes)
    return made


def _meets(rule: OfferRule, points_left: int, spend: int | None) -> bool:
    """Whether an order of ``points_left`` points (and ``spend``, if known) meets a purchase
    rule: a rule in spend compares the spend (an order without one never meets it), whatever
    points a tier multiplier made of it; a rule in points compares the points."""
    if rule.min_spend is not None:
        return spend is not None and spend >= rule.min_spend
    return rule.min_points is not None and points_left >= rule.min_points


def _still_meets(rule: OfferRule, f: OfferFiring) -> bool:
    """Whether what a reversal left of a fired order still meets its rule: the points left,
    and for a rule in spend the spend in proportion to the points left (a refund of half the
    order's points is half its spend)."""
    if f.order_points is None:
        return True  # fired before orders were recorded: nothing to compare
    left = max(f.order_points - f.reversed_points, 0)
    spend = None if f.order_spend is None else f.order_spend * left // max(f.order_points, 1)
    return _meets(rule, left, spend)


@dataclass(frozen=True)
class Reversal:
    """A confirmed ``PointsReversed`` of one of the merchant's orders, and where it was read."""

    order_ref: bytes
    points: int
    tx_hash: str
    log_index: int
    block_number: int


def on_points_reversed(session: Session, *, merchant_id: int,
                       reversals: Sequence[Reversal]) -> int:
    """Confirmed reversals of the merchant's orders: a purchase firing whose order no longer
    meets its rule goes ``revoking`` (:func:`settle_firings` takes its coupon back, or keeps a
    used one); give how many did. A reversal read again (same log) counts once."""
    made = 0
    for r in reversals:
        key = "0x" + r.order_ref.hex()
        if not repos.record_reversal(session, merchant_id=merchant_id, order_ref=key,
                                     points=r.points, tx_hash=r.tx_hash,
                                     log_index=r.log_index, block_number=r.block_number):
            continue
        for f, rule in repos.order_firings(session, merchant_id=merchant_id, order_ref=key):
            f.reversed_points = (f.reversed_points or 0) + r.points
            if f.status == FiringStatus.QUEUED and not _still_meets(rule, f):
                f.status = FiringStatus.REVOKING.value
                made += 1
    session.flush()
    return made


def undo_reversals_after(session: Session, block: int) -> int:
    """A reorg rollback to ``block``: the reversals counted above it are taken back from their
    firings (a re-mined reversal is read, and counted, again). A firing they had sent to
    ``revoking`` whose revoke is not queued yet goes back to ``queued`` if its order meets
    the rule again; a revoke already queued stands (the coupon's own events tell the rest).
    Give how many reversals were undone."""
    undone = repos.take_reversals_after(session, block)
    for r in undone:
        for f, rule in repos.order_firings(session, merchant_id=r.merchant_id,
                                           order_ref=r.order_ref):
            f.reversed_points = max(0, (f.reversed_points or 0) - r.points)
            if f.status == FiringStatus.REVOKING and f.revoke_operation_id is None \
                    and _still_meets(rule, f):
                f.status = FiringStatus.QUEUED.value
    session.flush()
    return len(undone)


def settle_firings(alliance: Alliance, session: Session) -> int:
    """Bring firings up to date with the chain (each indexer round): a grant the chain
    refused makes its firing ``failed`` (final, as ``skipped``); a ``revoking`` firing whose
    coupon is minted and indexed gets its revoke queued, and ends ``revoked``, or ``kept`` if
    the member used the coupon first (reported by :func:`show_rule`). Give the changes."""
    done = 0
    for f, op in repos.queued_whose_grant_failed(session):
        f.status = FiringStatus.FAILED.value
        f.reason = (op.error_code or "grant-failed")[:64]
        log.info("offer rule %s: grant %s failed on chain (%s): final", f.rule_id, op.id,
                 f.reason)
        done += 1
    for f, rule in repos.revoking(session):
        done += _take_back(alliance, session, f, rule)
    session.flush()
    return done


def _take_back(alliance: Alliance, session: Session, f: OfferFiring, rule: OfferRule) -> int:
    if f.revoke_operation_id is not None:
        op = repos.operation(session, f.revoke_operation_id)
        if op is None or op.status not in (OperationStatus.CONFIRMED, OperationStatus.FAILED):
            return 0
        if op.status is OperationStatus.CONFIRMED:
            f.status = FiringStatus.REVOKED.value
        else:
            _keep(f, "coupon-already-used" if op.error_code == "CouponAlreadyUsed"
                  else op.error_code or "revoke-failed")
        return 1
    grant = repos.operation(session, f.operation_id)
    if grant is None or grant.status is not OperationStatus.CONFIRMED or grant.tx_hash is None:
        return 0  # not minted yet (a failed grant is settled above)
    if f.coupon_id is None:
        minted = coupon_repos.granted_in_tx(session, tx_hash=grant.tx_hash,
                                            campaign_id=rule.campaign_id)
        if f.grant_index is None or len(minted) <= f.grant_index:
            return 0  # the coupons read model has not indexed the grant yet
        f.coupon_id = str(minted[f.grant_index])
    try:
        with session.begin_nested():
            view = coupons.request_revoke(alliance, session, merchant_id=rule.merchant_id,
                                          coupon_id=f.coupon_id)
    except LedgerNotFoundError:
        f.status = FiringStatus.REVOKED.value  # burned already
        f.reason = "coupon-gone"
        return 1
    except GRANT_REFUSALS as exc:
        _keep(f, str(exc.code))
        return 1
    f.revoke_operation_id = view.id
    return 1


def _keep(f: OfferFiring, reason: str) -> None:
    f.status = FiringStatus.KEPT.value
    f.reason = reason[:64]
    log.warning("offer rule %s: the order behind coupon %s was reversed, but the coupon "
                "stays (%s)", f.rule_id, f.coupon_id, f.reason)


# ---------------------------------------------------------------------- birthdays


def _member(alliance: Alliance, session: Session, member: str | None,
            member_id: str | None) -> str:
    (account,) = points.resolve_members(alliance, session, [(member, member_id)])
    return account


def set_birth_month(alliance: Alliance, session: Session, *, merchant_id: int,
                    member: str | None = None, member_id: str | None = None,
                    month: int) -> str:
    """Record a member's birth month for the merchant, encrypted (never on chain, never in a
    log); give the member's account."""
    require_merchant(session, merchant_id)
    m = limits.bounded_int(month, "month", low=1, high=12)
    account = _member(alliance, session, member, member_id)
    token = alliance.master_key.encrypt(bytes([m]))
    row = session.get(OfferBirthMonth, (merchant_id, account))
    if row is None:
        session.add(OfferBirthMonth(merchant_id=merchant_id, member=account, month_enc=token))
    else:
        row.month_enc = token
        row.updated_at = datetime.now(UTC)
    session.flush()
    return account


def chain_time(alliance: Alliance) -> int:
    return int(alliance.gateway.block("latest")["timestamp"])


def run_birthday_offers(alliance: Alliance, *, now: int | None = None) -> int:
    """Fire every active birthday rule for the members whose birth month (as the rule's
    merchant recorded it) is the month of ``now`` (default: the chain's clock, UTC): once per
    member per rule per year, however often it runs. Give the firings made."""
    at = datetime.fromtimestamp(chain_time(alliance) if now is None else now, UTC)
    made = 0
    with alliance.store.session() as s:
        for r in repos.rules(s, kind=RuleKind.BIRTHDAY, active=True):
            members = [row.member for row in s.scalars(select(OfferBirthMonth).where(
                OfferBirthMonth.merchant_id == r.merchant_id)).all()
                if alliance.master_key.decrypt(row.month_enc)[0] == at.month]
            made += fire(alliance, s, r, [Cause(f"birthday:{m}:{at.year}", (m,))
                                          for m in members])
    return made


# ---------------------------------------------------------------------- referrals


def invite_code(alliance: Alliance, session: Session, *, merchant_id: int,
                member: str | None = None, member_id: str | None = None) -> dict[str, Any]:
    """The member's invite code at the merchant (the same code every time)."""
    require_merchant(session, merchant_id)
    account = _member(alliance, session, member, member_id)
    row = session.scalar(select(OfferInvite).where(OfferInvite.merchant_id == merchant_id,
                                                   OfferInvite.inviter == account))
    if row is None:
        try:
            with session.begin_nested():
                row = OfferInvite(code=secrets.token_urlsafe(12), merchant_id=merchant_id,
                                  inviter=account)
                session.add(row)
        except IntegrityError:
            row = session.scalar(select(OfferInvite).where(
                OfferInvite.merchant_id == merchant_id, OfferInvite.inviter == account))
            assert row is not None
    return {"code": row.code, "inviter": account}


def refer(alliance: Alliance, session: Session, *, merchant_id: int, code: str,
          member: str | None = None, member_id: str | None = None) -> dict[str, Any]:
    """Record that a member joined by an invite code of the merchant: on the member's first
    purchase there, the merchant's referral rules grant both."""
    require_merchant(session, merchant_id)
    invite = session.get(OfferInvite, code) if isinstance(code, str) and len(code) <= 32 \
        else None
    if invite is None or invite.merchant_id != merchant_id:
        raise LedgerNotFoundError("no such invite code of yours", field="code")
    account = _member(alliance, session, member, member_id)
    if account == invite.inviter:
        raise LedgerConflictError("a member cannot invite themself",
                                  code="offers-referral-self")
    if session.get(OfferReferral, (merchant_id, account)) is not None:
        raise LedgerConflictError(f"member {account} was referred already",
                                  code="offers-referral-exists")
    bought = session.scalar(select(PointEvent.id).where(
        PointEvent.member == account, PointEvent.kind == "issued",
        PointEvent.merchant_id == merchant_id).limit(1))
    if bought is not None:
        raise LedgerConflictError(f"member {account} has bought here before: a referral is "
                                  "for a new member", code="offers-referral-not-new")
    session.add(OfferReferral(merchant_id=merchant_id, invitee=account,
                              inviter=invite.inviter))
    session.flush()
    return {"inviter": invite.inviter, "invitee": account}


# ---------------------------------------------------------------------- gifts


def gift_out(g: Gift) -> dict[str, Any]:
    return {"gift_id": g.id, "merchant_id": g.merchant_id, "name": g.name, "points": g.points,
            "campaign_id": g.campaign_id, "stock": g.stock, "left": g.stock - g.reserved,
            "per_member_limit": g.per_member_limit, "active": g.active}


def create_gift(alliance: Alliance, session: Session, *, merchant_id: int, name: str,
                points: int, campaign_id: int, stock: int,
                per_member_limit: int = 0) -> dict[str, Any]:
    """List a gift for ``points`` of the merchant's program; its coupon is of one of the
    merchant's campaigns of kind gift."""
    require_merchant(session, merchant_id, program=True)
    if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_NAME:
        raise LedgerValidationError(f"name must be 1-{MAX_NAME} characters", field="name")
    pts = limits.points(points)
    st = limits.bounded_int(stock, "stock", low=0, high=MAX_GIFT_STOCK)
    lim = limits.bounded_int(per_member_limit, "per_member_limit", low=0, high=MAX_GIFT_STOCK)
    c = _campaign(alliance, merchant_id, campaign_id)
    if c.kind is not CouponKind.GIFT:
        raise LedgerConflictError(f"campaign {campaign_id} is not of kind gift",
                                  code="offers-campaign-not-gift")
    g = Gift(merchant_id=merchant_id, name=name.strip(), points=pts,
             campaign_id=int(campaign_id), stock=st, reserved=0, per_member_limit=lim,
             active=True)
    session.add(g)
    session.flush()
    return gift_out(g)


def _own_gift(session: Session, merchant_id: int, gift_id: int) -> Gift:
    g = repos.gift(session, gift_id)
    if g is None or g.merchant_id != merchant_id:
        raise LedgerNotFoundError(f"no gift {gift_id} of yours", gift_id=gift_id)
    return g


def list_gifts(session: Session, *, merchant_id: int) -> list[dict[str, Any]]:
    return [gift_out(g) for g in repos.gifts(session, merchant_id=merchant_id)]


def show_gift(session: Session, *, merchant_id: int, gift_id: int) -> dict[str, Any]:
    return gift_out(_own_gift(session, merchant_id, gift_id))


def update_gift(session: Session, *, merchant_id: int, gift_id: int,
                stock: int | None = None, points: int | None = None,
                active: bool | None = None) -> dict[str, Any]:
    """Restock, reprice, withdraw or relist a gift (stock never below what is taken)."""
    g = _own_gift(session, merchant_id, gift_id)
    if stock is not None:
        g.stock = limits.bounded_int(stock, "stock", low=g.reserved, high=MAX_GIFT_STOCK,
                                     message=f"stock must be {g.reserved} (taken) to "
                                             f"{MAX_GIFT_STOCK}")
    if points is not None:
        g.points = limits.points(points)
    if active is not None:
        g.active = bool(active)
    session.flush()
    return gift_out(g)


def gift_order_id(gift_id: int, request_id: str) -> str:
    """The order id a member signs a gift's points redemption for."""
    return f"gift-{gift_id}-{request_id}"


def request_gift_redemption(alliance: Alliance, session: Session, *, merchant_id: int,
                            gift_id: int, member: str, request_id: str, nonce: int,
                            deadline: int, signature: str) -> OperationView:
    """Queue a member's signed redemption of the gift's points (for the order id
    :func:`gift_order_id`) and reserve one unit of stock; the gift coupon is granted once the
    redemption is confirmed. Nothing is written if anything is refused."""
    merchant = require_merchant(session, merchant_id, program=True)
    g = _own_gift(session, merchant_id, gift_id)
    rid = _request_id(request_id)
    account = limits.address(member, "member")
    if not g.active:
        raise LedgerConflictError(f"gift {gift_id} is withdrawn", code="offers-gift-disabled")
    if repos.gift_redemption_by_request(session, gift_id=g.id, request_id=rid) is not None:
        raise LedgerConflictError(f"request {rid} for gift {gift_id} was made already",
                                  code="offers-gift-request-replayed")
    if g.per_member_limit and repos.member_gift_count(
            session, gift_id=g.id, member=account) >= g.per_member_limit:
        raise LedgerConflictError(f"member {account} has had gift {gift_id} "
                                  f"{g.per_member_limit} time(s)",
                                  code="offers-gift-member-limit")
    if g.reserved >= g.stock:
        raise LedgerConflictError(f"gift {gift_id} is out of stock",
                                  code="offers-gift-out-of-stock")
    c = _campaign(alliance, merchant_id, g.campaign_id)
    if c.paused:
        raise LedgerConflictError(f"the gift's campaign {g.campaign_id} is paused",
                                  code="coupon-campaign-paused")
    spendable = alliance.contracts.program(program_of(merchant)).spendable_of(account)
    if spendable < g.points:
        raise LedgerConflictError(f"member {account} holds {spendable} spendable points; the "
                                  f"gift takes {g.points}", code="offers-insufficient-points")
    if not repos.reserve_stock(session, g.id):  # taken by a concurrent request meanwhile
        raise LedgerConflictError(f"gift {gift_id} is out of stock",
                                  code="offers-gift-out-of-stock")
    oid = gift_order_id(g.id, rid)
    view = points.request_redeem(alliance, session, merchant_id=MerchantId(merchant_id),
                                 member=account, points=g.points, order_id=oid, nonce=nonce,
                                 deadline=deadline, signature=signature)
    try:
        with session.begin_nested():
            session.add(GiftRedemption(
                gift_id=g.id, request_id=rid, member=account, order_id=oid,
                order_ref="0x" + points.order_ref(oid).hex(),
                status=GiftRedemptionStatus.PAYING.value, redeem_operation_id=view.id))
    except IntegrityError as exc:
        raise LedgerConflictError(f"request {rid} for gift {gift_id} was made already",
                                  code="offers-gift-request-replayed") from exc
    return view


def _request_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 40 or not all(
            ch.isascii() and (ch.isalnum() or ch in "_-") for ch in value):
        raise LedgerValidationError("request_id must be 1-40 characters of letters, digits, "
                                    "_ and -", field="request_id")
    return value


def on_points_redeemed(session: Session, refs: Sequence[str]) -> int:
    """Queue the gift coupon of every paying gift redemption among confirmed redemptions
    (order refs as 0x-hex), in the indexer's store transaction: a confirmed redemption and
    its grant are recorded together or not at all. Give how many were granted."""
    done = 0
    for gr in repos.paying_by_refs(session, refs):
        g = repos.gift(session, gr.gift_id)
        assert g is not None
        merchant = require_merchant(session, g.merchant_id)
        op = outbox.enqueue(session, kind=coupon_kinds.GRANT,
                            payload=coupon_kinds.GrantPayload(g.campaign_id, (gr.member,)),
                            merchant_id=merchant.id, signer=merchant.account_address)
        gr.grant_operation_id = op.id
        gr.status = GiftRedemptionStatus.PAID.value
        done += 1
    return done


def release_failed_gift_redemptions(session: Session) -> int:
    """Mark gift redemptions whose points redemption failed on chain as failed, and give
    their stock back (no points were taken, no coupon is granted)."""
    rows = repos.paying_whose_redemption_failed(session)
    for gr in rows:
        gr.status = GiftRedemptionStatus.FAILED.value
        repos.release_stock(session, gr.gift_id)
    return len(rows)


def gift_redemption_out(gr: GiftRedemption) -> dict[str, Any]:
    return {"gift_id": gr.gift_id, "request_id": gr.request_id, "member": gr.member,
            "order_id": gr.order_id, "status": gr.status,
            "redeem_operation_id": gr.redeem_operation_id,
            "grant_operation_id": gr.grant_operation_id}


def show_gift_redemption(session: Session, *, merchant_id: int, gift_id: int,
                         request_id: str) -> dict[str, Any]:
    g = _own_gift(session, merchant_id, gift_id)
    gr = repos.gift_redemption_by_request(session, gift_id=g.id, request_id=request_id)
    if gr is None:
        raise LedgerNotFoundError(f"no request {request_id} for gift {gift_id}")
    return gift_redemption_out(gr)
