"""Idempotency of every POST: same key and body replay the first response, errors included.

The operation a request writes and its idempotency record commit in one database
transaction; the work runs in a savepoint, so a request that fails leaves only its recorded
error response behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from ledger.alliance import Alliance
from ledger.errors import LedgerConflictError, LedgerError
from ledger.store import repos

from .auth import Principal, remember_or_refuse
from .errors import PROBLEM_JSON, ApiError, ledger_problem

MAX_KEY_LENGTH = 255


def fingerprint(request: Request, body: bytes) -> str:
    return hashlib.sha256(f"{request.method}\n{request.url.path}\n".encode() + body).hexdigest()


def run_idempotent(request: Request, body: bytes, alliance: Alliance, principal: Principal,
                   work: Callable[[Session | None], tuple[int, Any]], *,
                   in_transaction: bool = True) -> Response:
    """Run ``work`` once per (principal, Idempotency-Key); replay its response afterwards.

    ``in_transaction``: ``work`` writes through the given session, in the same transaction as
    the idempotency record (the outbox case). Otherwise (operator actions that send their own
    transactions and open their own sessions) the key is claimed and committed first, and
    the response recorded after; a crash in between leaves the key "in progress"."""
    key = request.headers.get("idempotency-key")
    if not key:
        raise ApiError(400, "idempotency-key-missing", "every POST needs an Idempotency-Key")
    if len(key) > MAX_KEY_LENGTH:
        raise ApiError(400, "idempotency-key-invalid",
                       f"Idempotency-Key is at most {MAX_KEY_LENGTH} characters")
    ttl = timedelta(hours=max(24, alliance.settings.idempotency_ttl_hours))
    fp = fingerprint(request, body)
    with alliance.store.session() as s:
        guard = getattr(request.state, "replay_guard", None)
        if guard is not None:
            remember_or_refuse(s, *guard)
        try:
            stored = repos.idempotency_begin(s, principal=principal.key_id, key=key,
                                             fingerprint=fp, ttl=ttl)
        except LedgerConflictError as exc:
            raise ApiError(409, "idempotency-key-reused", exc.message) from exc
        if stored is not None:
            if stored.status_code is None:
                raise ApiError(409, "request-in-progress",
                               "a request with this Idempotency-Key is still running")
            return Response(stored.body or "", status_code=stored.status_code,
                            media_type=stored.content_type,
                            headers={"Idempotent-Replayed": "true"})
        if in_transaction:
            status, text, media = _run(work, s)
            repos.idempotency_complete(s, principal=principal.key_id, key=key,
                                       status_code=status, body=text, content_type=media)
            return Response(text, status_code=status, media_type=media)
    status, text, media = _run(work, None)
    with alliance.store.session() as s:
        repos.idempotency_complete(s, principal=principal.key_id, key=key, status_code=status,
                                   body=text, content_type=media)
    return Response(text, status_code=status, media_type=media)


def _run(work: Callable[[Session | None], tuple[int, Any]], session: Session | None
         ) -> tuple[int, str, str]:
    try:
        if session is not None:
            # A savepoint: a failing request rolls back its own writes, and only its
            # recorded error response remains.
            with session.begin_nested():
                status, payload = work(session)
        else:
            status, payload = work(None)
        media = "application/json"
    except LedgerError as exc:
        status, payload = ledger_problem(exc)
        media = PROBLEM_JSON
    return status, json.dumps(payload, default=str, separators=(",", ":")), media
