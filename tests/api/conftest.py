"""API fixtures: the real app on a real alliance (session anvil, SQLite), with merchants."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.client import AllianceClient
from ledger.alliance import Alliance
from ledger.merchants import repos as merchant_repos
from ledger.merchants.service import AdmittedMerchant, admit_merchant, create_admin_credential
from ledger.settings import Settings
from tests import templates
from tests.ledger.conftest import fresh_pg_database
from tests.pg import postgres_server
from tests.servers import free_port, wait_until_healthy

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ApiEnv:
    alliance: Alliance
    http: TestClient
    store: AllianceClient
    cafe: AllianceClient
    admin: AllianceClient
    store_merchant: AdmittedMerchant
    cafe_merchant: AdmittedMerchant


def _admit_two_and_an_admin(
        alliance: Alliance) -> tuple[AdmittedMerchant, AdmittedMerchant, str, str]:
    store = admit_merchant(alliance, name="Grand Plaza Department Store", symbol="GPDS", rate=1)
    cafe = admit_merchant(alliance, name="Corner Cafe", symbol="CAFE", rate=2)
    admin_id, admin_secret = create_admin_credential(alliance)
    return store, cafe, admin_id, admin_secret


def make_env(settings: Settings, *, run_workers: bool = True) -> Iterator[ApiEnv]:
    """The app on an alliance with two admitted merchants and an admin credential (from the
    session's template of these settings when the data dir is fresh: tests/templates.py)."""
    if templates.usable(settings):
        alliance, built = templates.open_from_template(settings, "api-env",
                                                       _admit_two_and_an_admin)
        store, cafe, admin_id, admin_secret = built
    else:
        alliance = Alliance.open(settings)
        store, cafe, admin_id, admin_secret = _admit_two_and_an_admin(alliance)
    app = create_app(alliance, run_workers=run_workers)
    with TestClient(app) as http:
        yield ApiEnv(alliance, http, AllianceClient(http, store.key_id, store.secret),
                     AllianceClient(http, cafe.key_id, cafe.secret),
                     AllianceClient(http, admin_id, admin_secret), store, cafe)
    alliance.close()


def refused_while_suspended(env: ApiEnv, path: str, body: object, *, key: str) -> None:
    """Suspend the store merchant, see ``body`` at ``path`` (under Idempotency-Key ``key``)
    refused with 403 ``merchant-suspended``, then make the merchant active again."""
    mid = env.store_merchant.merchant_id
    with env.alliance.store.session() as s:
        merchant_repos.set_merchant_status(s, mid, "suspended")
    r = env.store.post(path, body, idempotency_key=key)
    assert r.status_code == 403 and r.json()["code"] == "merchant-suspended", r.text
    with env.alliance.store.session() as s:
        merchant_repos.set_merchant_status(s, mid, "active")


def poll_until(read: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 60) -> T:
    """``read()`` every 0.1 s until ``done`` says yes or ``timeout_s`` has passed; gives the
    last value read (the caller's assertion says what was expected)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for a module's tests (tests.pg)."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def pg_env(pg_server: str, settings: Settings) -> Iterator[ApiEnv]:
    """The API on a fresh database of ``pg_server``, with no background workers: every round
    trip to the database is the requests' own."""
    url = fresh_pg_database(pg_server)
    yield from make_env(settings.model_copy(update={"database_url": url}), run_workers=False)


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings)


@dataclass
class LiveServer:
    """A real uvicorn process serving the API (a crash there is a dead process, not an
    exception in the test)."""

    url: str
    proc: subprocess.Popen[bytes]
    merchant: AdmittedMerchant
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None


# The server is started by this script: it imports py_ecc first (as web3 does), checks that
# py_ecc lifted the recursion limit, and only then builds the app, so the test proves the app
# guards a process in exactly the state the outside probe crashed.
_SERVER_SCRIPT = """
import sys
import py_ecc.optimized_bn128  # noqa: F401  (raises sys.setrecursionlimit to 100000)
import web3  # noqa: F401
assert sys.getrecursionlimit() >= 100000, sys.getrecursionlimit()
import uvicorn
uvicorn.run("api.app:create_default_app", factory=True, host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning")
"""


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    alliance = Alliance.open(settings)
    m = admit_merchant(alliance, name="Live Store", symbol="LIVE", rate=1)
    alliance.close()
    port = free_port()
    env = dict(os.environ, ALLIANCE_DATA_DIR=str(settings.data_dir),
               ALLIANCE_RPC_URL=str(settings.rpc_url), ALLIANCE_CHAIN_ID="31337",
               ALLIANCE_ARTIFACTS_DIR=str(settings.artifacts_dir))
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", _SERVER_SCRIPT, str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, log, timeout_s=60)
        yield LiveServer(url, proc, m, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
