"""The FastAPI application: routers, error mapping, and the background workers' lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ledger.alliance import Alliance
from ledger.health import state_samples
from ledger.logs import configure as configure_logs
from ledger.metrics import install_state
from ledger.runtime import Runtime, settle_heap
from ledger.settings import IndexerMode, get_settings

from . import docs, errors, openapi
from .guard import RequestGuard, guard_recursion_limit
from .metrics import MetricsMiddleware
from .ratelimit import RateLimiter
from .routes import (
    admin,
    app_gifts,
    app_standing,
    audit,
    clearing,
    console,
    coupons,
    items,
    members,
    memberships,
    merchants,
    offers,
    operations,
    ops,
    points,
    public,
    webhooks,
)
from .routes import app as member_app

# Failed authentications allowed per minute per key id, and per client address (higher:
# several merchants' tills may share one address behind a NAT). Past them: 429.
FAILED_AUTH_PER_MINUTE = 30
FAILED_AUTH_PER_MINUTE_PER_ADDRESS = 300

DESCRIPTION = """A loyalty ledger for an alliance of retail merchants.

Every request is signed with your credentials (HMAC-SHA256; see README), and every POST
carries an `Idempotency-Key`. Errors are RFC 9457 `application/problem+json` with a stable
`code`.
"""


def create_app(alliance: Alliance, *, run_workers: bool = True,
               indexer_mode: IndexerMode = "thread") -> FastAPI:
    """The API on an opened alliance; the outbox worker runs while the app does (the indexer
    as ``indexer_mode`` says: ``alliance up|serve`` pass the settings' mode)."""

    runtime = Runtime(alliance, indexer_mode=indexer_mode)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_workers:
            runtime.start()  # settles the heap before its workers start
        else:
            # An API-only process (``alliance serve``: the workers run in ``alliance worker``)
            # settles its heap too: without it every full collection walked all of it, up to
            # 0.9 s holding the GIL under load (gc.callbacks in the API processes of
            # scripts/bench_http.py), and every request of the process waited.
            settle_heap()
        try:
            yield
        finally:
            runtime.stop()

    # Every import is done by now, and a dependency may have lifted the recursion limit (py_ecc
    # does, to 100000, on import): put it back; the guard checks it again on every request.
    guard_recursion_limit()
    # FastAPI's own OpenTelemetry is off: the service's telemetry is /metrics (Prometheus)
    # and its logs, and with it on FastAPI looked the providers up on every request (~5 us
    # each, /health's too) to find none configured.
    app = FastAPI(title="Alliance Ledger", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False,
                             "operation_spans": False})
    docs.install(app)
    app.state.alliance = alliance
    app.state.runtime = runtime
    install_state(lambda: state_samples(alliance, runtime))
    app.state.rate_limiter = RateLimiter(alliance.settings.rate_limit_per_minute)
    app.state.failed_auth_by_key = RateLimiter(FAILED_AUTH_PER_MINUTE)
    app.state.failed_auth_by_ip = RateLimiter(FAILED_AUTH_PER_MINUTE_PER_ADDRESS)
    # PostgreSQL: a signed issue's common case answered without FastAPI's routing (see there)
    app.add_middleware(RequestGuard, api=app, lean={points.issue: points.issue_lean})
    app.state.public_rate_limiter = RateLimiter(alliance.settings.public_rate_limit_per_minute)
    app.add_middleware(MetricsMiddleware, api=app)  # outermost: counts the guard's refusals
    errors.install(app)
    openapi.install(app)
    for r in (points.router, operations.router, members.router, merchants.router,
              clearing.router, admin.router, clearing.admin_router, public.router, ops.router,
              audit.router, audit.admin_router,
              members.app_router, member_app.router, member_app.merchant_router,
              member_app.coupon_code_router, member_app.consent_router,
              app_gifts.router, app_standing.router,
              items.router, items.public_router, items.scan_router, items.member_router,
              coupons.router, coupons.public_router,
              console.router, console.api_router,
              offers.router,
              webhooks.router,
              memberships.router,
              ):
        app.include_router(r)

    @app.get("/healthz", tags=["public"])
    def healthz() -> dict[str, object]:
        """The service answers and reaches its chain."""
        return {"ok": True, "chain_id": alliance.gateway.chain_id,
                "block": alliance.gateway.block_number(),
                "registry": alliance.contracts.deployment.registry}

    return app


def create_default_app() -> FastAPI:
    """The app from the environment's settings (``uvicorn --factory`` entry point)."""
    configure_logs(get_settings().log_format)
    return create_app(Alliance.open(get_settings()), indexer_mode=get_settings().indexer_mode)


def create_api_only_app() -> FastAPI:
    """The app without background workers (``alliance serve --workers N``: the workers run
    in the elected ``alliance worker`` process)."""
    configure_logs(get_settings().log_format)
    return create_app(Alliance.open(get_settings()), run_workers=False)
