"""A member's own data off chain: download it (JSON), or erase it.

What the service keeps about a wallet off chain: its app sessions, the link of an alliance
member id (kept only as a keyed pseudonym) to the wallet, which payment requests it paid, the
profile fields the member chose to keep, and the coupon codes it showed at tills.
Erasure deletes the sessions, unlinks the wallet from the pseudonym, and forgets who paid
each payment request; the chain (balances, history, clearing) is left exactly as it is, and
nothing off chain ties the address to the person any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ..store.models import (
    CouponPresentation,
    Member,
    MemberClaimMove,
    MemberLinkCode,
    MemberProfile,
    MemberSession,
    PaymentRequest,
)


@dataclass(frozen=True)
class Erased:
    """What an erasure removed (counts of records)."""

    sessions: int
    wallet_links: int
    payments_forgotten: int


def export(session: Session, *, address: str) -> dict[str, Any]:
    """Every off-chain record the service keeps about ``address``, as JSON-ready data."""
    sessions = session.scalars(select(MemberSession).where(MemberSession.address == address))
    links = session.scalars(select(Member).where(Member.wallet == address))
    paid = session.scalars(select(PaymentRequest).where(PaymentRequest.payer == address))
    profile = session.get(MemberProfile, address)
    return {
        "address": address,
        "sessions": [{"created_at": s.created_at.isoformat(),
                      "expires_at": s.expires_at.isoformat()} for s in sessions],
        "member_id_links": [{"pseudonym": m.pseudonym, "custodial_account": m.account,
                             "since": m.created_at.isoformat()} for m in links],
        "payments": [{"payment_request": p.id, "merchant_id": p.merchant_id,
                      "order_id": p.order_id, "amount": p.amount,
                      "program_merchant_id": p.program_merchant_id, "points": p.points,
                      "operation_id": p.operation_id} for p in paid],
        "profile": ({"birth_month": profile.birth_month, "phone": profile.phone}
                    if profile is not None else None),
    }


def erase(session: Session, *, address: str) -> Erased:
    """Remove the off-chain personal records of ``address`` (sessions included: the member
    is signed out everywhere). Ledger totals are untouched."""
    links = session.execute(update(Member).where(Member.wallet == address).values(wallet=None))
    paid = session.execute(update(PaymentRequest).where(PaymentRequest.payer == address)
                           .values(payer=None))
    gone = session.execute(delete(MemberSession).where(MemberSession.address == address))
    # The profile goes whole; open coupon codes of the address go (their holder is the
    # address); consents stay on chain as the member's own record (address, merchant, kind,
    # text hash: nothing personal).
    session.execute(delete(MemberProfile).where(MemberProfile.address == address))
    session.execute(delete(CouponPresentation).where(CouponPresentation.holder == address))
    # A claim's records name the wallet next to the member id's pseudonym: the moves go, the
    # used link code forgets the wallet (and any custodial key still kept for it).
    session.execute(delete(MemberClaimMove).where(MemberClaimMove.wallet == address))
    session.execute(update(MemberLinkCode).where(MemberLinkCode.wallet == address)
                    .values(wallet=None, key_enc=None))
    return Erased(sessions=int(gone.rowcount or 0),  # type: ignore[attr-defined]
                  wallet_links=int(links.rowcount or 0),  # type: ignore[attr-defined]
                  payments_forgotten=int(paid.rowcount or 0))  # type: ignore[attr-defined]
