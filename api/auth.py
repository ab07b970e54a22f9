"""Request authentication: HMAC-SHA256 signatures over timestamp, method, path and body.

Headers: ``X-Alliance-Key`` (key id), ``X-Alliance-Timestamp`` (unix seconds),
``X-Alliance-Nonce`` (a fresh random string per request, 8-64 characters) and
``X-Alliance-Signature`` (hex HMAC-SHA256 with the key's secret over
``"{ts}\\n{nonce}\\n{METHOD}\\n{path?query}\\n{sha256_hex(body)}"``). A request older (or
newer) than ``settings.request_max_age_s``, with a wrong signature, an unknown or revoked
key, or a signature already seen (a captured request sent again) is refused with 401 and
changes nothing. The nonce lets an honest client retry the same request (with the same
Idempotency-Key) at once without it looking like a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Request
from sqlalchemy.orm import Session

from ledger.alliance import Alliance
from ledger.merchants import repos as merchant_repos
from ledger.store import repos
from ledger.store.db import Store
from ledger.types import MerchantId

from .errors import ApiError


@dataclass(frozen=True)
class Principal:
    """Who made a request."""

    key_id: str
    role: str  # "merchant" | "admin"
    merchant_id: MerchantId | None


def canonical(ts: str, nonce: str, method: str, path: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{ts}\n{nonce}\n{method.upper()}\n{path}\n{digest}".encode()


def sign(secret: str, ts: str, nonce: str, method: str, path: str, body: bytes) -> str:
    return hmac.new(secret.encode(), canonical(ts, nonce, method, path, body),
                    hashlib.sha256).hexdigest()


# Decrypted credentials are kept this long (seconds) per process: a revocation takes effect
# within this time. It saves a database read and a decryption on every request. The cache is
# kept per store: one key id in two stores (two alliances in one process) is two credentials.
CREDENTIAL_TTL_S = 2.0
_CacheEntries = dict[str, tuple[float, "repos.CredentialView | None"]]
_caches: weakref.WeakKeyDictionary[Store, _CacheEntries] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def _cached_credential(alliance: Alliance, key_id: str
                       ) -> tuple[bool, repos.CredentialView | None]:
    """(True, the credential or None for an unknown key) if the cache holds it fresh, else
    (False, None): :func:`_credential` must read the store."""
    with _cache_lock:
        hit = _caches.get(alliance.store, {}).get(key_id)
    if hit is not None and time.monotonic() - hit[0] < CREDENTIAL_TTL_S:
        return True, hit[1]
    return False, None


_CREDENTIAL_READS: RunVar[anyio.CapacityLimiter] = RunVar("alliance_credential_reads")


def _credential_reads() -> anyio.CapacityLimiter:
    """The event loop's limiter of credential reads (one at a time)."""
    try:
        return _CREDENTIAL_READS.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(1)
        _CREDENTIAL_READS.set(limiter)
        return limiter


def _credential(alliance: Alliance, key_id: str) -> repos.CredentialView | None:
    """The credential of ``key_id`` (None: unknown), from the cache or the store. It may read
    the store (blocking): call it from a worker thread, never on the event loop."""
    now = time.monotonic()
    store = alliance.store
    with _cache_lock:
        cache = _caches.get(store)
        if cache is None:
            cache = _caches[store] = {}
        hit = cache.get(key_id)
    if hit is not None and now - hit[0] < CREDENTIAL_TTL_S:
        return hit[1]
    with store.read_session() as s:
        cred = repos.get_credential(s, alliance.master_key, key_id)
    with _cache_lock:
        if len(cache) > 10_000:
            cache.clear()
        cache[key_id] = (now, cred)
    return cred


def merchant_status(alliance: Alliance, merchant_id: MerchantId) -> str | None:
    """The merchant's status in the store ("active", "suspended"), read fresh (one indexed
    read, no lock): a suspension or reinstatement takes effect on the next request."""
    with alliance.store.read_session() as s:
        row = merchant_repos.get_merchant(s, merchant_id)
        return None if row is None else row.status


def refuse_unless_active(status: str | None, merchant_id: MerchantId) -> None:
    """403 ``merchant-suspended`` unless the merchant's stored status is "active"."""
    if status != "active":
        raise ApiError(403, "merchant-suspended",
                       f"merchant {merchant_id} is suspended: it can read but not act")


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": "AllianceHMAC"})


async def authenticate(request: Request, alliance: Alliance) -> Principal:
    """Verify the request's signature; give its principal or raise 401."""
    key_id = request.headers.get("x-alliance-key")
    ts = request.headers.get("x-alliance-timestamp")
    nonce = request.headers.get("x-alliance-nonce")
    sig = request.headers.get("x-alliance-signature")
    if not key_id or not ts or not nonce or not sig:
        raise _unauthorized("missing X-Alliance-Key, X-Alliance-Timestamp, X-Alliance-Nonce "
                            "or X-Alliance-Signature")
    if not 8 <= len(nonce) <= 64:
        raise _unauthorized("X-Alliance-Nonce must be 8-64 characters")
    try:
        ts_value = int(ts)
    except ValueError as exc:
        raise _unauthorized("X-Alliance-Timestamp must be unix seconds") from exc
    max_age = alliance.settings.request_max_age_s
    if abs(time.time() - ts_value) > max_age:
        raise _unauthorized(f"the request timestamp is more than {max_age} s off")
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    # A blocking read on the event loop would hold every request of the process for its
    # round trips (and it comes back every CREDENTIAL_TTL_S per key): the store is read in
    # a worker thread; a fresh cached credential costs no thread hop.
    fresh, cred = _cached_credential(alliance, key_id)
    if not fresh:
        # One read at a time per process (the key's in-flight cap applies only after
        # authentication): a burst of one key, or of many, takes one thread for its
        # credentials, and whoever waited finds the fresh entry the read left.
        async with _credential_reads():
            fresh, cred = _cached_credential(alliance, key_id)
            if not fresh:
                cred = await anyio.to_thread.run_sync(_credential, alliance, key_id)
    if cred is None or cred.revoked:
        raise _unauthorized("unknown or revoked key")
    expected = sign(cred.secret, ts, nonce, request.method, path, body)
    if not hmac.compare_digest(expected, sig.lower()):
        raise _unauthorized("the signature does not match the request")
    if request.method == "POST":
        # Every POST runs through run_idempotent, which records the signature in the same
        # write transaction as its idempotency record: one write transaction per request.
        request.state.replay_guard = (key_id, expected, 2 * max_age)
    else:  # in a worker thread, as the credential read (a write, on the event loop, held
        # every request of the process for its round trips)
        await anyio.to_thread.run_sync(_remember_in_own_session, alliance, key_id, expected,
                                       2 * max_age)
    return Principal(key_id, cred.role,
                     None if cred.merchant_id is None else MerchantId(cred.merchant_id))


def _remember_in_own_session(alliance: Alliance, key_id: str, signature: str,
                             max_age_s: int) -> None:
    with alliance.store.session() as s:
        remember_or_refuse(s, key_id, signature, max_age_s)


def remember_or_refuse(s: Session, key_id: str, signature: str, max_age_s: int) -> None:
    """Record a request's signature; a signature seen before is a replay (401)."""
    if not repos.remember_signature(s, key_id, signature, max_age=timedelta(seconds=max_age_s)):
        refuse_replay()


def refuse_replay() -> NoReturn:
    """401: this request's signature was seen before (a captured request sent again)."""
    raise _unauthorized("this request was already received (replay)")
