"""Coupons: campaign, grant, voucher, redemption and rollback requests; validation; reads.

Mutations are *requests*, as the points': each checks what the chain would refuse (so a
request that cannot land is refused at once with a clear error, not failed later), then
queues one outbox operation in the caller's transaction. A redemption also takes the
coupon's redemption lock in that transaction, so of many concurrent requests for one coupon
exactly one is queued and the others get a conflict. Reads come from the chain (validate,
coupon terms) or the coupons read model (campaign lists, stats, a member's coupons).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from sqlalchemy.orm import Session

from .. import limits
from ..alliance import Alliance
from ..errors import (
    ContractRevertError,
    LedgerConflictError,
    LedgerNotFoundError,
    LedgerPermissionError,
    LedgerSignatureError,
    LedgerValidationError,
)
from ..merchants.repos import MerchantRow
from ..merchants.service import merchant_signing_key, require_merchant
from ..outbox import repos as outbox
from ..outbox.views import OperationView, operation_view
from ..points.service import order_ref
from ..signing import MAX_DEADLINE_AHEAD_S
from ..types import MerchantId
from . import kinds, repos
from .clients import (
    CampaignState,
    CampaignTerms,
    CouponBookClient,
    CouponKind,
    Refusal,
    campaign_of,
    granted_at_of,
)
from .kinds import (
    CancelVoucherPayload,
    ClaimVoucherPayload,
    CreateCampaignPayload,
    GrantPayload,
    PausePayload,
    RedeemPayload,
    RevokePayload,
    RollbackPayload,
)
from .signing import redeem_coupon_typed_data, voucher_typed_data

DAY = 86_400
BPS = 10_000
MAX_ACCEPTORS = 64
MAX_VOUCHER_DAYS = 366
# Stored widths of the campaign's fields on chain (ICouponBook.Campaign).
MAX_U32 = 2**32 - 1
MAX_U64 = 2**64 - 1
MAX_U80 = 2**80 - 1

# Problem codes of a refusal (409), one per reason the coupon book gives.
REFUSAL_CODES = {
    Refusal.USED: "coupon-used",
    Refusal.PAUSED: "coupon-campaign-paused",
    Refusal.NOT_YET_VALID: "coupon-not-yet-valid",
    Refusal.EXPIRED: "coupon-expired",
    Refusal.NOT_ACCEPTED: "coupon-not-accepted",
    Refusal.UNDER_MINIMUM_SPEND: "coupon-under-minimum-spend",
    Refusal.BUDGET_EXHAUSTED: "coupon-budget-exhausted",
    Refusal.ISSUER_SUSPENDED: "coupon-issuer-suspended",
    Refusal.ACCEPTOR_SUSPENDED: "coupon-acceptor-suspended",
    Refusal.ORDER_HAS_COUPON: "coupon-order-has-coupon",
}


class CouponStatus(StrEnum):
    """A held coupon as a member sees it."""

    VALID = "valid"
    USED = "used"
    EXPIRED = "expired"


def _book(alliance: Alliance) -> CouponBookClient:
    return kinds.book(alliance.contracts)


def _enqueue(session: Session, merchant: MerchantRow, kind: Any, payload: Any) -> OperationView:
    op = outbox.enqueue(session, kind=kind, payload=payload, merchant_id=merchant.id,
                        signer=merchant.account_address)
    return operation_view(op)


def _now(alliance: Alliance) -> int:
    return int(alliance.gateway.block("latest")["timestamp"])


def _campaign_on_chain(alliance: Alliance, campaign_id: int) -> CampaignState:
    try:
        return _book(alliance).campaign(campaign_id)
    except ContractRevertError as exc:
        if exc.name == "CouponUnknownCampaign":
            raise LedgerNotFoundError(f"no campaign {campaign_id}",
                                      campaign_id=campaign_id) from exc
        raise


def _own_campaign(alliance: Alliance, merchant: MerchantRow, campaign_id: Any) -> CampaignState:
    cid = limits.bounded_int(campaign_id, "campaign_id", low=1, high=MAX_U64)
    c = _campaign_on_chain(alliance, cid)
    if c.issuer != merchant.id:
        raise LedgerPermissionError(f"campaign {cid} is merchant {c.issuer}'s",
                                    campaign_id=cid)
    return c


def _holder(alliance: Alliance, coupon_id: int) -> str:
    try:
        return _book(alliance).owner_of(coupon_id)
    except ContractRevertError as exc:
        raise LedgerNotFoundError(f"no coupon {coupon_id}", coupon_id=str(coupon_id)) from exc


def coupon_id_of(value: Any) -> int:
    """A coupon id from its decimal text (ids pass 2^53: JSON carries them as strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        cid = value
    elif isinstance(value, str) and value.isdigit() and len(value) <= 78:
        cid = int(value)
    else:
        raise LedgerValidationError("coupon_id must be a decimal integer", field="coupon_id")
    if not 0 < cid < 2**256 or campaign_of(cid) == 0:
        raise LedgerValidationError("coupon_id is not a coupon id", field="coupon_id")
    return cid


# ---------------------------------------------------------------------- campaigns


def request_create_campaign(alliance: Alliance, session: Session, *, merchant_id: int,
                            kind: str, value: int, budget: int, max_discount: int = 0,
                            min_spend: int = 0, starts_at: int = 0, ends_at: int = 0,
                            valid_days: int = 0, supply_cap: int = 0, per_member_cap: int = 0,
                            transferable: bool = True, stackable: bool = False,
                            all_merchants: bool = False,
                            acceptors: list[int] | None = None) -> OperationView:
    """Queue a campaign of the calling merchant (its id comes with the mined event)."""
    merchant = require_merchant(session, merchant_id)
    try:
        ck = CouponKind[kind.upper()]
    except KeyError as exc:
        raise LedgerValidationError("kind is fixed_off, percent_off or gift",
                                    field="kind") from exc
    b = limits.bounded_int
    high_value = BPS if ck is CouponKind.PERCENT_OFF else MAX_U80
    accs = list(acceptors or [])
    if len(accs) > MAX_ACCEPTORS:
        raise LedgerValidationError(f"at most {MAX_ACCEPTORS} acceptors", field="acceptors")
    for a in accs:
        require_merchant(session, limits.merchant_id(a, "acceptors"))
    now = _now(alliance)
    start = b(starts_at, "starts_at", low=0, high=limits.MAX_UNIX_TIME)
    end = b(ends_at, "ends_at", low=0, high=limits.MAX_UNIX_TIME)
    if end and (end <= start or end <= now):
        raise LedgerValidationError("ends_at must be after starts_at and in the future",
                                    field="ends_at")
    terms = CampaignTerms(
        issuer=merchant.id, kind=ck, value=b(value, "value", low=1, high=high_value),
        budget=b(budget, "budget", low=1, high=2**128 - 1),
        max_discount=b(max_discount, "max_discount", low=0, high=MAX_U80),
        min_spend=b(min_spend, "min_spend", low=0, high=MAX_U64), starts_at=start,
        ends_at=end, valid_days=b(valid_days, "valid_days", low=0, high=3660),
        supply_cap=b(supply_cap, "supply_cap", low=0, high=MAX_U32),
        per_member_cap=b(per_member_cap, "per_member_cap", low=0, high=MAX_U32),
        transferable=bool(transferable), stackable=bool(stackable),
        all_merchants=bool(all_merchants), acceptors=tuple(accs))
    return _enqueue(session, merchant, kinds.CREATE_CAMPAIGN, CreateCampaignPayload(terms))


def request_set_paused(alliance: Alliance, session: Session, *, merchant_id: int,
                       campaign_id: int, paused: bool) -> OperationView:
    """Queue a pause (no grants, claims or redemptions) or a resume of one's campaign."""
    merchant = require_merchant(session, merchant_id)
    c = _own_campaign(alliance, merchant, campaign_id)
    if c.paused == paused:
        raise LedgerConflictError(f"campaign {campaign_id} is already "
                                  f"{'paused' if paused else 'running'}",
                                  code="coupon-campaign-pause-unchanged")
    return _enqueue(session, merchant, kinds.SET_PAUSED, PausePayload(campaign_id, paused))


# ---------------------------------------------------------------------- grants and vouchers


def request_grant(alliance: Alliance, session: Session, *, merchant_id: int, campaign_id: int,
                  members: list[str]) -> OperationView:
    """Queue coupons of one's campaign to ``members`` (one transaction, all or none)."""
    merchant = require_merchant(session, merchant_id)
    if not 1 <= len(members) <= limits.MAX_BATCH_ITEMS:
        raise LedgerValidationError(f"1 to {limits.MAX_BATCH_ITEMS} members", field="members")
    addrs = [limits.address(m, "members") for m in members]
    c = _own_campaign(alliance, merchant, campaign_id)
    if c.paused:
        raise LedgerConflictError(f"campaign {campaign_id} is paused",
                                  code="coupon-campaign-paused")
    if c.supply_cap and c.granted + len(addrs) > c.supply_cap:
        raise LedgerConflictError(
            f"campaign {campaign_id} has {c.supply_cap - c.granted} coupons left to grant",
            code="coupon-supply-cap-exceeded")
    payload = GrantPayload(campaign_id, tuple(addrs), member_capped=c.per_member_cap != 0)
    ceiling = int(alliance.gateway.block("latest")["gasLimit"])
    if payload.gas > ceiling:
        per = kinds.GAS_PER_GRANT_CAPPED if payload.member_capped else kinds.GAS_PER_GRANT
        most = (ceiling - kinds.GAS_GRANT_BASE) // per
        raise LedgerValidationError(
            f"a grant of this campaign fits at most {most} members in one transaction "
            f"(block gas limit {ceiling:,})", field="members")
    return _enqueue(session, merchant, kinds.GRANT, payload)


@dataclass(frozen=True)
class Voucher:
    """A voucher signed by its issuer's account; ``code`` is what a link or QR carries."""

    campaign_id: int
    voucher_id: int
    expires_at: int
    signature: bytes

    @property
    def code(self) -> str:
        raw = json.dumps([self.campaign_id, str(self.voucher_id), self.expires_at,
                          self.signature.hex()], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, code: Any) -> Voucher:
        if not isinstance(code, str) or not 0 < len(code) <= 400:
            raise LedgerValidationError("not a voucher code", field="code")
        try:
            cid, vid, exp, sig = json.loads(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))
            return cls(int(cid), int(vid), int(exp), bytes.fromhex(sig))
        except (ValueError, TypeError) as exc:
            raise LedgerValidationError("not a voucher code", field="code") from exc


def create_voucher(alliance: Alliance, session: Session, *, merchant_id: int,
                   campaign_id: int, expires_at: int) -> Voucher:
    """Sign a voucher of one's campaign with one's account key: nothing goes on chain until
    it is claimed."""
    merchant = require_merchant(session, merchant_id)
    _own_campaign(alliance, merchant, campaign_id)
    now = _now(alliance)
    exp = limits.bounded_int(expires_at, "expires_at", low=now + 1,
                             high=now + MAX_VOUCHER_DAYS * DAY)
    voucher_id = int.from_bytes(os.urandom(8), "big")
    typed = voucher_typed_data(chain_id=alliance.gateway.chain_id, book=_book(alliance).address,
                               registry=alliance.contracts.deployment.registry,
                               campaign_id=campaign_id, voucher_id=voucher_id, expires_at=exp)
    key = merchant_signing_key(alliance, MerchantId(merchant.id))
    sig = bytes(Account.sign_typed_data(key, full_message=typed).signature)
    return Voucher(campaign_id, voucher_id, exp, sig)


def _voucher_state(alliance: Alliance, v: Voucher) -> None:
    state = _book(alliance).voucher_state(v.campaign_id, v.voucher_id)
    if state == 1:
        raise LedgerConflictError("the voucher was claimed already", code="coupon-voucher-used")
    if state == 2:
        raise LedgerConflictError("the issuer cancelled the voucher",
                                  code="coupon-voucher-cancelled")


def request_claim_voucher(alliance: Alliance, session: Session, *, merchant_id: int, code: str,
                          to: str) -> OperationView:
    """Queue the claim of a voucher of one's campaign: its coupon is minted to ``to``."""
    merchant = require_merchant(session, merchant_id)
    v = Voucher.parse(code)
    holder = limits.address(to, "to")
    c = _own_campaign(alliance, merchant, v.campaign_id)
    if c.paused:
        raise LedgerConflictError(f"campaign {v.campaign_id} is paused",
                                  code="coupon-campaign-paused")
    if v.expires_at < _now(alliance):
        raise LedgerConflictError("the voucher has expired", code="coupon-voucher-expired")
    typed = voucher_typed_data(chain_id=alliance.gateway.chain_id, book=_book(alliance).address,
                               registry=alliance.contracts.deployment.registry,
                               campaign_id=v.campaign_id, voucher_id=v.voucher_id,
                               expires_at=v.expires_at)
    if _recover(typed, v.signature) != merchant.account_address:
        raise LedgerSignatureError("the voucher is not signed by its issuer",
                                   code="coupon-voucher-forged", field="code")
    _voucher_state(alliance, v)
    return _enqueue(session, merchant, kinds.CLAIM_VOUCHER, ClaimVoucherPayload(
        v.campaign_id, v.voucher_id, v.expires_at, holder, v.signature))


def request_cancel_voucher(alliance: Alliance, session: Session, *, merchant_id: int,
                           code: str) -> OperationView:
    """Queue the cancellation of one of one's vouchers (it can then never be claimed)."""
    merchant = require_merchant(session, merchant_id)
    v = Voucher.parse(code)
    _own_campaign(alliance, merchant, v.campaign_id)
    _voucher_state(alliance, v)
    return _enqueue(session, merchant, kinds.CANCEL_VOUCHER,
                    CancelVoucherPayload(v.campaign_id, v.voucher_id))


# ---------------------------------------------------------------------- validate, redeem


@dataclass(frozen=True)
class Validation:
    """Whether a coupon would apply to an order now, and with what discount."""

    coupon_id: int
    applies: bool
    reason: str | None
    discount: int


def validate(alliance: Alliance, session: Session, *, merchant_id: int, coupon_id: Any,
             order_id: str, order_amount: int) -> Validation:
    """What using the coupon on this order at the calling merchant would give (nothing
    changes)."""
    require_merchant(session, merchant_id)
    cid = coupon_id_of(coupon_id)
    oid = limits.order_id(order_id)
    amount = limits.bounded_int(order_amount, "order_amount", low=1, high=MAX_U64)
    _holder(alliance, cid)
    refusal, discount = _book(alliance).validate(coupon_id=cid, acceptor=merchant_id,
                                                 order_ref=order_ref(oid), order_amount=amount)
    return Validation(cid, refusal is Refusal.NONE,
                      None if refusal is Refusal.NONE else REFUSAL_CODES[refusal], discount)


def _recover(typed: dict[str, Any], signature: bytes) -> str | None:
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed),
                                           signature=signature))
    except Exception:  # noqa: BLE001 - any unrecoverable signature is a mismatch
        return None


def request_redeem(alliance: Alliance, session: Session, *, merchant_id: int, coupon_id: Any,
                   order_id: str, order_amount: int, nonce: int, deadline: int,
                   signature: str) -> OperationView:
    """Queue a holder's signed redemption of a coupon at the calling merchant.

    Refused at once (409, a ``coupon-…`` code) if the coupon would not apply now, and with
    ``coupon-redemption-in-progress`` if another redemption of it is queued or in flight."""
    merchant = require_merchant(session, merchant_id)
    cid = coupon_id_of(coupon_id)
    oid = limits.order_id(order_id)
    amount = limits.bounded_int(order_amount, "order_amount", low=1, high=MAX_U64)
    limits.nonce(nonce)
    limits.signature(signature)
    dl = limits.unix_time(deadline, "deadline", low=1)
    book = _book(alliance)
    ref = order_ref(oid)
    # One round trip for the chain's time, holder, nonce bit and validate (the holder guessed
    # from the read model, confirmed by ownerOf); read one by one if the batch fails.
    reads = book.redeem_reads(coupon_id=cid, acceptor=merchant.id, order_ref=ref,
                              order_amount=amount, nonce=nonce,
                              holder_guess=repos.holder_of(session, cid))
    now = reads.now if reads else _now(alliance)
    if dl < now:
        raise LedgerSignatureError("the signature's deadline has passed",
                                   code="deadline-passed", field="deadline")
    if dl > now + MAX_DEADLINE_AHEAD_S:
        raise LedgerSignatureError("the signature's deadline is too far ahead",
                                   code="deadline-too-far", field="deadline")
    holder = reads.holder if reads and reads.holder else _holder(alliance, cid)
    typed = redeem_coupon_typed_data(
        chain_id=alliance.gateway.chain_id, book=book.address,
        registry=alliance.contracts.deployment.registry, holder=holder, coupon_id=cid,
        acceptor=merchant.id, order_ref=ref, order_amount=amount, nonce=nonce, deadline=dl)
    sig = bytes.fromhex(signature[2:])
    # The holder's code is read only when the signature is not its key's (an ERC-1271
    # wallet's signature is left to the chain).
    if _recover(typed, sig) != holder and len(alliance.gateway.code(holder)) == 0:
        raise LedgerSignatureError(f"the signature is not the holder {holder}'s over this "
                                   "RedeemCoupon", field="signature")
    if reads and (reads.nonce_of or "").lower() == holder.lower() \
            and reads.nonce_used is not None:
        nonce_used = reads.nonce_used
    else:
        nonce_used = bool(int(book.view1("nonceBitmap", holder, nonce >> 8))
                          >> (nonce & 0xFF) & 1)
    if nonce_used:
        raise LedgerSignatureError(f"nonce {nonce} of {holder} is already used",
                                   code="nonce-used", field="nonce")
    if reads:
        refusal = reads.refusal
    else:
        refusal, _ = book.validate(coupon_id=cid, acceptor=merchant.id, order_ref=ref,
                                   order_amount=amount)
    if refusal is not Refusal.NONE:
        raise LedgerConflictError(f"coupon {cid} does not apply: {REFUSAL_CODES[refusal]}",
                                  code=REFUSAL_CODES[refusal])
    view = _enqueue(session, merchant, kinds.REDEEM, RedeemPayload(
        cid, merchant.id, oid, ref, amount, nonce, dl, sig))
    if not repos.lock_redemption(session, coupon_id=cid, operation_id=view.id,
                                 merchant_id=merchant.id, order_id=oid):
        raise LedgerConflictError(f"coupon {cid} has a redemption in progress",
                                  code="coupon-redemption-in-progress")
    return view


def request_rollback(alliance: Alliance, session: Session, *, merchant_id: int, coupon_id: Any,
                     order_id: str) -> OperationView:
    """Queue the rollback of a redemption made at the calling merchant for ``order_id``."""
    merchant = require_merchant(session, merchant_id)
    cid = coupon_id_of(coupon_id)
    oid = limits.order_id(order_id)
    ref = order_ref(oid)
    book = _book(alliance)
    _, at, _, _ = book.redemption_of(cid, acceptor=merchant.id, order_ref=ref)
    if at == 0:
        # No record at this merchant's order: the chain keeps none per coupon (the record
        # rides in the order's slot), so the coupon's last redemption log names where it
        # was used, if it is used.
        used_at = (book.last_redeemed_at(cid, from_block=alliance.contracts.deployment.block)
                   if book.is_used(cid) else None)
        if used_at is not None and used_at != merchant.id:
            raise LedgerPermissionError(f"coupon {cid} was used at merchant {used_at}")
        raise LedgerNotFoundError(f"coupon {cid} has no redemption for order {oid}",
                                  coupon_id=str(cid))
    closes = at + alliance.contracts.registry.refund_window()
    if _now(alliance) > closes:
        raise LedgerConflictError(f"the refund window closed at {closes}",
                                  code="coupon-refund-window-closed")
    repos.release_redemption(session, cid)
    return _enqueue(session, merchant, kinds.ROLLBACK, RollbackPayload(cid, oid, ref))


def request_revoke(alliance: Alliance, session: Session, *, merchant_id: int,
                   coupon_id: Any) -> OperationView:
    """Queue taking back (burning) an unused coupon of one's campaign, e.g. the coupon an
    order earned once the order is refunded. A used coupon stays (409
    ``coupon-already-used``); another issuer's coupon is not found (404), as an unknown one."""
    merchant = require_merchant(session, merchant_id)
    cid = coupon_id_of(coupon_id)
    _holder(alliance, cid)
    try:
        _own_campaign(alliance, merchant, campaign_of(cid))
    except LedgerPermissionError as exc:
        raise LedgerNotFoundError(f"no coupon {cid} of yours", coupon_id=str(cid)) from exc
    if _book(alliance).is_used(cid):
        raise LedgerConflictError(f"coupon {cid} is used: it stays",
                                  code="coupon-already-used", coupon_id=str(cid))
    return _enqueue(session, merchant, kinds.REVOKE, RevokePayload(cid))


# ---------------------------------------------------------------------- reads


def campaign_out(r: repos.CampaignRecord) -> dict[str, Any]:
    return {"campaign_id": r.campaign_id, "issuer": r.issuer, "paused": r.paused, **r.terms}


def list_campaigns(session: Session, *, merchant_id: int) -> list[dict[str, Any]]:
    """The calling merchant's campaigns (as indexed)."""
    return [campaign_out(r) for r in repos.campaigns(session, issuer=merchant_id)]


def campaign_stats(session: Session, *, merchant_id: int, campaign_id: int) -> dict[str, Any]:
    """Live counts of one of one's campaigns: granted, claimed, redeemed, budget used."""
    # The store keeps campaign ids as signed 64-bit integers; none on chain is larger.
    r = repos.campaign(session, campaign_id) if 1 <= campaign_id < 2**63 else None
    if r is None or r.issuer != merchant_id:
        raise LedgerNotFoundError(f"no campaign {campaign_id} of yours",
                                  campaign_id=campaign_id)
    s = repos.stats(session, campaign_id)
    return {"campaign_id": campaign_id, "granted": s.granted, "claimed": s.claimed,
            "redeemed": s.redeemed, "rolled_back": s.rolled_back, "revoked": s.revoked,
            "budget": int(r.terms["budget"]), "budget_used": s.budget_used,
            "budget_left": int(r.terms["budget"]) - s.budget_used}


def expiry_of(terms: dict[str, Any], granted_at: int) -> int | None:
    """The last second a coupon granted at ``granted_at`` can be used (None: no end)."""
    ends = [int(terms["ends_at"])] if terms.get("ends_at") else []
    if terms.get("valid_days"):
        ends.append(granted_at + int(terms["valid_days"]) * DAY)
    return min(ends) if ends else None


def member_coupons(alliance: Alliance, session: Session, *, holder: str) -> list[dict[str, Any]]:
    """The coupons a wallet holds, each valid, used or expired (as indexed; chain time)."""
    addr = limits.address(holder, "holder")
    now = _now(alliance)
    out = []
    for h in repos.held_by(session, addr):
        r = repos.campaign(session, h.campaign_id)
        terms = r.terms if r else {}
        end = expiry_of(terms, granted_at_of(h.coupon_id)) if terms else None
        status = CouponStatus.USED if h.used else (
            CouponStatus.EXPIRED if end is not None and now > end else CouponStatus.VALID)
        out.append({"coupon_id": str(h.coupon_id), "campaign_id": h.campaign_id,
                    "status": status.value, "granted_at": granted_at_of(h.coupon_id),
                    "expires_at": end, "used_at": h.used_at, "used_at_merchant": h.used_by,
                    "discount": h.discount, "kind": terms.get("kind"),
                    "value": terms.get("value"), "issuer": r.issuer if r else None})
    return out


def coupon_metadata(alliance: Alliance, session: Session, *, coupon_id: Any,
                    base_url: str) -> dict[str, Any]:
    """ERC-721 metadata JSON of a coupon (name, description, image, terms as attributes)."""
    cid = coupon_id_of(coupon_id)
    _holder(alliance, cid)
    c = _campaign_on_chain(alliance, campaign_of(cid))
    issuer = require_merchant(session, c.issuer)
    if c.kind is CouponKind.PERCENT_OFF:
        what = f"{c.value / 100:g}% off" + (f" (up to {c.max_discount})" if c.max_discount else "")
    elif c.kind is CouponKind.FIXED_OFF:
        what = f"{c.value} off"
    else:
        what = f"a gift worth {c.value}"
    unit = alliance.contracts.deployment.settlement_unit
    end = expiry_of({"ends_at": c.ends_at, "valid_days": c.valid_days}, granted_at_of(cid))
    terms = [f"minimum spend {c.min_spend} {unit}" if c.min_spend else "no minimum spend",
             "accepted across the alliance" if c.all_merchants else "accepted at listed merchants",
             "stackable" if c.stackable else "one per order",
             "transferable" if c.transferable else "not transferable"]
    return {
        "name": f"{issuer.name}: {what}",
        "description": f"Alliance coupon of campaign {campaign_of(cid)} by {issuer.name}: "
                       f"{what} ({unit}). " + "; ".join(terms) + ".",
        "external_url": f"{base_url}/v1/public/coupons/{cid}/metadata",
        "attributes": [
            {"trait_type": "issuer", "value": issuer.name},
            {"trait_type": "kind", "value": c.kind.name.lower()},
            {"trait_type": "value", "value": c.value},
            {"trait_type": "minimum spend", "value": c.min_spend},
            {"trait_type": "valid from", "display_type": "date",
             "value": max(c.starts_at, granted_at_of(cid))},
            *([{"trait_type": "valid until", "display_type": "date", "value": end}]
              if end is not None else []),
            {"trait_type": "used", "value": "yes" if _book(alliance).is_used(cid) else "no"},
        ],
    }
