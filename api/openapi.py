"""The OpenAPI document, completed from what the gate and the error mapping really do.

FastAPI documents a route's success response and a 422 in its own shape. Every route here
also answers RFC 9457 ``application/problem+json`` for the refusals of :mod:`api.guard`,
:mod:`api.auth`, :mod:`api.idempotency` and :mod:`api.errors`; this module adds them to every
operation from the same route facts the gate uses (authenticated or not, JSON body or not),
so a new route is documented as it behaves without writing anything per route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from .deps import queueing, raw_body
from .errors import PROBLEM_JSON, STATUS_TITLES
from .guard import DEFAULT_MAX_BODY, MAX_JSON_DEPTH, depends_on, route_policy
from .idempotency import MAX_KEY_LENGTH

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; ``code`` is stable, ``type`` ends with it.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string"},
    },
    "additionalProperties": True,
}

AUTH_HEADERS = {
    "AllianceKey": ("X-Alliance-Key", "your key id"),
    "AllianceTimestamp": ("X-Alliance-Timestamp", "unix seconds of the request"),
    "AllianceNonce": ("X-Alliance-Nonce", "a fresh random string, 8-64 characters"),
    "AllianceSignature": ("X-Alliance-Signature", "hex HMAC-SHA256 over ts, nonce, method, "
                                                  "path?query and sha256(body); see README"),
}

WHY = {
    400: "malformed JSON, a body nested too deep, or a missing/invalid Idempotency-Key",
    401: "missing, stale, wrong or replayed signature, or an unknown or revoked key",
    403: "these credentials may not do this (another role, another merchant's thing, or a "
         "suspended merchant acting)",
    404: "no such thing",
    409: "the Idempotency-Key was used with another body or is still running, or the "
         "contract refused (``code`` names the Solidity error)",
    413: "the body is larger than this route takes",
    415: "the body is not application/json",
    422: "the request does not match its schema, or the ledger refused its values",
    429: "too many requests (or failed authentications) for this key or address; see "
         "Retry-After",
    500: "a defect; logged",
    503: "the chain could not be reached",
}


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": f"{STATUS_TITLES.get(status, 'Error')}: {WHY[status]}",
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if status == 429:
        response["headers"] = {"Retry-After": {"description": "seconds to wait",
                                               "schema": {"type": "integer", "minimum": 1}}}
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return response


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` give the completed document."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete(app, generate())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def complete(app: FastAPI, spec: dict[str, Any]) -> None:
    """Add the problem responses, security and Idempotency-Key to every operation."""
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {
        name: {"type": "apiKey", "in": "header", "name": header, "description": text}
        for name, (header, text) in AUTH_HEADERS.items()}
    for schema_name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(schema_name, None)
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        path = ctx.path_format or route.path_format
        policy = route_policy(route, getattr(ctx, "max_body_size", None) or route.max_body_size)
        for method in route.methods or ():
            op = spec.get("paths", {}).get(path, {}).get(method.lower())
            if op is None:
                continue
            statuses = [400, 404, 409, 422, 500, 503]
            if policy.authenticated:
                statuses += [401, 403, 429]
                op["security"] = [{name: [] for name in AUTH_HEADERS}]
            if policy.json_body:
                statuses += [413, 415]
                op.setdefault("x-max-body-bytes", policy.max_body)
            responses = op.setdefault("responses", {})
            for status in sorted(statuses):
                responses[str(status)] = _problem(status)
            # Routes that read their raw body run through run_idempotent (the body is the
            # key's fingerprint): ``raw_body``, or ``queueing``, which carries it.
            if method == "POST" and (depends_on(route.dependant, raw_body)
                                     or depends_on(route.dependant, queueing)):
                op.setdefault("parameters", []).append({
                    "name": "Idempotency-Key", "in": "header", "required": True,
                    "description": "any unique string per request; a retry with the same key "
                                   "and body replays the first response (24 h)",
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
                               "pattern": "^[A-Za-z0-9._:-]+$"}})
    info = spec.setdefault("info", {})
    info["description"] = (info.get("description", "") + f"\n\nBodies are at most "
                           f"{DEFAULT_MAX_BODY // 1024} KiB unless an operation says more "
                           f"(`x-max-body-bytes`), nested at most {MAX_JSON_DEPTH} deep.")
