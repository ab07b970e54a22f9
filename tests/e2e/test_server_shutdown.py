"""A stopping service does not wait for its open figure streams: ``alliance serve`` (the
real command, its workers in it, on the test's anvil and a SQLite store) with a console
stream open stops within seconds of SIGTERM. A stream stays open up to 30 s, and a supervisor
(systemd, Kubernetes) that waits 30 s kills the service before it has stopped its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from api.client import sign_request
from ledger.alliance import Alliance
from ledger.cli import SHUTDOWN_GRACE_S
from ledger.merchants.service import admit_merchant
from ledger.settings import Settings
from tests.conftest import ARTIFACT_CACHE
from tests.servers import free_port, wait_until_healthy

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALLIANCE = str(ROOT / ".venv" / "bin" / "alliance")
SESSION = "/console/api/session"
STREAM = "/console/api/figures/stream"


def test_a_server_with_a_figure_stream_open_stops_within_seconds_of_sigterm(
        settings: Settings, tmp_path: Path) -> None:
    alliance = Alliance.open(settings)
    store = admit_merchant(alliance, name="Shutdown Store", symbol="SHUT", rate=1)
    alliance.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ALLIANCE_DATA_DIR=str(settings.data_dir),
               ALLIANCE_RPC_URL=str(settings.rpc_url), ALLIANCE_CHAIN_ID="31337",
               ALLIANCE_ARTIFACTS_DIR=str(ARTIFACT_CACHE), COLUMNS="200")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([ALLIANCE, "serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_healthy(url, proc, log, timeout_s=120)
        h = sign_request(store.key_id, store.secret, "POST", SESSION, b"{}")
        r = httpx.post(url + SESSION, content=b"{}", timeout=30, headers={
            **h, "Content-Type": "application/json", "X-Console": "1"})
        assert r.status_code == 200, r.text
        cookie = {"Cookie": f"alliance_console={r.cookies['alliance_console']}"}
        with httpx.Client(timeout=60) as http, http.stream("GET", url + STREAM,
                                                           headers=cookie) as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert any(line.startswith("data:") for line in lines)
            os.killpg(proc.pid, signal.SIGTERM)
            stopping = time.monotonic()
            # The open stream is cut, then the process stops its workers and exits.
            try:
                for _ in lines:
                    pass
            except httpx.HTTPError:
                pass  # cut mid-chunk: the same for a browser, which reconnects elsewhere
            proc.wait(60)
            took = time.monotonic() - stopping
        # The stream alone would hold it for up to 30 s; the grace is SHUTDOWN_GRACE_S.
        assert took < SHUTDOWN_GRACE_S + 12, (took, log.read_text(errors="replace"))
        # A clean stop: the app's shutdown ran (its workers stopped); uvicorn then re-raises
        # the signal it caught, so the exit status is SIGTERM's.
        text = log.read_text(errors="replace")
        assert proc.returncode in (0, -signal.SIGTERM), text
        assert "Application shutdown complete" in text and "Traceback" not in text, text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
