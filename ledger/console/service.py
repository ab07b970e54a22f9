"""The console's own service: sessions for the web console (a merchant's or the operator's API
key exchanged, by one signed request, for a cookie) and today's figures from the read model.

A session token names its key and its expiry and is signed with the key's own secret
(HMAC-SHA256): the store keeps nothing per session, a revoked key ends every session at once
(each request reads the key, as a signed request does), and a token is never valid for
another key. Signing out clears the cookie; the token itself lives until its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import BigInteger, cast, func, select

from ..alliance import Alliance
from ..indexer import repos as cursors
from ..merchants import repos as merchant_repos
from ..points.projection import CURSOR as POINTS_CURSOR
from ..store import repos
from ..store.models import PointEvent
from ..types import MerchantId

# How long a console session lasts (seconds).
SESSION_TTL_S = 8 * 3600
DAY = 86_400
_CONTEXT = b"alliance-console-session\n"


@dataclass(frozen=True)
class ConsoleSession:
    """Who a console cookie signs in: a merchant's key or an operator's (``admin``) key."""

    key_id: str
    role: str
    merchant_id: MerchantId | None
    expires_at: int


@dataclass(frozen=True)
class DayFigures:
    """One merchant's figures for one day (points; ``foreign_accepted``: other programs'
    points redeemed at this merchant)."""

    merchant_id: MerchantId
    name: str
    issued: int
    redeemed: int
    foreign_accepted: int
    issues: int
    redemptions: int


@dataclass(frozen=True)
class Figures:
    """Today's figures (the chain's day, UTC) of the merchants a session may see, and the
    block the read model reflects."""

    day_start: int
    as_of_block: int
    merchants: list[DayFigures]


def _mac(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), _CONTEXT + payload.encode(), hashlib.sha256).hexdigest()


def open_session(alliance: Alliance, *, key_id: str, now: int | None = None
                 ) -> tuple[str, ConsoleSession] | None:
    """A session token for a key the caller has just proved it holds (by a signed request);
    None if the key is unknown or revoked."""
    with alliance.store.read_session() as s:
        cred = repos.get_credential(s, alliance.master_key, key_id)
    if cred is None or cred.revoked:
        return None
    expires = int(time.time() if now is None else now) + SESSION_TTL_S
    # A random id per session: two sessions of one key opened in the same second are two
    # sessions (the figure streams are counted per session, by the token).
    payload = f"{key_id}.{expires}.{secrets.token_hex(16)}"
    token = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + _mac(
        cred.secret, payload)
    mid = None if cred.merchant_id is None else MerchantId(cred.merchant_id)
    return token, ConsoleSession(key_id, cred.role, mid, expires)


def current(alliance: Alliance, token: str | None, *, now: int | None = None
            ) -> ConsoleSession | None:
    """The live session of a cookie's token (None: none, forged, expired or key revoked)."""
    if not token or len(token) > 300 or token.count(".") != 1:
        return None
    head, mac = token.split(".")
    try:
        payload = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode()
        key_id, expires_s, sid = payload.rsplit(".", 2)
        expires = int(expires_s)
        if len(bytes.fromhex(sid)) != 16:
            return None
    except ValueError:
        return None
    if expires < (time.time() if now is None else now):
        return None
    with alliance.store.read_session() as s:
        cred = repos.get_credential(s, alliance.master_key, key_id)
    if cred is None or cred.revoked or not hmac.compare_digest(_mac(cred.secret, payload),
                                                                mac):
        return None
    mid = None if cred.merchant_id is None else MerchantId(cred.merchant_id)
    return ConsoleSession(key_id, cred.role, mid, expires)


# The first block of each chain day seen (per chain and registry): the figures' query then
# starts at a block number (indexed) instead of scanning every event's time.
_first_block: dict[tuple[int, str, int], int] = {}


def first_block_of_day(alliance: Alliance, *, day_start: int, head: int) -> int:
    """The lowest block whose time is at or after ``day_start``: a bisection over headers,
    once per day and process; the block remembered is checked again (two headers) each time,
    since a reorg (or a test chain reverted to a snapshot) can move it."""
    gw = alliance.gateway
    key = (gw.chain_id, alliance.contracts.registry.address, day_start)
    found = _first_block.get(key)
    if found is not None and found <= head and gw.header(found).timestamp >= day_start and (
            found == 0 or gw.header(found - 1).timestamp < day_start):
        return found
    lo, hi = 0, head
    while lo < hi:
        mid = (lo + hi) // 2
        if gw.header(mid).timestamp >= day_start:
            hi = mid
        else:
            lo = mid + 1
    if len(_first_block) > 1000:
        _first_block.clear()
    _first_block[key] = lo
    return lo


def today(alliance: Alliance, *, merchant_id: MerchantId | None) -> Figures:
    """Today's issued, redeemed and foreign-accepted points of one merchant (``merchant_id``)
    or of every merchant (None: the operator), from the indexed point events. "Today" is the
    UTC day of the chain's latest block, the clock the events carry."""
    head = alliance.gateway.header("latest")
    start = head.timestamp - head.timestamp % DAY
    first = first_block_of_day(alliance, day_start=start, head=head.number)
    with alliance.store.read_session() as s:
        merchants = [(m.id, m.name, (m.program_address or "").lower())
                     for m in merchant_repos.list_merchants(s)
                     if merchant_id is None or m.id == merchant_id]
        cursor = cursors.get_cursor(s, POINTS_CURSOR)
        rows = s.execute(
            select(PointEvent.kind, PointEvent.program, PointEvent.merchant_id,
                   func.count(), func.sum(cast(PointEvent.amount, BigInteger)))
            .where(PointEvent.block_number >= first, PointEvent.block_time >= start,
                   PointEvent.block_time < start + DAY,
                   PointEvent.kind.in_(("issued", "redeemed")))
            .group_by(PointEvent.kind, PointEvent.program, PointEvent.merchant_id)).all()
    out = []
    for merchant, name, program in merchants:
        issued = issues = redeemed = redemptions = foreign = 0
        for kind, prog, mid, n, total in rows:
            amount = int(total or 0)
            if kind == "issued" and str(prog).lower() == program:
                issued += amount
                issues += int(n)
            elif kind == "redeemed" and mid == merchant:
                redeemed += amount
                redemptions += int(n)
                if str(prog).lower() != program:
                    foreign += amount
        out.append(DayFigures(MerchantId(merchant), name, issued, redeemed, foreign, issues,
                              redemptions))
    return Figures(start, cursor[0] if cursor is not None else 0, out)
