"""The one mapping of errors to HTTP: RFC 9457 problem+json with a stable ``code``.

Every ledger error becomes a problem whose ``type`` ends in its code; a contract revert's
code is the Solidity custom error's name (``PointsOrderRefUsed``) with its arguments.

=========================  ======  ==========================================================
ledger error               status  notes
=========================  ======  ==========================================================
ContractRevertError        409     ``code`` is the Solidity error's name, ``args`` its values
LedgerValidationError      422     ``field`` / ``index`` say which input
LedgerNotFoundError        404
LedgerPermissionError      403
LedgerConflictError        409
LedgerGoneError            410     an expired one-time code
LedgerRateLimitedError     429     too many requests for one thing
ChainError                 503     ``Retry-After``; ``chain-unavailable`` when unreachable
StoreUnavailableError      503     ``Retry-After``: the database is down or locked
LedgerIntegrityError       500     ``integrity-error``; the detail stays in the log
LedgerConfigError, others  500
=========================  ======  ==========================================================
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.errors import (
    ChainError,
    ChainUnavailableError,
    ContractRevertError,
    LedgerConfigError,
    LedgerConflictError,
    LedgerError,
    LedgerGoneError,
    LedgerIntegrityError,
    LedgerNotFoundError,
    LedgerPermissionError,
    LedgerRateLimitedError,
    LedgerValidationError,
    StoreUnavailableError,
)

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://alliance-ledger.example/problems/"
PROBLEM_JSON = "application/problem+json"

STATUS_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                 405: "Method Not Allowed", 409: "Conflict", 410: "Gone", 413: "Content Too Large",
                 422: "Unprocessable Content", 429: "Too Many Requests",
                 500: "Internal Server Error", 503: "Service Unavailable"}
# Seconds a client waits before retrying a 503 (the chain node or the database was
# unreachable: a restart or a lock holder typically clears within seconds).
RETRY_AFTER_S = 5
# Errors whose message names internals (the RPC URL, which may carry a provider's key; the
# store's records): logged whole, answered with a fixed detail.
HIDDEN_DETAIL: dict[type[LedgerError], tuple[int, str]] = {
    LedgerIntegrityError: (logging.ERROR,
                           "the ledger's records are inconsistent; the error is logged"),
    ChainUnavailableError: (logging.WARNING, "the chain node cannot be reached; retry later"),
}


class ApiError(Exception):
    """An HTTP-level refusal raised by the API itself (auth, rate limit, idempotency)."""

    def __init__(self, status: int, code: str, detail: str,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM_BASE + code, "title": STATUS_TITLES.get(status,
                                                                                  "Error"),
                            "status": status, "detail": detail, "code": code}
    body.update({k: _jsonable(v) for k, v in extra.items()})
    return body


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    return JSONResponse(problem_body(status, code, detail, **extra), status_code=status,
                        media_type=PROBLEM_JSON, headers=headers)


def ledger_error_status(exc: LedgerError) -> tuple[int, str, dict[str, Any]]:
    """(HTTP status, code, extra members) of a ledger error."""
    if isinstance(exc, ContractRevertError):
        return 409, exc.name, {"args": list(exc.args_)}
    if isinstance(exc, LedgerValidationError):
        return 422, exc.code, {k: v for k, v in exc.details.items() if k in {"field", "index"}}
    if isinstance(exc, LedgerNotFoundError):
        return 404, exc.code, {}
    if isinstance(exc, LedgerPermissionError):
        return 403, exc.code, {}
    if isinstance(exc, LedgerConflictError):
        return 409, exc.code, {}
    if isinstance(exc, LedgerGoneError):
        return 410, exc.code, {}
    if isinstance(exc, LedgerRateLimitedError):
        return 429, exc.code, {}
    if isinstance(exc, ChainError | StoreUnavailableError):
        return 503, exc.code, {}
    if isinstance(exc, LedgerConfigError):
        return 500, exc.code, {}
    return 500, exc.code, {}


def ledger_problem(exc: LedgerError) -> tuple[int, dict[str, Any]]:
    """(HTTP status, problem body) of a ledger error. One whose message names internals
    (:data:`HIDDEN_DETAIL`) is logged whole and answered with a fixed detail."""
    status, code, extra = ledger_error_status(exc)
    detail = exc.message
    for cls, (level, hidden) in HIDDEN_DETAIL.items():
        if isinstance(exc, cls):
            log.log(level, "%s: %s", exc.code, exc.message, exc_info=exc)
            detail = hidden
    return status, problem_body(status, code, detail, **extra)


def ledger_response(exc: LedgerError) -> JSONResponse:
    """The problem+json response of a ledger error (``Retry-After`` on a 503)."""
    status, body = ledger_problem(exc)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON,
                        headers=problem_headers(status))


def problem_headers(status: int) -> dict[str, str]:
    """The headers a problem response of ``status`` carries (``Retry-After`` on a 503)."""
    return {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, int) and abs(v) >= 2**53:
        return str(v)  # beyond what JSON numbers carry exactly in every client
    return v


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    @app.exception_handler(LedgerError)
    async def _ledger(_: Request, exc: LedgerError) -> JSONResponse:
        return ledger_response(exc)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"),
                   "type": e.get("type")} for e in exc.errors()]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem(400, "malformed-json", "the request body is not valid JSON",
                           errors=errors)
        return problem(422, "validation-error", "the request does not match its schema",
                       errors=json.loads(json.dumps(errors, default=str)))

    @app.exception_handler(OperationalError)
    async def _store_down(request: Request, exc: OperationalError) -> JSONResponse:
        # The store maps its own sessions' errors to StoreUnavailableError; this catches one
        # met outside a session (a connection taken straight from the engine).
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path,
                    exc.orig)
        return problem(503, StoreUnavailableError.code,
                       "the database cannot answer now; retry later", problem_headers(503))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        # Anything not mapped above is a defect: log it whole, answer problem+json (never a
        # plain-text trace), and say nothing of the internals.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal-error", "the service failed; the error is logged")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem(exc.status_code, code, str(exc.detail))
