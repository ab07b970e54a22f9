"""The production shape, small: two API processes (``alliance serve --workers 2``) and an
elected worker (``alliance worker``, a second one standing by) on PostgreSQL, on a real anvil.
Concurrent requests through both API processes, admissions included (the admin and operator
keys are then used by both processes at once): every operation lands exactly once, every
signer's nonces are contiguous, and when the elected worker is killed (-9) the standby takes
over and goes on from the same nonces."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from sqlalchemy import create_engine, func, select, text

from api.client import AllianceClient
from ledger.alliance import Alliance
from ledger.merchants.service import AdmittedMerchant, admit_merchant, create_admin_credential
from ledger.settings import Settings
from ledger.store.models import ChainTx, ChainTxOperation, Operation, SignerNonce
from tests.conftest import ARTIFACT_CACHE
from tests.pg import postgres_server
from tests.servers import free_port, wait_until_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
ALLIANCE = str(ROOT / ".venv" / "bin" / "alliance")


@pytest.fixture(scope="module")
def pg_base() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def _until(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Procs:
    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env, self.tmp, self.procs = env, tmp, dict[str, subprocess.Popen[bytes]]()

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("wb") as out:
            p = subprocess.Popen([ALLIANCE, *args], cwd=ROOT, env=self.env, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        p = self.procs.pop(name)
        if p.poll() is None:
            os.killpg(p.pid, sig)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _children(pid: int) -> list[int]:
    # (each thread's: the indexer's process is started by a thread of the runtime)
    return [int(x) for task in Path(f"/proc/{pid}/task").iterdir()
            for x in (task / "children").read_text().split()]


def test_two_api_processes_and_an_elected_worker_send_everything_once(
        anvil_url: str, pg_base: str, tmp_path: Path) -> None:
    db = pg_base.rsplit("/", 1)[0] + "/" + f"procs{os.getpid()}"
    eng = create_engine(pg_base, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS procs{os.getpid()}"))
        c.execute(text(f"CREATE DATABASE procs{os.getpid()}"))
    eng.dispose()
    settings = Settings(data_dir=tmp_path / "data", rpc_url=anvil_url, chain_id=31337,
                        artifacts_dir=ARTIFACT_CACHE, database_url=db)
    a = Alliance.open(settings)
    merchants: list[AdmittedMerchant] = [
        admit_merchant(a, name="Proc Store", symbol="PST", rate=1),
        admit_merchant(a, name="Proc Cafe", symbol="PCF", rate=2)]
    admin_id, admin_secret = create_admin_credential(a)
    env = dict(os.environ, ALLIANCE_DATA_DIR=str(settings.data_dir),
               ALLIANCE_RPC_URL=anvil_url, ALLIANCE_CHAIN_ID="31337",
               ALLIANCE_ARTIFACTS_DIR=str(ARTIFACT_CACHE), ALLIANCE_DATABASE_URL=db,
               COLUMNS="200")
    procs = Procs(env, tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        metrics_port = free_port()
        # worker a below the API's OS priority, its indexer's child process too
        wa = procs.start("worker-a", "worker", "--metrics-port", str(metrics_port),
                         "--nice", "5")
        _until(lambda: "workers running" in procs.log("worker-a"), "worker a")
        _until(lambda: bool(_children(wa.pid)), "worker a's indexer process")
        assert {_niceness(p) for p in [wa.pid, *_children(wa.pid)]} == {os.nice(0) + 5}
        procs.start("worker-b", "worker")
        _until(lambda: "standing by" in procs.log("worker-b"), "worker b to stand by")
        api = procs.start("api", "serve", "--workers", "2", "--port", str(port))
        wait_until_healthy(url, api, tmp_path / "api.log", timeout_s=90)
        # Each API process listens on a socket of its own (SO_REUSEPORT): a second server
        # on the same port is refused, not let in to share it.
        second = procs.start("api-2", "serve", "--workers", "2", "--port", str(port))
        assert second.wait(120) != 0
        assert "is served by another alliance serve" in procs.log("api-2"), procs.log("api-2")
        procs.procs.pop("api-2")

        members = [Account.create().address for _ in range(4)]

        def issue(i: int) -> int:
            m = merchants[i % 2]
            with httpx.Client(base_url=url, timeout=60) as http:
                r = AllianceClient(http, m.key_id, m.secret).post(
                    "/v1/points/issue", {"member": members[i % 4], "points": 1 + i % 7,
                                         "order_id": f"P-{i}"})
            assert r.status_code == 202, r.text
            return 1 + i % 7

        def admit(i: int) -> int:
            with httpx.Client(base_url=url, timeout=120) as http:
                r = AllianceClient(http, admin_id, admin_secret).post(
                    "/v1/admin/merchants", {"name": f"Concurrent {i}", "symbol": f"CC{i}",
                                            "rate": 1})
            assert r.status_code == 201, r.text
            return 0

        with ThreadPoolExecutor(16) as pool:
            jobs = [pool.submit(issue, i) for i in range(60)]
            jobs += [pool.submit(admit, i) for i in range(4)]
            issued = sum(j.result() for j in jobs)

        def all_confirmed() -> bool:
            with a.store.read_session() as s:
                return not s.scalar(select(func.count()).select_from(Operation)
                                    .where(Operation.status != "confirmed"))
        _until(all_confirmed, "every operation confirmed")

        # The worker process exports what the outbox counts there.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        sent = next(line for line in metrics.splitlines()
                    if line.startswith("alliance_transactions_sent_total "))
        assert float(sent.split()[1]) >= 1
        assert 'alliance_outbox_operations{status="queued"} 0.0' in metrics

        # Worker a dies hard; b takes over and sends what comes next.
        procs.kill("worker-a", signal.SIGKILL)
        _until(lambda: "workers running" in procs.log("worker-b"), "worker b to take over",
               timeout_s=30)
        with ThreadPoolExecutor(8) as pool:
            issued += sum(pool.map(issue, range(60, 80)))
        _until(all_confirmed, "every operation confirmed after the takeover")

        with a.store.read_session() as s:
            assert s.scalar(select(func.count()).select_from(Operation)) == 80
            # Each operation in exactly one mined transaction.
            per_op = s.execute(select(ChainTxOperation.operation_id, func.count())
                               .join(ChainTx, ChainTx.tx_hash == ChainTxOperation.tx_hash)
                               .where(ChainTx.status == "mined")
                               .group_by(ChainTxOperation.operation_id)).all()
            assert len(per_op) == 80 and {n for _, n in per_op} == {1}
            for m in merchants:
                nonces = list(s.scalars(select(ChainTx.nonce).where(
                    ChainTx.signer == m.account, ChainTx.status == "mined")
                    .order_by(ChainTx.nonce)))
                assert nonces == list(range(len(nonces)))
                assert a.gateway.nonce(m.account) == len(nonces)
            # The keys both API processes and the worker used: no nonce handed out twice
            # and none left unused (the node's count is the store's counter).
            counters = dict(s.execute(
                select(SignerNonce.address, SignerNonce.next_nonce)).all())
        for key in (a.admin, a.operator):
            assert a.gateway.nonce(key.address) == counters[key.address]
        total = sum(a.contracts.program(m.program).balance_of(x)
                    for m in merchants for x in members)
        assert total == issued
        assert "Traceback" not in procs.log("api")
    finally:
        procs.stop_all()
        a.close()
