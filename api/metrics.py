"""The ASGI middleware that counts every HTTP request by route template and status and times
it (``alliance_http_requests_total``, ``alliance_http_request_duration_seconds``).

The route is the template (``/v1/operations/{operation_id}``), never the raw path, so the
label set stays bounded whatever clients send; a request refused before routing (the guard's
401/413/429) is matched against the routes here, and anything unknown counts as
``unmatched``. Outermost, so the guard's refusals are counted too.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.metrics import HTTP_LATENCY, HTTP_REQUESTS

# Distinct (method, route, status) whose labelled metrics are kept at hand (cleared when full)
CHILDREN_CACHE_SIZE = 1024


class MetricsMiddleware:
    """Counts and times requests (see the module docstring)."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._routes: list[RouteContext] | None = None
        # (method, route, status) -> the counter's and the histogram's labelled children:
        # ``labels()`` validates and joins its label values on every call (~2 us a request)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        if self._routes is None:
            self._routes = list(iter_route_contexts(self.api.routes))
        for ctx in self._routes:
            match, _ = ctx.matches(scope)
            if match == Match.FULL:
                return str(getattr(ctx.original_route, "path", "unmatched"))
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = self._template(scope)
            method = str(scope.get("method", ""))
            children = self._children.get((method, route, status))
            if children is None:
                if len(self._children) >= CHILDREN_CACHE_SIZE:
                    self._children.clear()
                children = self._children[(method, route, status)] = (
                    HTTP_REQUESTS.labels(method, route, str(status)),
                    HTTP_LATENCY.labels(method, route))
            children[0].inc()
            children[1].observe(time.perf_counter() - t0)
