"""The audit over HTTP: auditors (and the operator) read the chain audit's JSON and HTML
reports; the operator reads the drift report of the service's store against the chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse

from ledger.audit import service as audit
from ledger.audit.report import render_html

from ..auth import Principal
from ..deps import AdminDep, AllianceDep, principal
from ..errors import ApiError


async def auditor(p: Annotated[Principal, Depends(principal)]) -> Principal:
    """Auditor or operator credentials: the reports are read-only."""
    if p.role not in (audit.AUDITOR_ROLE, "admin"):
        raise ApiError(403, "forbidden", "this route is for auditor or operator credentials")
    return p


AuditorDep = Annotated[Principal, Depends(auditor)]

router = APIRouter(prefix="/v1/audit", tags=["audit"])
admin_router = APIRouter(prefix="/v1/admin/audit", tags=["audit"])


@router.get("/report", response_model=dict[str, Any])
def report_json(alliance: AllianceDep, who: AuditorDep) -> dict[str, Any]:
    """The chain audit at the current head: every number rebuilt from the chain's logs alone,
    compared with the contracts' views, the invariants checked (``clean``, ``findings``).
    The same document as ``alliance audit --json``."""
    return audit.chain_audit(alliance).as_dict()


@router.get("/report.html", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {}}}})
def report_html(alliance: AllianceDep, who: AuditorDep) -> HTMLResponse:
    """The same audit as a self-contained HTML page (charts inlined; no network to view)."""
    return HTMLResponse(render_html(audit.chain_audit(alliance)))


@admin_router.get("/drift", response_model=dict[str, Any])
def drift(alliance: AllianceDep, who: AdminDep) -> dict[str, Any]:
    """The service's store against the chain: merchants, indexed point events and cleared
    acts up to each indexer cursor. ``clean`` false: the store says something the chain
    does not."""
    return audit.store_drift(alliance).as_dict()
