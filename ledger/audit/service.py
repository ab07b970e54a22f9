"""The audit as the service offers it (the API and the operator's CLI): auditor credentials,
the chain audit of the service's own alliance (cached per head block), the drift report.

This module opens the store (credentials), so, like :mod:`ledger.audit.drift`, it is not part
of the chain audit, which never does (``tests/test_import_graph.py`` holds that line).
"""

from __future__ import annotations

import threading

from ..alliance import Alliance
from ..store import repos
from .drift import DriftReport, drift_report
from .engine import AuditReport, run_audit

AUDITOR_ROLE = "auditor"

_lock = threading.Lock()
_last: dict[tuple[str, int], AuditReport] = {}


def create_auditor_credential(alliance: Alliance) -> tuple[str, str]:
    """New auditor credentials (read-only access to the audit reports): (key id, secret),
    the secret shown once."""
    with alliance.store.session() as s:
        return repos.create_credential(s, alliance.master_key, merchant_id=None,
                                       role=AUDITOR_ROLE)


def chain_audit(alliance: Alliance) -> AuditReport:
    """The chain audit of this alliance at the current head, from the chain alone (one run
    per head block; concurrent callers wait for it instead of running their own)."""
    registry = alliance.contracts.registry.address.lower()
    with _lock:
        head = alliance.gateway.block_number()
        hit = _last.get((registry, head))
        if hit is None:
            items = alliance.contracts.items
            hit = run_audit(alliance.gateway, alliance.contracts.artifacts, registry=registry,
                            from_block=0, head=head,
                            items=items.address if items is not None else None)
            _last.clear()
            _last[(registry, head)] = hit
        return hit


def store_drift(alliance: Alliance) -> DriftReport:
    """The service's store against the chain (see :mod:`ledger.audit.drift`)."""
    return drift_report(alliance)
