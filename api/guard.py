"""The gate every request passes before anything parses its body (an ASGI middleware).

In this order, for the route the request matches:

1. the recursion limit is put back if a dependency lifted it (``py_ecc``, which some web3
   stacks pull in, sets it to 100000; with it Python's depth guard never fires and a deeply
   nested JSON body overflows the C stack of the server process);
2. the body is read from the stream with a cap (the route's FastAPI ``max_body_size``, by
   default :data:`DEFAULT_MAX_BODY`): a larger ``Content-Length`` is refused unread, a stream that
   runs past the cap is refused as soon as it does (413);
3. a route that needs credentials authenticates on the raw bytes and headers (HMAC), then the
   key's rate limit is checked (401, 429), all before any parsing; a key has at most
   :data:`MAX_IN_FLIGHT_PER_KEY` requests in progress, the rest wait their turn;
4. a JSON body must say so (415 for another media type), and its nesting depth is counted on
   the bytes, outside strings, before ``json.loads`` sees it (400 past :data:`MAX_JSON_DEPTH`).

Only then does FastAPI parse and validate the body. Routes get all of this by declaring their
dependencies as usual (a route that depends on :func:`api.deps.principal` is authenticated
here); nothing is done per route.

An authenticated route may have a lean handler (``create_app`` names them: the signed issue's,
:func:`api.routes.points.issue_lean`). It runs after all of the above, inside the key's
in-flight slot, and either answers the request or declines with nothing done, and then the
route runs as usual.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.requests import Request
from starlette.routing import Match

from ledger.errors import LedgerError

from .auth import authenticate
from .deps import principal
from .errors import ApiError, ledger_response, problem
from .ratelimit import RateLimiter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# CPython's own default: deep enough for every library the service runs, and the C stack of
# any thread holds it many times over.
RECURSION_LIMIT = 1000
DEFAULT_MAX_BODY = 64 * 1024
MAX_JSON_DEPTH = 32
# The most requests of one key in progress at once (the rest wait their turn on the event
# loop): a burst from one merchant cannot take every worker thread (per-merchant fairness).
MAX_IN_FLIGHT_PER_KEY = 8
# Distinct (method, path) pairs whose route policy is remembered (cleared when full).
POLICY_CACHE_SIZE = 4096


def guard_recursion_limit() -> None:
    """Put the recursion limit back to :data:`RECURSION_LIMIT` if anything raised it."""
    if sys.getrecursionlimit() > RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (brackets inside strings do not
    count). Linear in the body; no recursion."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    depth = deepest = 0
    for b in brackets:
        if b in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


# A lean handler of a route (``api.routes.points.issue_lean``): called with the app, the
# scope, the body read and ``send`` once the request passed the gate; it answers and gives
# True, or declines (nothing done) and gives False, and the route then runs as usual.
LeanHandler = Callable[[FastAPI, Scope, bytes, Send], Awaitable[bool]]


@dataclass(frozen=True)
class RoutePolicy:
    """What the gate does for one route (``lean``: its lean handler, if it has one)."""

    authenticated: bool
    json_body: bool
    max_body: int
    lean: LeanHandler | None = None
    route: APIRoute | None = None


def depends_on(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return dependant.call is call or any(depends_on(d, call) for d in dependant.dependencies)


def route_policy(route: APIRoute, max_body_size: int | None,
                 lean: LeanHandler | None = None) -> RoutePolicy:
    """The gate's policy for ``route`` (its ``max_body_size``, as FastAPI resolved it)."""
    authenticated = depends_on(route.dependant, principal)
    return RoutePolicy(authenticated=authenticated, json_body=route.body_field is not None,
                       max_body=max_body_size or DEFAULT_MAX_BODY,
                       # only behind the gate's authentication and in-flight cap
                       lean=lean if authenticated else None, route=route)


class RequestGuard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, api: FastAPI,
                 lean: Mapping[Callable[..., Any], LeanHandler] | None = None) -> None:
        self.app = app
        self.api = api
        # route endpoint -> its lean handler
        self._lean = dict(lean or {})
        self._routes: list[tuple[RouteContext, RoutePolicy]] | None = None
        # (method, path) -> policy: the route scan runs once per distinct path, not per request
        self._seen: dict[tuple[str, str], RoutePolicy | None] = {}
        # key id -> [its semaphore, requests holding or waiting]; event-loop only, no lock
        self._slots: dict[str, list[Any]] = {}

    def _policy(self, scope: Scope) -> RoutePolicy | None:
        seen_key = (str(scope.get("method", "")), str(scope.get("path", "")))
        if seen_key in self._seen:
            return self._seen[seen_key]
        policy = self._match_policy(scope)
        if len(self._seen) >= POLICY_CACHE_SIZE:
            self._seen.clear()
        self._seen[seen_key] = policy
        return policy

    def route_table(self) -> list[tuple[RouteContext, RoutePolicy]]:
        """Every API route with its policy, scanned once (each route's dependency tree walked):
        at the server's start-up (the lifespan scope passes through here first), else on the
        first request, which would otherwise pay for it (0.2-1.3 s under load)."""
        if self._routes is None:
            routes = []
            for ctx in iter_route_contexts(self.api.routes):
                route = ctx.original_route
                if isinstance(route, APIRoute):
                    limit = getattr(ctx, "max_body_size", None) or route.max_body_size
                    routes.append((ctx, route_policy(route, limit,
                                                     self._lean.get(route.endpoint))))
            self._routes = routes
        return self._routes

    def _match_policy(self, scope: Scope) -> RoutePolicy | None:
        for ctx, policy in self.route_table():
            match, _ = ctx.matches(scope)
            if match == Match.FULL:
                return policy
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                self.route_table()
            await self.app(scope, receive, send)
            return
        guard_recursion_limit()
        policy = self._policy(scope)
        if policy is None:  # 404, 405, /docs, /openapi.json: nothing reads a body there
            await self.app(scope, receive, send)
            return
        key: str | None = None
        try:
            body = await self._read_body(scope, receive, policy.max_body)
            if policy.authenticated:
                key = await self._authenticate(scope, replay_factory(body, receive))
            if body:
                self._check_json(scope, body, policy)
        except ApiError as exc:
            await problem(exc.status, exc.code, exc.detail, exc.headers,
                          **exc.extra)(scope, receive, send)
            return
        except LedgerError as exc:  # the store down while authenticating: 503, not a crash
            await ledger_response(exc)(scope, receive, send)
            return
        if key is None:
            await self.app(scope, replay_factory(body, receive), send)
            return
        # One key's burst queues here, on the event loop, for its own slots: it cannot take
        # every worker thread from the other merchants.
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = [asyncio.Semaphore(MAX_IN_FLIGHT_PER_KEY), 0]
        slot[1] += 1
        try:
            async with slot[0]:
                if policy.lean is not None and await policy.lean(self.api, scope, body, send):
                    scope["route"] = policy.route  # the metrics' route template
                    return
                await self.app(scope, replay_factory(body, receive), send)
        finally:
            slot[1] -= 1
            if not slot[1]:
                del self._slots[key]

    async def _read_body(self, scope: Scope, receive: Receive, limit: int) -> bytes:
        too_large = ApiError(413, "body-too-large",
                             f"this route takes request bodies of at most {limit} bytes",
                             max_bytes=limit)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError as exc:
                    raise ApiError(400, "bad-content-length",
                                   "Content-Length is not a number") from exc
                if declared > limit:
                    raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _authenticate(self, scope: Scope, receive: Receive) -> str:
        request = Request(scope, receive)
        alliance = self.api.state.alliance
        # Failed signatures are limited per key id and per client address: guessing a
        # secret, or hammering with garbage, soon meets 429 before any HMAC is computed.
        client = scope.get("client")
        buckets: list[tuple[RateLimiter, str]] = [
            (self.api.state.failed_auth_by_ip, client[0] if client else "-")]
        if key_id := request.headers.get("x-alliance-key"):
            buckets.append((self.api.state.failed_auth_by_key, key_id[:64]))
        for limiter, name in buckets:
            limiter.refuse_if_empty(name, "too many failed authentications")
        try:
            principal = await authenticate(request, alliance)
        except ApiError as exc:
            if exc.status == 401:
                for limiter, name in buckets:
                    limiter.spend(name)
            raise
        self.api.state.rate_limiter.check(principal.key_id)
        request.state.principal = principal
        return principal.key_id

    @staticmethod
    def _check_json(scope: Scope, body: bytes, policy: RoutePolicy) -> None:
        if not policy.json_body:
            return
        ctype = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                ctype = value.decode("latin-1").split(";")[0].strip().lower()
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise ApiError(415, "unsupported-media-type",
                           "request bodies are application/json")
        depth = json_depth(body)
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, "json-too-deep",
                           f"the body nests {depth} levels; at most {MAX_JSON_DEPTH}")


def replay_factory(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once (for a Request built before the app runs)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
