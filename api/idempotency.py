"""Idempotency of every POST: same key and body replay the first response, errors included.

The operation a request writes and its idempotency record commit in one database
transaction; a request whose work fails has that transaction rolled back and its claim written
again, so it leaves only its recorded error response behind (no savepoint on the way that
succeeds).

A recorded response is encrypted with the master key (it may hold a secret: the credentials
``POST /v1/admin/merchants`` shows once), so the store never keeps one in plain text.

A request that fails with a server error (5xx, or an exception nothing mapped) records nothing:
its key is released, so a retry with the same key runs again instead of meeting 409
``request-in-progress`` for a day. A key whose first request died with its process is taken
over after :data:`IN_PROGRESS_LEASE`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from ledger.alliance import Alliance
from ledger.errors import LedgerConflictError, LedgerError
from ledger.merchants import repos as merchant_repos
from ledger.store import repos
from ledger.types import MerchantId

from .auth import Principal, refuse_replay, refuse_unless_active, remember_or_refuse
from .errors import PROBLEM_JSON, ApiError, ledger_problem, problem_headers

MAX_KEY_LENGTH = 255
# A claim with no recorded response is taken over after this long: its request died with
# its process (every request finishes well within it: receipts time out after a minute).
IN_PROGRESS_LEASE = timedelta(minutes=10)


def key_is_valid(key: str) -> bool:
    """An Idempotency-Key's form: 1 to :data:`MAX_KEY_LENGTH` printable characters."""
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()


def record_ttl(alliance: Alliance) -> timedelta:
    """How long a request's idempotency record is kept (a day at least)."""
    return timedelta(hours=max(24, alliance.settings.idempotency_ttl_hours))


def fingerprint(request: Request, body: bytes) -> str:
    return fingerprint_of(request.method, request.url.path, body)


def fingerprint_of(method: str, path: str, body: bytes) -> str:
    """A request's fingerprint from its method, URL path and body (what :func:`fingerprint`
    gives for the Request)."""
    return hashlib.sha256(f"{method}\n{path}\n".encode() + body).hexdigest()


def url_path(scope: Mapping[str, Any]) -> str:
    """``Request(scope).url.path`` without building the URL (its host, scheme and query are
    parsed and joined only to be split again)."""
    path = str(scope["path"])
    if "?" in path or "#" in path or "\\" in path:
        return Request(dict(scope)).url.path
    return path


def run_idempotent(request: Request, body: bytes, alliance: Alliance, principal: Principal,
                   work: Callable[[Session | None], tuple[int, Any]], *,
                   in_transaction: bool = True,
                   active_merchant: MerchantId | None = None) -> Response:
    """Run ``work`` once per (principal, Idempotency-Key); replay its response afterwards.

    ``in_transaction``: ``work`` writes through the given session, in the same transaction as
    the idempotency record (the outbox case). Otherwise (operator actions that send their own
    transactions and open their own sessions) the key is claimed and committed first, and
    the response recorded after; a crash in between leaves the key "in progress" until
    :data:`IN_PROGRESS_LEASE` has passed.

    ``active_merchant``: refuse with 403 ``merchant-suspended`` unless that merchant is
    active, read first in the request's own transaction (nothing recorded, the signature not
    spent, as when :func:`api.deps.merchant` refuses); the row stays in the session's identity
    map, so ``work`` reads it again for free."""
    key = request.headers.get("idempotency-key")
    if not key:
        raise ApiError(400, "idempotency-key-missing", "every POST needs an Idempotency-Key")
    if not key_is_valid(key):
        raise ApiError(400, "idempotency-key-invalid",
                       f"Idempotency-Key is 1-{MAX_KEY_LENGTH} printable characters")
    ttl = record_ttl(alliance)
    fp = fingerprint(request, body)
    guard = getattr(request.state, "replay_guard", None)

    def claim(s: Session) -> Response | None:
        """Spend the signature and claim the key; the recorded response if there is one."""
        if guard is not None:
            remember_or_refuse(s, *guard)
        return begin(s)

    def begin(s: Session) -> Response | None:
        """Claim the key (the signature spent); the recorded response if there is one."""
        try:
            stored = repos.idempotency_begin(s, principal=principal.key_id, key=key,
                                             fingerprint=fp, ttl=ttl, lease=IN_PROGRESS_LEASE)
        except LedgerConflictError as exc:
            raise ApiError(409, "idempotency-key-reused", exc.message) from exc
        if stored is None:
            return None
        if stored.status_code is None:
            raise ApiError(409, "request-in-progress",
                           "a request with this Idempotency-Key is still running")
        return Response(_open(alliance, stored.body), status_code=stored.status_code,
                        media_type=stored.content_type, headers={"Idempotent-Replayed": "true"})

    with alliance.store.session() as s:
        fast = None
        if active_merchant is not None and guard is not None:
            # PostgreSQL: the merchant read, the replay record and the claim in one round
            # trip, each written only if what comes before it allows (None elsewhere).
            key_id, signature, max_age_s = guard
            fast = repos.claim_merchant_request(
                s, merchant_id=active_merchant, key_id=key_id, signature=signature,
                signature_max_age=timedelta(seconds=max_age_s), principal=principal.key_id,
                key=key, fingerprint=fp, ttl=ttl)
        if fast is not None and active_merchant is not None:
            # ``row`` held for the whole transaction keeps it in the session's identity map
            # (which holds rows weakly), so ``work`` does not read the merchant again.
            row = fast.merchant
            refuse_unless_active(None if row is None else row.status, active_merchant)
            if not fast.signature_new:
                refuse_replay()
            replayed = None if fast.claim_new else begin(s)
        else:
            if active_merchant is not None:
                row = merchant_repos.get_merchant(s, active_merchant)
                refuse_unless_active(None if row is None else row.status, active_merchant)
            replayed = claim(s)
        if replayed is not None:
            return replayed
        if in_transaction:
            # An unexpected exception leaves this block: the whole transaction, claim
            # included, rolls back, so the key is free again.
            status, text, media, failed = _run(work, s)
            if status >= 500:
                s.rollback()  # nothing of this request stays, not even its claim,
                if guard is not None:  # but its signature stays spent
                    remember_or_refuse(s, *guard)
                return Response(text, status_code=status, media_type=media,
                                headers=problem_headers(status))
            if failed:
                # The work refused (a 4xx problem): none of its writes stay. It ran without a
                # savepoint (two round trips fewer for every request that succeeds), so the
                # transaction is rolled back whole and the signature and claim written again,
                # then the refusal recorded under the key.
                s.rollback()
                replayed = claim(s)
                if replayed is not None:  # another request took the key in between
                    return replayed
            sealed = seal(alliance, text)
            # PostgreSQL: the recorded response and COMMIT in one round trip.
            if not repos.idempotency_complete_and_commit(
                    s, principal=principal.key_id, key=key, status_code=status, body=sealed,
                    content_type=media):
                repos.idempotency_complete(s, principal=principal.key_id, key=key,
                                           status_code=status, body=sealed,
                                           content_type=media)
            return Response(text, status_code=status, media_type=media)
    try:
        status, text, media, _ = _run(work, None)
    except BaseException:
        with alliance.store.session() as s:
            repos.idempotency_release(s, principal=principal.key_id, key=key)
        raise
    with alliance.store.session() as s:
        if status >= 500:
            repos.idempotency_release(s, principal=principal.key_id, key=key)
        else:
            repos.idempotency_complete(s, principal=principal.key_id, key=key,
                                       status_code=status, body=seal(alliance, text),
                                       content_type=media)
    return Response(text, status_code=status, media_type=media, headers=problem_headers(status))


_SEALED = "fernet:"


def seal(alliance: Alliance, text: str) -> str:
    """The response body as stored: encrypted under the master key."""
    return _SEALED + alliance.master_key.encrypt(text.encode()).decode()


def _open(alliance: Alliance, stored: str | None) -> str:
    if not stored:
        return ""
    if stored.startswith(_SEALED):
        return alliance.master_key.decrypt(stored[len(_SEALED):].encode()).decode()
    return stored  # recorded before responses were sealed (expires within a day)


def _run(work: Callable[[Session | None], tuple[int, Any]], session: Session | None
         ) -> tuple[int, str, str, bool]:
    """The response of ``work``: status, JSON text, media type, and whether it refused (a
    LedgerError mapped to a problem; its writes, if any, are the caller's to roll back)."""
    try:
        status, payload = work(session)
        media = "application/json"
        failed = False
    except LedgerError as exc:
        status, payload = ledger_problem(exc)
        media = PROBLEM_JSON
        failed = True
    return status, json.dumps(payload, default=str, separators=(",", ":")), media, failed
