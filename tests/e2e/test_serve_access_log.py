"""``alliance serve --workers N`` (the production shape) writes no line per request unless
asked (``--access-log`` or ``ALLIANCE_ACCESS_LOG=1``): the line was written on the event loop
between requests, ~9% of its busy time under load, and ``/metrics`` counts requests by route
and status anyway. The real command, on the test's anvil and a SQLite store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from ledger.alliance import Alliance
from ledger.settings import Settings
from tests.conftest import ARTIFACT_CACHE
from tests.servers import free_port, stop_group, wait_until_healthy

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALLIANCE = str(ROOT / ".venv" / "bin" / "alliance")


def _serve_and_get(settings: Settings, log: Path, *extra: str, access_env: str | None,
                   workers: int = 1) -> str:
    """Run ``alliance serve --workers N *extra``, GET /health three times, stop it; its
    log."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ALLIANCE_DATA_DIR=str(settings.data_dir),
               ALLIANCE_RPC_URL=str(settings.rpc_url), ALLIANCE_CHAIN_ID="31337",
               ALLIANCE_ARTIFACTS_DIR=str(ARTIFACT_CACHE), COLUMNS="200")
    env.pop("ALLIANCE_ACCESS_LOG", None)
    if access_env is not None:
        env["ALLIANCE_ACCESS_LOG"] = access_env
    with log.open("wb") as out:
        proc = subprocess.Popen([ALLIANCE, "serve", "--workers", str(workers), "--port",
                                 str(port),
                                 *extra], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_healthy(url, proc, log, timeout_s=120)
        for _ in range(3):
            assert httpx.get(url + "/health", timeout=30).status_code == 200
        if workers == 1:  # (several processes: each counts its own)
            metrics = httpx.get(url + "/metrics", timeout=30).text
            # The requests are counted whether or not they are logged.
            assert 'route="/health",status="200"} 3.0' in metrics, metrics
    finally:
        stop_group(proc)
    return log.read_text(errors="replace")


def test_serve_with_workers_writes_no_line_per_request_unless_asked(
        settings: Settings, tmp_path: Path) -> None:
    Alliance.open(settings).close()  # migrate and deploy once, as an operator would
    quiet = _serve_and_get(settings, tmp_path / "quiet.log", access_env=None)
    assert "Application startup complete" in quiet, quiet
    assert '"GET /health HTTP/1.1" 200' not in quiet, quiet
    by_flag = _serve_and_get(settings, tmp_path / "flag.log", "--access-log", access_env=None)
    assert by_flag.count('"GET /health HTTP/1.1" 200') == 3, by_flag
    by_env = _serve_and_get(settings, tmp_path / "env.log", access_env="1")
    assert by_env.count('"GET /health HTTP/1.1" 200') == 3, by_env


def test_serve_with_processes_on_their_own_sockets_logs_requests_only_when_asked(
        settings: Settings, tmp_path: Path) -> None:
    # --workers 2: the processes of ledger/serving.py's supervisor get the same option
    Alliance.open(settings).close()
    quiet = _serve_and_get(settings, tmp_path / "quiet.log", access_env=None, workers=2)
    assert quiet.count("Application startup complete") == 2, quiet
    assert '"GET /health HTTP/1.1" 200' not in quiet, quiet
    by_flag = _serve_and_get(settings, tmp_path / "flag.log", "--access-log", access_env=None,
                             workers=2)
    assert by_flag.count('"GET /health HTTP/1.1" 200') == 3, by_flag
