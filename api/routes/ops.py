"""Operations endpoints for orchestrators and Prometheus: ``/health`` (liveness: the process
answers; no I/O), ``/ready`` (chain, store, workers, signers, and under ``alliance serve
--workers N`` the port; 503 with the failing checks) and ``/metrics`` (Prometheus text
format). No credentials: bind the API to a private interface or
keep these paths behind the proxy; they show counts and states, never secrets or URLs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ledger.health import readiness
from ledger.metrics import REGISTRY

router = APIRouter(include_in_schema=False)


@router.get("/health")
def health() -> dict[str, Any]:
    """Liveness: the process serves requests (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/ready")
def ready(request: Request) -> JSONResponse:
    """Readiness: 200 if every check passes, else 503; each check with what it saw."""
    state = readiness(request.app.state.alliance, request.app.state.runtime)
    body = {"ready": state.ready,
            "checks": {name: {"ok": c.ok, **c.detail} for name, c in state.checks.items()}}
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/metrics")
def metrics() -> Response:
    """Every metric of this process, in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
