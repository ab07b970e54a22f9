"""Faults under load (issue 14): a steady load of signed issue requests through the API while
processes die and restart; afterwards every operation the API accepted is on chain exactly once.

Loopback only, bounded (a few minutes by default). It starts, and on any exit stops, everything
it uses: anvil with ``--state`` (so it restarts with its chain), a throwaway PostgreSQL cluster
(Debian's binaries, as tests/pg.py), ``alliance serve --workers 2`` (uvicorn restarts a worker
process that dies) and two ``alliance worker`` processes (one elected by the advisory lock, the
other standing by). Clients retry on connection errors and 5xx with the SAME Idempotency-Key.

Faults, one after the other, during the load:
  worker-kill9  kill -9 of the elected worker (the standby takes over; the killed one is
                started again as the new standby, as a supervisor would)
  api-kill9     kill -9 of one API process (uvicorn's supervisor starts another)
  chain-restart anvil stopped (SIGTERM: it writes its state file) and started again from it
                on the same port
  pg-restart    PostgreSQL stopped (fast) and started again on the same port and data

Opt-in (``--faults ...,chain-kill9``): kill -9 of anvil, restarted from the state file it
last wrote, so the chain loses its last seconds of blocks (the harness prints how many).
Until the rollback branch the service did not recover from it (the store's nonce counters
stayed above the node's, every later transaction waited behind the gap); now the outbox
notices and re-syncs each signer (ledger/outbox/worker.py, "a chain that rolled back") and
the indexer rewinds to the common ancestor.

After each fault and at the end the harness reads the chain's PointsIssued logs (not the
store): every accepted order reference must appear exactly once (lost = accepted and absent,
doubled = more than once), and every signer's node nonce at "latest" must equal its "pending"
nonce (no transaction stuck behind a gap) and the store's counter. Recovery seconds: from the
fault until an order submitted after it is on chain.

    .venv/bin/python scripts/faults.py [--seconds-per-fault 20] [--rate 20]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from eth_account import Account  # noqa: E402
from sqlalchemy import select  # noqa: E402

from api.client import AllianceClient  # noqa: E402
from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.merchants.service import AdmittedMerchant, admit_merchant  # noqa: E402
from ledger.points.service import order_ref  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.store.models import Operation, SignerNonce  # noqa: E402
from tests.pg import _as_server_user, _bin, _run  # noqa: E402
from tests.servers import free_port  # noqa: E402

ALLIANCE = str(ROOT / ".venv" / "bin" / "alliance")
ARTIFACTS = ROOT / ".alliance-test-cache" / "artifacts"  # shared with the tests


def until(check: Callable[[], bool], what: str, timeout_s: float) -> float:
    """Poll ``check`` until true; give the seconds it took; raise TimeoutError past the
    deadline."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - t0


class Postgres:
    """A throwaway cluster that can be stopped and started again on the same port and data."""

    def __init__(self, base: Path) -> None:
        self.base, self.data, self.log = base, base / "data", base / "server.log"
        self.port = free_port()
        self.pg_ctl = _bin("pg_ctl")
        self.running = False

    def init(self) -> str:
        if os.geteuid() == 0:
            _as_server_user([])
            shutil.chown(self.base, "postgres", "postgres")
        _run([_bin("initdb"), "-D", str(self.data), "-U", "alliance", "--auth=trust",
              "-E", "UTF8"], "initdb")
        self.start()
        _run([_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "alliance",
              "alliance"], "createdb")
        return f"postgresql+psycopg://alliance@127.0.0.1:{self.port}/alliance"

    def start(self) -> None:
        _run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o",
              f"-p {self.port} -h 127.0.0.1 -k {self.base} -c fsync=off "
              "-c max_connections=300", "start"], f"start (log: {self.log})")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            subprocess.run(_as_server_user([self.pg_ctl, "-D", str(self.data), "-m", mode,
                                            "-w", "stop"]), capture_output=True)
            self.running = False


class Procs:
    """The service's processes (each in its own session, so kill reaches its children)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as out:
            p = subprocess.Popen([ALLIANCE, *args], cwd=ROOT, env=self.env, stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        self.procs[name] = p
        return p

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

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


@dataclass
class Load:
    """Clients issuing points through the API at a steady rate; each request is retried with
    its own Idempotency-Key on connection errors and 5xx until it is answered."""

    url: str
    merchants: list[AdmittedMerchant]
    rate: float
    clients: int = 4
    accepted: dict[str, str] = field(default_factory=dict)  # order id -> operation id
    refused: dict[str, str] = field(default_factory=dict)  # order id -> last answer
    retries: int = 0
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def submit(self, order_id: str, i: int, *, give_up_s: float = 120.0) -> str | None:
        """Issue one order (retrying); give its operation id once accepted."""
        m = self.merchants[i % len(self.merchants)]
        body = {"member": _members[i % len(_members)], "points": 1 + i % 7,
                "order_id": order_id}
        deadline = time.monotonic() + give_up_s
        with httpx.Client(base_url=self.url, timeout=30) as http:
            client = AllianceClient(http, m.key_id, m.secret)
            while time.monotonic() < deadline:
                try:
                    r = client.post("/v1/points/issue", body, idempotency_key=f"key-{order_id}")
                except httpx.TransportError as exc:
                    last = repr(exc)
                else:
                    if r.status_code == 202:
                        op_id = str(r.json()["id"])
                        with self._lock:
                            self.accepted[order_id] = op_id
                        return op_id
                    last = f"{r.status_code} {r.text[:200]}"
                    if r.status_code < 500 and r.status_code != 429:
                        with self._lock:
                            self.refused[order_id] = last
                        return None
                with self._lock:
                    self.retries += 1
                time.sleep(0.2)
        with self._lock:
            self.refused[order_id] = f"gave up: {last}"
        return None

    def _run(self) -> None:
        interval = self.clients / self.rate
        nxt = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                i, self._next = self._next, self._next + 1
            self.submit(f"F-{i}", i)
            nxt += interval
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def start(self) -> None:
        for n in range(self.clients):
            t = threading.Thread(target=self._run, name=f"client-{n}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(150)

    def snapshot(self) -> dict[str, str]:
        with self._lock:
            return dict(self.accepted)


_members = [Account.create().address for _ in range(16)]


@dataclass(frozen=True)
class Row:
    fault: str
    accepted: int
    confirmed: int
    lost: int
    doubled: int
    recovery_s: float
    nonce_gaps: int


class Harness:
    """Everything one run needs, started in ``__enter__`` and stopped on any exit."""

    def __init__(self, *, rate: float, clients: int = 4, api_workers: int = 2) -> None:
        self.rate, self.clients, self.api_workers = rate, clients, api_workers
        self.tmp = Path(tempfile.mkdtemp(prefix="alliance-faults-"))
        self.tmp.chmod(0o755)  # PostgreSQL runs as its own user under it when we are root
        self.pg = Postgres(self.tmp / "pg")
        self.pg.base.mkdir()
        self.rows: list[Row] = []
        self.standby = 0
        self.keep_logs = False

    # ------------------------------------------------------------------ start and stop
    def __enter__(self) -> Harness:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        db = self.pg.init()
        self.anvil_port = free_port()
        self.settings = Settings(data_dir=self.tmp / "data", chain_id=31337,
                                 anvil_port=self.anvil_port, artifacts_dir=ARTIFACTS,
                                 database_url=db)
        self.rpc = anvil.start(self.settings)
        self.settings = self.settings.model_copy(update={"rpc_url": self.rpc})
        self.alliance = Alliance.open(self.settings)
        a = self.alliance
        self.merchants = [admit_merchant(a, name="Fault Store", symbol="FST", rate=1),
                          admit_merchant(a, name="Fault Cafe", symbol="FCF", rate=2)]
        self.issued_topic = a.gateway.event_topic(
            a.contracts.program(self.merchants[0].program).abi, "PointsIssued")
        env = dict(os.environ, ALLIANCE_DATA_DIR=str(self.settings.data_dir),
                   ALLIANCE_RPC_URL=self.rpc, ALLIANCE_CHAIN_ID="31337",
                   ALLIANCE_ARTIFACTS_DIR=str(ARTIFACTS), ALLIANCE_DATABASE_URL=db,
                   COLUMNS="200")
        self.procs = Procs(env, self.tmp)
        self.procs.start("worker-0", "worker")
        until(lambda: "workers running" in self.procs.log("worker-0"), "worker-0", 90)
        self.leader = "worker-0"
        self._start_standby()
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.procs.start("api", "serve", "--workers", str(self.api_workers),
                         "--port", str(self.api_port))
        until(self._healthy, "the API", 120)
        self.load = Load(self.url, self.merchants, self.rate, self.clients)

    def _start_standby(self) -> None:
        self.standby += 1
        name = f"worker-{self.standby}"
        self.procs.start(name, "worker")
        until(lambda: "standing by" in self.procs.log(name), f"{name} to stand by", 90)
        self.standby_name = name

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        load = getattr(self, "load", None)
        if load is not None:
            load.stop()
        procs = getattr(self, "procs", None)
        if procs is not None:
            procs.stop_all()
        alliance = getattr(self, "alliance", None)
        if alliance is not None:
            alliance.close()
        if getattr(self, "settings", None) is not None:
            anvil.stop(self.settings)
        self.pg.stop("immediate")
        if self.keep_logs:
            kept = Path(tempfile.mkdtemp(prefix="alliance-faults-logs-"))
            for log in self.tmp.glob("*.log"):
                shutil.copy(log, kept / log.name)
            print(f"logs of the processes kept in {kept}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ faults
    def kill_worker(self) -> None:
        """kill -9 of the elected worker; the standby takes over; the dead one comes back
        as the new standby."""
        old, standby = self.leader, self.standby_name
        self.procs.kill(old, signal.SIGKILL)
        until(lambda: "workers running" in self.procs.log(standby), f"{standby} to take over",
              60)
        self.leader = standby
        self._start_standby()

    def kill_api(self) -> None:
        """kill -9 of one API process (a uvicorn worker; its supervisor starts another)."""
        parent = self.procs.procs["api"].pid
        children = [int(p) for p in Path(f"/proc/{parent}/task/{parent}/children")
                    .read_text().split()]
        if not children:
            raise RuntimeError("the API has no worker processes to kill")
        os.kill(children[0], signal.SIGKILL)

    def restart_chain(self) -> None:
        """anvil stopped cleanly (it writes its state) and started from it on the same port."""
        before = self.alliance.gateway.block_number()
        anvil.stop(self.settings)
        anvil.start(self.settings, timeout_s=60)
        after = self.alliance.gateway.block_number()
        if after < before:
            raise RuntimeError(f"anvil came back at block {after}, it was at {before}")

    def kill_chain(self) -> None:
        """kill -9 of anvil, started again from the state file it last wrote (every
        STATE_INTERVAL_S): the blocks mined since are gone, as after a crash of a node
        without durable storage. Not in the default list: the brief's chain fault is the
        clean restart."""
        info = anvil.chain_dir(self.settings) / "anvil.json"
        pid = int(json.loads(info.read_text())["pid"])
        before = self.alliance.gateway.block_number()
        os.killpg(pid, signal.SIGKILL)  # the npm wrapper and the anvil binary under it
        os.waitpid(pid, 0)
        info.unlink()
        anvil.start(self.settings, timeout_s=60)
        after = self.alliance.gateway.block_number()
        print(f"  chain-kill9: anvil was at block {before}, came back at {after} "
              f"({before - after} blocks lost)")

    def restart_pg(self) -> None:
        self.pg.stop("fast")
        self.pg.start()

    # ------------------------------------------------------------------ checks
    def on_chain(self) -> Counter[str]:
        """How many PointsIssued logs each order reference has, read from the chain."""
        gw = self.alliance.gateway
        logs = gw.get_logs(address=[m.program for m in self.merchants], from_block=0,
                           to_block=gw.block_number(), topics=[self.issued_topic])
        return Counter("0x" + bytes(lg["topics"][2]).hex() for lg in logs)

    def nonce_gaps(self, *, quiet: bool, timeout_s: float = 30.0) -> int:
        """Signers left with a nonce gap: a transaction the node holds pending behind a
        missing nonce ("pending" above "latest"), or a nonce the store handed out that never
        reached the node (the store's counter above "latest"; under load only the first is
        checked, the counter running ahead of the node while transactions are on their way).
        Both move while the load runs, so each signer gets ``timeout_s`` to be seen
        consistent (the node read before the store); those never seen so count."""
        gw = self.alliance.gateway
        left: set[str] = set(self._counters())
        deadline = time.monotonic() + timeout_s
        while left and time.monotonic() < deadline:
            for addr in list(left):
                latest, pending = gw.nonce(addr, "latest"), gw.nonce(addr, "pending")
                stored = self._counters()[addr]
                if latest == pending and (stored == latest if quiet else stored >= latest):
                    left.discard(addr)
            if left:
                time.sleep(0.1)
        for addr in sorted(left):
            print(f"  nonce gap: {addr}: latest {gw.nonce(addr, 'latest')}, pending "
                  f"{gw.nonce(addr, 'pending')}, store {self._counters()[addr]}")
        return len(left)

    def _counters(self) -> dict[str, int]:
        with self.alliance.store.read_session() as s:
            return {str(a): int(n) for a, n in
                    s.execute(select(SignerNonce.address, SignerNonce.next_nonce)).all()}

    def check(self, fault: str, recovery_s: float, *, quiet: bool = False,
              settle_s: float = 120.0) -> Row:
        """Wait (with a deadline) for what was accepted so far to be on chain; count."""
        accepted = self.load.snapshot()
        refs = {order_ref_hex(o): o for o in accepted}
        seen: Counter[str] = Counter()

        def settled() -> bool:
            nonlocal seen
            seen = self.on_chain()
            return all(r in seen for r in refs)
        try:
            until(settled, f"{len(refs)} accepted orders on chain after {fault}", settle_s)
        except TimeoutError:
            pass
        confirmed = sum(1 for r in refs if seen[r] == 1)
        lost = [refs[r] for r in refs if r not in seen]
        doubled = [refs[r] for r in refs if seen[r] > 1]
        if lost or doubled:
            print(f"  {fault}: lost {sorted(lost)[:10]}, doubled {sorted(doubled)[:10]}")
            with self.alliance.store.read_session() as s:
                for o in sorted(lost)[:10]:
                    op = s.scalar(select(Operation).where(Operation.id == accepted[o]))
                    if op is not None:
                        print(f"    {o}: store status {op.status}, tx {op.tx_hash}, "
                              f"attempts {op.attempts}, updated {op.updated_at}")
            self.keep_logs = True
        row = Row(fault, len(refs), confirmed, len(lost), len(doubled), recovery_s,
                  self.nonce_gaps(quiet=quiet))
        self.rows.append(row)
        return row

    def inject(self, fault: str, action: Callable[[], None], *,
               recovery_timeout_s: float = 120.0, settle_s: float = 120.0) -> Row:
        """Inject ``fault`` during the load; the recovery time runs until an order submitted
        after the fault is on chain."""
        t0 = time.monotonic()
        action()
        probe = f"probe-{fault}"
        self.load.submit(probe, 0, give_up_s=recovery_timeout_s)
        ref = order_ref_hex(probe)
        left = max(1.0, recovery_timeout_s - (time.monotonic() - t0))
        try:
            until(lambda: ref in self.on_chain(), f"recovery after {fault}", left)
            recovery = time.monotonic() - t0
        except TimeoutError:
            recovery = float("inf")
        return self.check(fault, recovery, settle_s=settle_s)


def order_ref_hex(order_id: str) -> str:
    return "0x" + bytes(order_ref(order_id)).hex()


FAULTS: dict[str, Callable[[Harness], None]] = {
    "worker-kill9": Harness.kill_worker,
    "api-kill9": Harness.kill_api,
    "chain-restart": Harness.restart_chain,
    "pg-restart": Harness.restart_pg,
}
EXTRA_FAULTS: dict[str, Callable[[Harness], None]] = {"chain-kill9": Harness.kill_chain}


def run(faults: list[str], *, seconds_per_fault: float, rate: float, clients: int = 4,
        settle_s: float = 120.0, out: Callable[[str], None] = print) -> list[Row]:
    with Harness(rate=rate, clients=clients) as h:
        h.load.start()
        out(f"load: {rate:g} issue requests/s from {clients} clients on {h.url}")
        for fault in faults:
            _steady(seconds_per_fault)
            row = h.inject(fault, functools.partial({**FAULTS, **EXTRA_FAULTS}[fault], h),
                           settle_s=settle_s)
            out(f"  {fault}: recovered in {row.recovery_s:.1f} s")
        _steady(seconds_per_fault)
        h.load.stop()
        h.check("end (load stopped)", 0.0, quiet=True, settle_s=settle_s)
        out(table(h.rows))
        out(f"retries on connection errors / 5xx: {h.load.retries}; refused: "
            f"{len(h.load.refused)} {list(h.load.refused.items())[:3]}")
        return h.rows


def _steady(seconds: float) -> None:
    """Let the load run ``seconds`` between faults (the load's own pacing, not a wait for a
    condition)."""
    threading.Event().wait(seconds)


def table(rows: list[Row]) -> str:
    lines = ["| fault | accepted | confirmed | lost | doubled | recovery s | nonce gaps |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.fault} | {r.accepted} | {r.confirmed} | {r.lost} | {r.doubled} | "
              f"{r.recovery_s:.1f} | {r.nonce_gaps} |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds-per-fault", type=float, default=20.0,
                   help="load time before each fault and after the last")
    p.add_argument("--rate", type=float, default=20.0, help="issue requests per second")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--settle-s", type=float, default=120.0,
                   help="how long accepted operations get to reach the chain at each check")
    p.add_argument("--faults", default=",".join(FAULTS),
                   help=f"comma separated, in order; also: {', '.join(EXTRA_FAULTS)}")
    args = p.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS) - set(EXTRA_FAULTS)
    if unknown:
        p.error(f"unknown faults {sorted(unknown)}; known: {list(FAULTS)}")
    rows = run(faults, seconds_per_fault=args.seconds_per_fault, rate=args.rate,
               clients=args.clients, settle_s=args.settle_s)
    return 0 if all(r.lost == 0 and r.doubled == 0 and r.nonce_gaps == 0 for r in rows) else 1


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Clean up on SIGTERM too (the harness's finally blocks run)."""
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    with _sigterm_as_exit():
        sys.exit(main())
