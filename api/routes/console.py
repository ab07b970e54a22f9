"""The web console (``/console``) for merchants and the operator: its page, scripts and pinned
libraries, served by the service (no CDN), and the JSON routes the page calls.

Sign-in: the page signs one request with the API key's secret (the same HMAC scheme as every
API call, computed in the browser: the secret never leaves it), ``POST /console/api/session``;
the answer sets an httpOnly, SameSite=Strict cookie scoped to ``/console``. A merchant's key
sees that merchant only; the operator's (``admin``) key sees every merchant. Every JSON route
also wants the ``X-Console: 1`` header, which no cross-site form or image can send.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ledger.clearing import service as clearing
from ledger.clearing import statements
from ledger.console import service as console
from ledger.console.service import ConsoleSession
from ledger.indexer import repos as cursors
from ledger.indexer.follower import progress_of
from ledger.merchants import repos as merchant_repos
from ledger.points.projection import CURSOR as POINTS_CURSOR
from ledger.types import MerchantId
from ledger.webhooks import service as webhooks

from ..auth import Principal, remember_or_refuse
from ..deps import AllianceDep, principal
from ..errors import ApiError
from ..schemas.common import PeriodPath
from ..schemas.console import (
    ConsoleFeatures,
    ConsoleSessionOut,
    DayFiguresOut,
    FiguresOut,
    PeriodRowOut,
)
from ..schemas.webhooks import (
    AfterQuery,
    DeliveriesOut,
    LimitQuery,
    ReplayOut,
    ReplayRequest,
    WebhookCreatedOut,
    WebhookCreateRequest,
    WebhookIdPath,
    WebhookOut,
    WebhooksOut,
)
from .app import CSP, NODE_MODULES, ROOT, _serve

STATIC = ROOT / "api" / "console_static"
VENDOR = {"ethers.umd.min.js": NODE_MODULES / "ethers" / "dist" / "ethers.umd.min.js",
          "uPlot.iife.min.js": NODE_MODULES / "uplot" / "dist" / "uPlot.iife.min.js",
          "uPlot.min.css": NODE_MODULES / "uplot" / "dist" / "uPlot.min.css"}
COOKIE = "alliance_console"
# The webhooks panel: a merchant's endpoints through the console's own routes (below).
FEATURES = ConsoleFeatures(webhooks=True)

# The live figures' stream: at most this many open per console session; a heartbeat comment
# this often; the browser's reconnect delay; how often a stream looks at the indexer's
# progress in this process and reads the points cursor (an indexer in another process); how
# long one stream lasts before the browser reconnects (bounds a shutdown's wait for it).
STREAMS_PER_SESSION = 4
HEARTBEAT_S = 15.0
RETRY_MS = 1000
TICK_S = 0.25
CURSOR_READ_S = 1.0
STREAM_MAX_S = 30.0

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/console/api", tags=["console"], include_in_schema=False)


def _require_console_header(request: Request) -> None:
    if request.headers.get("x-console") != "1":
        raise ApiError(400, "console-header-missing", "console requests carry X-Console: 1")


def cookie_session(request: Request, alliance: AllianceDep) -> ConsoleSession:
    """The session of the request's console cookie, or 401 ``session-expired`` (for a plain
    link's download: the SameSite=Strict cookie is never sent from another site)."""
    found = console.current(alliance, request.cookies.get(COOKIE))
    if found is None:
        raise ApiError(401, "session-expired", "sign in to the console again",
                       {"WWW-Authenticate": 'Cookie realm="console"'})
    return found


def signed_in(request: Request, me: Annotated[ConsoleSession, Depends(cookie_session)]
              ) -> ConsoleSession:
    """The cookie's session, for the page's own calls (with ``X-Console: 1``)."""
    _require_console_header(request)
    return me


SessionDep = Annotated[ConsoleSession, Depends(signed_in)]
CookieDep = Annotated[ConsoleSession, Depends(cookie_session)]


def _scope(me: ConsoleSession, merchant_id: int | None) -> MerchantId | None:
    """The merchant a request may read: a merchant's own, whatever it asks; the operator's
    choice (None: all)."""
    if me.role == "merchant":
        if merchant_id is not None and merchant_id != me.merchant_id:
            raise ApiError(403, "forbidden", "a merchant sees its own figures only")
        return me.merchant_id
    if me.role != "admin":
        raise ApiError(403, "forbidden", "the console is for merchants and the operator")
    return None if merchant_id is None else MerchantId(merchant_id)


def _session_out(alliance: Any, me: ConsoleSession) -> ConsoleSessionOut:
    name = None
    if me.merchant_id is not None:
        with alliance.store.read_session() as s:
            row = merchant_repos.get_merchant(s, me.merchant_id)
            name = row.name if row is not None else None
    return ConsoleSessionOut(key_id=me.key_id, role=me.role, merchant_id=me.merchant_id,
                             merchant_name=name, expires_at=me.expires_at, features=FEATURES)


# ---------------------------------------------------------------------- page


@router.get("/console", response_class=HTMLResponse)
def console_page(request: Request) -> Response:
    """The console's one page (every panel is drawn by console.js)."""
    response = _serve(request, STATIC / "index.html", cache="no-cache")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/console/static/{name}")
def console_static(name: str, request: Request) -> Response:
    """The page's own scripts and styles (flat directory: no path walks out of it)."""
    if "/" in name or "\\" in name or name.startswith("."):
        raise ApiError(404, "not-found", "no such file")
    return _serve(request, STATIC / name, cache="no-cache")


@router.get("/console/vendor/{name}")
def console_vendor(name: str, request: Request) -> Response:
    """A pinned front-end library (only those listed in :data:`VENDOR`)."""
    path = VENDOR.get(name)
    if path is None:
        raise ApiError(404, "not-found", "no such library")
    return _serve(request, path, cache="public, max-age=86400")


# ---------------------------------------------------------------------- session


@api_router.post("/session", response_model=ConsoleSessionOut)
def sign_in(request: Request, response: Response, alliance: AllianceDep,
            who: Annotated[Principal, Depends(principal)]) -> ConsoleSessionOut:
    """Exchange a signed request (the key's HMAC, checked before this runs) for the console's
    cookie (httpOnly, SameSite=Strict, path /console, Secure over TLS)."""
    _require_console_header(request)
    guard = getattr(request.state, "replay_guard", None)
    if guard is not None:
        with alliance.store.session() as s:
            remember_or_refuse(s, *guard)
    if who.role not in ("merchant", "admin"):
        raise ApiError(403, "forbidden", "the console is for merchants and the operator")
    opened = console.open_session(alliance, key_id=who.key_id)
    if opened is None:
        raise ApiError(401, "unauthorized", "unknown or revoked key")
    token, me = opened
    response.set_cookie(COOKIE, token, max_age=max(1, me.expires_at - int(time.time())),
                        path="/console", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return _session_out(alliance, me)


@api_router.get("/session", response_model=ConsoleSessionOut)
def my_session(alliance: AllianceDep, me: SessionDep) -> ConsoleSessionOut:
    return _session_out(alliance, me)


@api_router.delete("/session", status_code=204)
def sign_out(request: Request) -> Response:
    """Clear the cookie (always 204)."""
    _require_console_header(request)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


# ---------------------------------------------------------------------- figures


@api_router.get("/figures", response_model=FiguresOut)
def figures(alliance: AllianceDep, me: SessionDep,
            merchant_id: Annotated[int | None, Query(ge=1, le=2**32)] = None) -> FiguresOut:
    """Today's issued, redeemed and foreign-accepted points (the page reads this when its
    stream, ``/figures/stream``, is down)."""
    return _figures_out(console.today(alliance, merchant_id=_scope(me, merchant_id)))


def _figures_out(found: console.Figures) -> FiguresOut:
    return FiguresOut(day_start=found.day_start, as_of_block=found.as_of_block,
                      merchants=[DayFiguresOut(**vars(m)) for m in found.merchants])


class StreamSlots:
    """Open figure streams per console session (bounded: a page opens one, a few tabs a
    few), on ``app.state``."""

    def __init__(self, per_session: int) -> None:
        self.per_session = per_session
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> bool:
        with self._lock:
            n = self._open.get(key, 0)
            if n >= self.per_session:
                return False
            self._open[key] = n + 1
            return True

    def give_back(self, key: str) -> None:
        with self._lock:
            n = self._open.get(key, 0) - 1
            if n <= 0:
                self._open.pop(key, None)
            else:
                self._open[key] = n

    def open_streams(self) -> int:
        with self._lock:
            return sum(self._open.values())


def _slots(request: Request) -> StreamSlots:
    slots = getattr(request.app.state, "console_streams", None)
    if slots is None:
        slots = request.app.state.console_streams = StreamSlots(STREAMS_PER_SESSION)
    return cast(StreamSlots, slots)


@api_router.get("/figures/stream")
async def figures_stream(request: Request, alliance: AllianceDep, me: CookieDep,
                         merchant_id: Annotated[int | None, Query(ge=1, le=2**32)] = None
                         ) -> Response:
    """Today's figures as server-sent events: ``event: figures`` (the JSON of ``/figures``)
    when the stream opens and each time the indexer applies blocks that change them (it
    wakes on the indexer's progress in this process, and reads the points cursor every
    second for an indexer in another process); a ``: heartbeat`` comment every
    :data:`HEARTBEAT_S`. Scoped like ``/figures``. The cookie authenticates it (an
    EventSource sends no header; the cookie is SameSite=Strict). At most
    :data:`STREAMS_PER_SESSION` per session (429). A stream ends after :data:`STREAM_MAX_S`
    (the browser reconnects by itself), when the session expires (``event: expired``) and
    when the client goes; so a server that shuts down waits for none longer than that."""
    scope = _scope(me, merchant_id)
    key = hashlib.sha256((request.cookies.get(COOKIE) or "").encode()).hexdigest()
    slots = _slots(request)
    if not slots.take(key):
        raise ApiError(429, "too-many-streams",
                       f"at most {slots.per_session} live figure streams per console session")
    progress = progress_of(alliance.store)

    async def events() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            opened = last_beat = time.monotonic()
            last_version = -1
            last_cursor: int | None = -2
            last_body = ""
            last_cursor_read = 0.0
            # A client that goes cancels this (the response listens for its disconnect; a
            # server on ASGI 2.4 fails the next send instead: a heartbeat at the latest).
            while True:
                now = time.monotonic()
                if time.time() >= me.expires_at:
                    yield "event: expired\ndata: {}\n\n"
                    return
                if now - opened >= STREAM_MAX_S:
                    return
                due = progress.version != last_version
                if not due and now - last_cursor_read >= CURSOR_READ_S:
                    last_cursor_read = now
                    cursor = await run_in_threadpool(_points_cursor, alliance)
                    due = cursor != last_cursor
                    last_cursor = cursor
                if due:
                    last_version = progress.version
                    found = await run_in_threadpool(console.today, alliance,
                                                    merchant_id=scope)
                    body = _figures_out(found).model_dump_json()
                    if body != last_body:
                        last_body = body
                        last_beat = now
                        yield f"event: figures\nid: {found.as_of_block}\ndata: {body}\n\n"
                if now - last_beat >= HEARTBEAT_S:
                    last_beat = now
                    yield ": heartbeat\n\n"
                await asyncio.sleep(TICK_S)
        finally:
            slots.give_back(key)

    return StreamingResponse(events(), media_type="text/event-stream", headers={
        "Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _points_cursor(alliance: Any) -> int | None:
    with alliance.store.read_session() as s:
        found = cursors.get_cursor(s, POINTS_CURSOR)
    return None if found is None else found[0]


@api_router.get("/periods", response_model=list[PeriodRowOut])
def periods(alliance: AllianceDep, me: SessionDep,
            merchant_id: Annotated[int | None, Query(ge=1, le=2**32)] = None
            ) -> list[PeriodRowOut]:
    """Every clearing period, newest first: a merchant's own position in each (the operator:
    the chosen merchant's, or the period's totals)."""
    mid = _scope(me, merchant_id)
    out = []
    for p in range(clearing.current_period(alliance), 0, -1):
        view = clearing.period_view(alliance, p)
        mine = [x for x in view.positions if x.merchant_id == mid] if mid is not None else []
        if mid is not None and not mine:
            continue
        if mine:
            x = mine[0]
            out.append(PeriodRowOut(period=p, closed_at=view.closed_at, merchant_id=mid,
                                    net=x.net, foreign_accepted=x.foreign_accepted,
                                    paid=x.paid, received=x.received,
                                    outstanding=x.outstanding, total_owed=view.total_owed))
        else:
            out.append(PeriodRowOut(
                period=p, closed_at=view.closed_at, merchant_id=None,
                net=sum(x.net for x in view.positions),
                foreign_accepted=sum(x.foreign_accepted for x in view.positions),
                paid=view.total_paid, received=view.total_received,
                outstanding=sum(x.outstanding for x in view.positions if x.outstanding > 0),
                total_owed=view.total_owed))
    return out


@api_router.get("/statements/{period}.csv")
def statement_csv(period: PeriodPath, alliance: AllianceDep, me: CookieDep,
                  merchant_id: Annotated[int | None, Query(ge=1, le=2**32)] = None
                  ) -> Response:
    """A merchant's statement of a period as CSV (a merchant: its own)."""
    mid = _scope(me, merchant_id)
    if mid is None:
        raise ApiError(422, "validation-error", "name the merchant (merchant_id)")
    st = statements.statement(alliance, period=period, merchant_id=mid)
    return Response(st.to_csv(), media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="statement-{period}-{mid}.csv"',
        "X-Statement-Hash": st.hash})


# ---------------------------------------------------------------------- webhooks
#
# The page manages the signed-in merchant's webhook endpoints through these routes: the
# cookie session (and ``X-Console: 1``) stands for the merchant, and each route calls the
# same ``ledger.webhooks.service`` function as ``/v1/webhooks`` (the browser signs nothing
# after sign-in). The operator has no endpoints of its own: 403.


def _webhook_merchant(me: ConsoleSession) -> MerchantId:
    if me.role != "merchant" or me.merchant_id is None:
        raise ApiError(403, "forbidden", "webhook endpoints belong to a merchant: sign in with "
                       "the merchant's key")
    return me.merchant_id


@api_router.get("/webhooks", response_model=WebhooksOut)
def console_webhooks(alliance: AllianceDep, me: SessionDep) -> dict[str, Any]:
    """The merchant's endpoints with their status (never a secret)."""
    mid = _webhook_merchant(me)
    with alliance.store.read_session() as s:
        return {"webhooks": [asdict(v) for v in webhooks.list_endpoints(s, merchant_id=mid)]}


@api_router.post("/webhooks", status_code=201, response_model=WebhookCreatedOut)
def console_create_webhook(req: WebhookCreateRequest, alliance: AllianceDep,
                           me: SessionDep) -> dict[str, Any]:
    """Register an endpoint: the answer holds its signing secret, this once."""
    mid = _webhook_merchant(me)
    with alliance.store.session() as s:
        made = webhooks.create_endpoint(alliance, s, merchant_id=mid, url=req.url,
                                        events=req.events)
        return {**asdict(made.endpoint), "secret": made.secret}


@api_router.delete("/webhooks/{webhook_id}", response_model=WebhookOut)
def console_delete_webhook(webhook_id: WebhookIdPath, alliance: AllianceDep,
                           me: SessionDep) -> dict[str, Any]:
    mid = _webhook_merchant(me)
    with alliance.store.session() as s:
        return asdict(webhooks.delete_endpoint(s, merchant_id=mid, endpoint_id=webhook_id))


@api_router.post("/webhooks/{webhook_id}/resume", response_model=WebhookOut)
def console_resume_webhook(webhook_id: WebhookIdPath, alliance: AllianceDep,
                           me: SessionDep) -> dict[str, Any]:
    """Deliver again to a paused endpoint, from its oldest undelivered event."""
    mid = _webhook_merchant(me)
    with alliance.store.session() as s:
        return asdict(webhooks.resume_endpoint(s, merchant_id=mid, endpoint_id=webhook_id))


@api_router.get("/webhooks/{webhook_id}/deliveries", response_model=DeliveriesOut)
def console_webhook_deliveries(webhook_id: WebhookIdPath, alliance: AllianceDep,
                               me: SessionDep, after: AfterQuery = None,
                               limit: LimitQuery = 100) -> dict[str, Any]:
    """The endpoint's delivery log in event order (``next_after`` pages on)."""
    mid = _webhook_merchant(me)
    with alliance.store.read_session() as s:
        return asdict(webhooks.deliveries(s, merchant_id=mid, endpoint_id=webhook_id,
                                          after=after, limit=limit))


@api_router.post("/webhooks/{webhook_id}/replay", response_model=ReplayOut)
def console_replay_webhook(webhook_id: WebhookIdPath, req: ReplayRequest,
                           alliance: AllianceDep, me: SessionDep) -> dict[str, int]:
    """Queue the endpoint's events again from ``from_event_id`` on, in order."""
    mid = _webhook_merchant(me)
    with alliance.store.session() as s:
        return {"queued": webhooks.replay(s, merchant_id=mid, endpoint_id=webhook_id,
                                          from_event_id=req.from_event_id)}
