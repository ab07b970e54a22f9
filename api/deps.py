"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ledger.alliance import Alliance

from .auth import Principal, authenticate, merchant_status, refuse_unless_active
from .errors import ApiError


async def get_alliance(request: Request) -> Alliance:
    """The app's alliance. ``async``: FastAPI runs a plain ``def`` dependency in its thread
    pool, a hop to a worker thread and back (and a wait for one of the pool's 40 tokens
    behind the routes' blocking work) for one attribute read, on every request."""
    alliance: Alliance = request.app.state.alliance
    return alliance


AllianceDep = Annotated[Alliance, Depends(get_alliance)]


async def principal(request: Request) -> Principal:
    """Who sent the request. :class:`api.guard.RequestGuard` authenticated it on its raw
    bytes before anything parsed the body; any route that depends on this is guarded so.

    No dependency of its own (the alliance is read off the app only when it is needed): every
    node of a route's dependency tree is solved on every request (~0.07 ms each, a Response
    made per solve), and this one is under every authenticated route."""
    p = getattr(request.state, "principal", None)
    if isinstance(p, Principal):
        return p
    # Only without the guard (an app built by hand): authenticate here, after parsing.
    alliance: Alliance = request.app.state.alliance
    p = await authenticate(request, alliance)
    request.app.state.rate_limiter.check(p.key_id)
    return p


def _merchant(p: Principal) -> Principal:
    if p.role != "merchant" or p.merchant_id is None:
        raise ApiError(403, "forbidden", "this route is for merchant credentials")
    return p


def merchant(request: Request, alliance: AllianceDep,
             p: Annotated[Principal, Depends(principal)]) -> Principal:
    """A merchant's credentials. A suspended merchant may read (its own record, statements,
    positions, operations) but not write: every other method is refused with 403 before
    anything is queued, instead of failing later on chain.

    A plain ``def``: FastAPI runs it in the thread pool, so the status read (a database round
    trip) never blocks the event loop, where it would serialise every request of the
    process behind it."""
    _merchant(p)
    assert p.merchant_id is not None
    if request.method not in ("GET", "HEAD"):
        refuse_unless_active(merchant_status(alliance, p.merchant_id), p.merchant_id)
    return p


async def merchant_queueing(p: Annotated[Principal, Depends(principal)]) -> Principal:
    """A merchant's credentials, for a route that queues through
    :func:`api.idempotency.run_idempotent` with ``active_merchant``: the suspension check
    (403 ``merchant-suspended``, nothing recorded) is then the first read of the request's own
    write transaction instead of a session of its own (one pool checkout and three round
    trips fewer, and the merchant row is then read once per request)."""
    return _merchant(p)


@dataclass(frozen=True)
class Queueing:
    """What a queueing route needs of its request, solved as one dependency: the merchant's
    credentials (as :func:`merchant_queueing`), the app's alliance and the raw body (the
    idempotency fingerprint), instead of three nodes of the dependency tree."""

    principal: Principal
    alliance: Alliance
    body: bytes


async def queueing(request: Request, p: Annotated[Principal, Depends(principal)]) -> Queueing:
    """A merchant's queueing request (see :class:`Queueing` and :func:`merchant_queueing`)."""
    alliance: Alliance = request.app.state.alliance
    return Queueing(_merchant(p), alliance, await request.body())


async def merchant_even_suspended(p: Annotated[Principal, Depends(principal)]) -> Principal:
    """A merchant's credentials, suspended or not: for what a suspended merchant must still
    be able to do (pay what it owes into escrow)."""
    return _merchant(p)


async def admin(p: Annotated[Principal, Depends(principal)]) -> Principal:
    if p.role != "admin":
        raise ApiError(403, "forbidden", "this route is for operator credentials")
    return p


async def raw_body(request: Request) -> bytes:
    return await request.body()


MerchantDep = Annotated[Principal, Depends(merchant)]
MerchantQueueDep = Annotated[Principal, Depends(merchant_queueing)]
QueueingDep = Annotated[Queueing, Depends(queueing)]
MerchantEvenSuspendedDep = Annotated[Principal, Depends(merchant_even_suspended)]
AdminDep = Annotated[Principal, Depends(admin)]
AnyPrincipalDep = Annotated[Principal, Depends(principal)]
BodyDep = Annotated[bytes, Depends(raw_body)]
