"""Faults under load, small and fast (the full run is scripts/faults.py): signed issue requests
through two API processes on PostgreSQL, an elected worker with a standby, a real anvil with a
state file. The elected worker is killed (-9), the chain node restarted from its state, then
killed (-9) and restarted from its last dump, while requests keep coming: every accepted
operation is on chain exactly once (read from the chain's PointsIssued logs, not from the
store) and no signer is left with a nonce gap."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]


def _faults() -> ModuleType:
    spec = importlib.util.spec_from_file_location("faults_script", ROOT / "scripts" / "faults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


faults = _faults()


def test_accepted_issues_land_once_across_a_worker_kill_and_chain_restarts() -> None:
    """The chain restarted cleanly, then killed with -9 (back from its last state dump, up
    to STATE_INTERVAL_S behind: the outbox re-syncs its signers)."""
    rows = faults.run(["worker-kill9", "chain-restart", "chain-kill9"], seconds_per_fault=3.0,
                      rate=8.0, clients=4, settle_s=60.0, out=print)
    table = faults.table(rows)
    assert len(rows) == 4, table
    for row in rows:
        assert row.accepted > 0, table
        assert row.lost == 0 and row.doubled == 0, table
        assert row.confirmed == row.accepted, table
        assert row.nonce_gaps == 0, table
        assert row.recovery_s < 120, table
