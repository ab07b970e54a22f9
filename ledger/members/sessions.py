"""Member app sessions: Sign-In with Ethereum (EIP-4361), verified with the ``siwe`` library.

The service hands out a nonce (single use, :data:`NONCE_TTL` to use it); the member's wallet
signs a SIWE message that names this service's domain, the alliance's chain, that nonce and an
expiry; :func:`sign_in` verifies all of it and opens a session whose token the API puts in an
httpOnly cookie. The store keeps only the token's SHA-256, so a copy of the database opens no
session. Nothing here is personal data beyond the wallet address itself.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from siwe import SiweMessage
from siwe.siwe import (
    DomainMismatch,
    ExpiredMessage,
    InvalidSignature,
    NonceMismatch,
    NotYetValidMessage,
    VerificationError,
    datetime_from_iso8601_string,
)
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..errors import LedgerExpiredError, LedgerSignatureError, LedgerValidationError
from ..store.db import Store
from ..store.models import MemberLoginNonce, MemberSession

# Time to sign in with a nonce once it is handed out.
NONCE_TTL = timedelta(minutes=10)
# A session lasts at most this long, and no longer than the signed message's expiry.
SESSION_TTL = timedelta(hours=12)
# A signed SIWE message must carry an expiry at most this far after it was issued.
MAX_MESSAGE_LIFETIME = timedelta(hours=12)
# The longest SIWE message taken (the standard's fields are short; resources are not used).
MAX_MESSAGE_LENGTH = 2048


@dataclass(frozen=True)
class Challenge:
    """What a wallet needs to build its SIWE message: a fresh nonce, until when it is good."""

    nonce: str
    expires_at: datetime


@dataclass(frozen=True)
class OpenedSession:
    """A session just opened: the token goes to the cookie only (never stored in clear)."""

    token: str
    address: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionView:
    address: str
    expires_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_challenge(session: Session) -> Challenge:
    """A single-use sign-in nonce (17+ alphanumeric characters, as EIP-4361 asks); nonces
    and sessions past their expiry are purged on the way."""
    now = _now()
    session.execute(delete(MemberLoginNonce).where(MemberLoginNonce.expires_at < now))
    session.execute(delete(MemberSession).where(MemberSession.expires_at < now))
    nonce = secrets.token_hex(12)  # 24 hex characters: alphanumeric, 96 bits
    row = MemberLoginNonce(nonce=nonce, expires_at=now + NONCE_TTL)
    session.add(row)
    return Challenge(nonce, row.expires_at)


def _parse(message: str) -> SiweMessage:
    if not isinstance(message, str) or not 0 < len(message) <= MAX_MESSAGE_LENGTH:
        raise LedgerValidationError(f"message must be 1-{MAX_MESSAGE_LENGTH} characters",
                                    field="message")
    try:
        return SiweMessage.from_message(message=message)
    except Exception as exc:  # noqa: BLE001 - the parser raises several kinds
        raise LedgerValidationError("message is not a Sign-In with Ethereum (EIP-4361) "
                                    "message", field="message") from exc


def _expiry(parsed: SiweMessage) -> datetime:
    raw = parsed.expiration_time
    if raw is None:
        raise LedgerValidationError("the sign-in message must carry an Expiration Time",
                                    field="message")
    when: datetime = datetime_from_iso8601_string(str(raw))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def sign_in(store: Store, *, message: str, signature: str, domain: str,
            chain_id: int) -> OpenedSession:
    """Verify a signed SIWE message and open a session for its address.

    The message must name ``domain`` (the host the page was served from) and ``chain_id``,
    carry a nonce this service handed out and nobody used yet, and an expiry in the future
    at most :data:`MAX_MESSAGE_LIFETIME` away; the signature must be the address's.
    The nonce is spent (in its own transaction) before the signature is checked, so a
    message is tried once, whatever the outcome.

    Raises LedgerValidationError (malformed message, expiry too far), LedgerExpiredError
    (``sign-in-expired``: the nonce or the message expired) or LedgerSignatureError
    (``wrong-chain``; ``sign-in-rejected``: wrong domain, unknown or used nonce, not the
    address's signature)."""
    parsed = _parse(message)
    if int(parsed.chain_id) != chain_id:
        raise LedgerSignatureError(f"the message is for chain {parsed.chain_id}, this "
                                   f"alliance runs on chain {chain_id}", code="wrong-chain",
                                   field="message")
    now = _now()
    expires = _expiry(parsed)
    if expires - now > MAX_MESSAGE_LIFETIME:
        raise LedgerValidationError("the sign-in message's expiry is too far ahead",
                                    field="message")
    with store.session() as session:
        nonce_row = session.get(MemberLoginNonce, str(parsed.nonce))
        if nonce_row is not None:
            session.delete(nonce_row)
    if nonce_row is None:
        raise LedgerSignatureError("this sign-in nonce was not handed out here or is used",
                                   code="sign-in-rejected", field="message")
    if nonce_row.expires_at < now:
        raise LedgerExpiredError("the sign-in nonce expired: ask for a new one",
                                 code="sign-in-expired")
    try:
        parsed.verify(signature, domain=domain, nonce=nonce_row.nonce, timestamp=now)
    except (ExpiredMessage, NotYetValidMessage) as exc:
        raise LedgerExpiredError("the sign-in message is not valid now",
                                 code="sign-in-expired") from exc
    except (DomainMismatch, NonceMismatch, InvalidSignature, VerificationError) as exc:
        raise LedgerSignatureError(f"sign-in refused: {type(exc).__name__}",
                                   code="sign-in-rejected", field="signature") from exc
    except Exception as exc:  # noqa: BLE001 - a malformed signature string
        raise LedgerSignatureError("sign-in refused: unreadable signature",
                                   code="sign-in-rejected", field="signature") from exc
    token = secrets.token_urlsafe(32)
    until = min(expires, now + SESSION_TTL)
    address = str(parsed.address)
    with store.session() as session:
        session.add(MemberSession(token_hash=_hash(token), address=address, created_at=now,
                                  expires_at=until))
    return OpenedSession(token, address, until)


def current(session: Session, token: str | None) -> SessionView | None:
    """The live session of a cookie's token (None: no token, unknown, or expired)."""
    if not token or len(token) > 128:
        return None
    row = session.get(MemberSession, _hash(token))
    if row is None or row.expires_at < _now():
        return None
    return SessionView(row.address, row.expires_at)


def sign_out(session: Session, token: str | None) -> None:
    """End the session of a cookie's token (nothing if there is none)."""
    if token:
        session.execute(delete(MemberSession).where(MemberSession.token_hash == _hash(token)))


def sessions_of(session: Session, address: str) -> list[SessionView]:
    rows = session.scalars(select(MemberSession).where(MemberSession.address == address))
    return [SessionView(r.address, r.expires_at) for r in rows]
