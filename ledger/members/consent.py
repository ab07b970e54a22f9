"""Consent: the member decides which merchant sees what, recorded on chain.

A consent is (member address, merchant id, kind, hash of the consent text). The kinds and
their texts are fixed here (:data:`KINDS`); the text hashed is the canonical English and
Chinese text together, so the member can later show exactly what was agreed. Grants and
revocations are the member's EIP-712 signatures over the ConsentLedger's ``GrantConsent`` /
``RevokeConsent``, queued in the outbox and relayed by the merchant the consent names (the
member pays nothing). Whether a consent is live is read from the chain (``consentOf``), the
source of truth, when a merchant asks for the data: :func:`require_consent`.

Also the member's profile (birth month, phone), kept only if the member enters it, and shown
to a merchant field by field under a live consent of that field's kind.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from sqlalchemy.orm import Session

from .. import limits
from ..alliance import Alliance
from ..errors import (
    ConsentRequiredError,
    LedgerConflictError,
    LedgerSignatureError,
    LedgerValidationError,
)
from ..merchants.repos import MerchantRow, list_merchants
from ..merchants.service import require_merchant
from ..outbox import repos as outbox
from ..points import reads as point_reads
from ..signing import EIP712_DOMAIN_TYPES, MAX_DEADLINE_AHEAD_S, domain_salt
from ..store.models import ConsentReward, MemberProfile
from .clients import DOMAIN_NAME, DOMAIN_VERSION, GRANT_TYPES, REVOKE_TYPES
from .kinds import GRANT, REVOKE, GrantConsentPayload, RevokeConsentPayload, ledger_of
from .payments import SIGNATURE_TTL_S, SignRequest


@dataclass(frozen=True)
class ConsentKind:
    name: str
    en: str
    zh: str

    @property
    def text(self) -> str:
        """The canonical consent text (both languages), whose keccak256 goes on chain."""
        return f"{self.en}\n{self.zh}"

    @property
    def text_hash(self) -> bytes:
        return keccak(text=self.text)

    @property
    def kind(self) -> bytes:
        """The kind as it goes on chain: its ASCII name, zero-padded to 32 bytes."""
        return self.name.encode().ljust(32, b"\0")


KINDS: dict[str, ConsentKind] = {k.name: k for k in (
    ConsentKind("birth_month", "I let this merchant see my birth month, for birthday offers.",
                "我同意该商户查看我的出生月份，用于生日优惠。"),
    ConsentKind("phone", "I let this merchant see my phone number, to reach me at the counter.",
                "我同意该商户查看我的手机号码，用于到店联系。"),
    ConsentKind("history", "I let this merchant see my points history at other merchants of "
                "the alliance.", "我同意该商户查看我在联盟其他商户的积分记录。"),
)}
PROFILE_FIELDS = ("birth_month", "phone")


def consent_kind(name: object) -> ConsentKind:
    if not isinstance(name, str) or name not in KINDS:
        raise LedgerValidationError(f"kind must be one of {', '.join(KINDS)}", field="kind")
    return KINDS[name]


def typed_data(*, chain_id: int, ledger: str, registry: str, grant: bool, member: str,
               merchant_id: int, kind: ConsentKind, nonce: int, deadline: int
               ) -> dict[str, Any]:
    """The full typed data (eth_signTypedData_v4 shape) of a grant or revocation on the
    consent ledger ``ledger`` of the alliance of ``registry``."""
    message: dict[str, Any] = {"member": member, "merchantId": merchant_id,
                               "kind": "0x" + kind.kind.hex()}
    if grant:
        message["textHash"] = "0x" + kind.text_hash.hex()
    message.update(nonce=nonce, deadline=deadline)
    primary = "GrantConsent" if grant else "RevokeConsent"
    return {"types": {"EIP712Domain": EIP712_DOMAIN_TYPES,
                      primary: GRANT_TYPES if grant else REVOKE_TYPES},
            "primaryType": primary,
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                       "verifyingContract": ledger, "salt": domain_salt(registry)},
            "message": message}


def _typed(alliance: Alliance, **kw: Any) -> dict[str, Any]:
    return typed_data(chain_id=alliance.gateway.chain_id,
                      ledger=ledger_of(alliance.contracts).address,
                      registry=alliance.contracts.deployment.registry, **kw)


def is_live(alliance: Alliance, *, member: str, merchant_id: int, kind: ConsentKind) -> bool:
    """Whether ``member``'s consent of ``kind`` to ``merchant_id`` is live on chain now."""
    return ledger_of(alliance.contracts).consent_of(member, merchant_id, kind.kind) != bytes(32)


def require_consent(alliance: Alliance, *, member: str, merchant_id: int, kind: str) -> None:
    """Raises ConsentRequiredError unless the member's consent of ``kind`` to the merchant is
    live on chain."""
    k = consent_kind(kind)
    if not is_live(alliance, member=limits.address(member), merchant_id=merchant_id, kind=k):
        raise ConsentRequiredError(f"the member has not granted you '{k.name}' "
                                   "(or has revoked it)")


def quote(alliance: Alliance, session: Session, *, grant: bool, member: str,
          merchant_id: int, kind: str) -> SignRequest:
    """What the member signs to grant (or revoke) ``kind`` to a merchant."""
    k = consent_kind(kind)
    merchant = require_merchant(session, limits.merchant_id(merchant_id))
    address = limits.address(member)
    live = is_live(alliance, member=address, merchant_id=merchant.id, kind=k)
    if grant and live:
        raise LedgerConflictError("this consent is live already", code="ConsentAlreadyGranted")
    if not grant and not live:
        raise LedgerConflictError("there is no live consent to revoke",
                                  code="ConsentNotGranted")
    nonce = secrets.randbits(52)  # unordered nonces; 52 bits: exact as a JavaScript number
    deadline = point_reads.chain_now(alliance) + SIGNATURE_TTL_S
    typed = _typed(alliance, grant=grant, member=address, merchant_id=merchant.id, kind=k,
                       nonce=nonce, deadline=deadline)
    return SignRequest(typed, 0, 0, nonce, deadline, f"consent:{merchant.id}:{k.name}")


def submit(alliance: Alliance, session: Session, *, grant: bool, member: str,
           merchant_id: int, kind: str, nonce: int, deadline: int, signature: str) -> str:
    """Check the member's signed grant (or revocation) and queue it, relayed by the merchant
    it names; the operation's id. A signature of another signer, a spent nonce or a deadline
    out of range is refused here, before anything is queued."""
    k = consent_kind(kind)
    merchant = require_merchant(session, limits.merchant_id(merchant_id))
    address = limits.address(member)
    limits.nonce(nonce)
    sig_hex = limits.signature(signature)
    now = point_reads.chain_now(alliance)
    dl = limits.unix_time(deadline, "deadline", low=1)
    if not now <= dl <= now + MAX_DEADLINE_AHEAD_S:
        raise LedgerSignatureError("the signature's deadline is out of range",
                                   code="deadline-passed" if dl < now else "deadline-too-far",
                                   field="deadline")
    typed = _typed(alliance, grant=grant, member=address, merchant_id=merchant.id, kind=k,
                       nonce=nonce, deadline=dl)
    sig = bytes.fromhex(sig_hex[2:])
    try:
        signer = Account.recover_message(encode_typed_data(full_message=typed), signature=sig)
    except Exception:  # noqa: BLE001 - any unrecoverable signature is a mismatch
        signer = None
    if signer != address:
        raise LedgerSignatureError("the signature is not the member's over this consent",
                                   code="signature-mismatch", field="signature")
    if ledger_of(alliance.contracts).nonce_used(address, nonce):
        raise LedgerSignatureError(f"nonce {nonce} is already used", code="nonce-used",
                                   field="nonce")
    live = is_live(alliance, member=address, merchant_id=merchant.id, kind=k)
    if grant and live:
        raise LedgerConflictError("this consent is live already", code="ConsentAlreadyGranted")
    if not grant and not live:
        raise LedgerConflictError("there is no live consent to revoke",
                                  code="ConsentNotGranted")
    op = (outbox.enqueue(session, kind=GRANT, payload=GrantConsentPayload(
        address, merchant.id, k.kind, k.text_hash, nonce, dl, sig), merchant_id=merchant.id,
        signer=merchant.account_address) if grant else outbox.enqueue(
        session, kind=REVOKE, payload=RevokeConsentPayload(address, merchant.id, k.kind, nonce,
                                                           dl, sig),
        merchant_id=merchant.id, signer=merchant.account_address))
    return op.id


def consents_of(alliance: Alliance, session: Session, *, member: str) -> list[dict[str, Any]]:
    """Every active merchant and consent kind, each live or not (read from the chain), with
    the consent texts the member would agree to."""
    address = limits.address(member)
    out: list[dict[str, Any]] = []
    merchants: list[MerchantRow] = [m for m in list_merchants(session) if m.status == "active"]
    for m in merchants:
        for k in KINDS.values():
            out.append({"merchant_id": m.id, "merchant_name": m.name, "kind": k.name,
                        "live": is_live(alliance, member=address, merchant_id=m.id, kind=k),
                        "reward_points": reward_of(session, merchant_id=m.id, kind=k.name),
                        "text": {"en": k.en, "zh-CN": k.zh},
                        "text_hash": "0x" + k.text_hash.hex()})
    return out


# ---------------------------------------------------------------------- the member's profile


def profile(session: Session, *, member: str) -> dict[str, Any]:
    row = session.get(MemberProfile, limits.address(member))
    return {"birth_month": row.birth_month if row else None, "phone": row.phone if row else None}


def set_profile(session: Session, *, member: str, birth_month: int | None,
                phone: str | None) -> dict[str, Any]:
    """Keep (or clear, with None) the member's profile fields."""
    address = limits.address(member)
    if birth_month is not None:
        birth_month = limits.bounded_int(birth_month, "birth_month", low=1, high=12)
    row = session.get(MemberProfile, address)
    if row is None:
        row = MemberProfile(address=address)
        session.add(row)
    row.birth_month = birth_month
    row.phone = phone
    row.updated_at = datetime.now(UTC)
    session.flush()
    return profile(session, member=address)


def merchant_profile(alliance: Alliance, session: Session, *, merchant_id: int,
                     member: str) -> dict[str, Any]:
    """The profile fields of ``member`` that the member granted ``merchant_id`` (each field
    needs a live consent of its kind). None granted: ConsentRequiredError."""
    address = limits.address(member)
    granted = [f for f in PROFILE_FIELDS
               if is_live(alliance, member=address, merchant_id=merchant_id, kind=KINDS[f])]
    if not granted:
        raise ConsentRequiredError("the member has granted you none of its profile fields")
    mine = profile(session, member=address)
    return {"member": address, **{f: mine[f] for f in granted}}


# ---------------------------------------------------------------------- points for a consent

MAX_REWARD = 1_000_000


def reward_order_id(kind: ConsentKind, member: str) -> str:
    """The order id a consent's points are issued under: one per member, merchant (its own
    program) and kind, so revoking and granting again never pays twice."""
    return f"consent:{kind.name}:{member}"


def set_reward(session: Session, *, merchant_id: int, kind: str, points: int) -> dict[str, Any]:
    """Offer ``points`` of the merchant's program for a member's grant of ``kind`` (0: none)."""
    k = consent_kind(kind)
    pts = limits.bounded_int(points, "points", low=0, high=MAX_REWARD)
    row = session.get(ConsentReward, (merchant_id, k.name))
    if row is None:
        row = ConsentReward(merchant_id=merchant_id, kind=k.name, points=pts)
        session.add(row)
    row.points = pts
    session.flush()
    return {"kind": k.name, "points": pts}


def reward_of(session: Session, *, merchant_id: int, kind: str) -> int:
    row = session.get(ConsentReward, (merchant_id, kind))
    return row.points if row is not None else 0
