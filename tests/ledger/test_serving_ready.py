"""``/ready`` of every API process of ``alliance serve --workers 2`` says not ready, with the
reason, while a stranger's socket listens on the port (the supervisor's check, shared with the
processes), and ready again once it is gone. The real command, on the test's anvil and a
SQLite store, and a real stranger socket."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ledger.alliance import Alliance
from ledger.serving import own_sockets_supported
from ledger.settings import Settings
from tests.conftest import ARTIFACT_CACHE
from tests.servers import free_port, stop_group, wait_until_healthy

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not own_sockets_supported(), reason="Linux's SO_REUSEPORT")]

ROOT = Path(__file__).resolve().parents[2]
ALLIANCE = str(ROOT / ".venv" / "bin" / "alliance")


def _ready_answers(url: str, n: int) -> list[httpx.Response]:
    """``/ready`` on ``n`` new connections; those the stranger's socket took (never
    accepted) time out and are left out."""
    out = []
    for _ in range(n):
        try:
            out.append(httpx.get(url + "/ready", timeout=1.5))
        except httpx.TimeoutException:
            pass
    return out


def test_ready_of_every_api_process_says_not_ready_while_a_stranger_listens_on_the_port(
        settings: Settings, tmp_path: Path) -> None:
    Alliance.open(settings).close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = dict(os.environ, ALLIANCE_DATA_DIR=str(settings.data_dir),
               ALLIANCE_RPC_URL=str(settings.rpc_url), ALLIANCE_CHAIN_ID="31337",
               ALLIANCE_ARTIFACTS_DIR=str(ARTIFACT_CACHE), COLUMNS="200")
    with log.open("wb") as out:
        proc = subprocess.Popen([ALLIANCE, "serve", "--workers", "2", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until_healthy(url, proc, log, timeout_s=120)
        time.sleep(2)  # both processes serving
        before = _ready_answers(url, 10)
        assert len(before) == 10 and {r.status_code for r in before} == {200}, before[0].text
        assert before[0].json()["checks"]["port"] == {"ok": True}
        with socket.socket() as stranger:  # another program of the same user joins the group
            stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            stranger.bind(("127.0.0.1", port))
            stranger.listen()
            deadline = time.monotonic() + 60  # two of the supervisor's checks, 10 s apart
            while "a socket not ours listens" not in log.read_text(errors="replace"):
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.5)
            during = _ready_answers(url, 18)
            # ~2/3 reach our two processes: every one of them says not ready, and why
            assert len(during) >= 6, len(during)
            for r in during:
                assert r.status_code == 503, r.text
                port_check = r.json()["checks"]["port"]
                assert port_check["ok"] is False
                assert f"a socket not ours listens on port {port}" in port_check["stranger"]
                assert r.json()["checks"]["chain"]["ok"] and r.json()["checks"]["store"]["ok"]
        deadline = time.monotonic() + 60
        while "no longer listens" not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        after = _ready_answers(url, 10)
        assert len(after) == 10 and {r.status_code for r in after} == {200}
    finally:
        stop_group(proc)
