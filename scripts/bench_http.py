"""Single signed requests on PostgreSQL through ``alliance serve --workers N`` (issue 14).

Starts (and on any exit stops) a throwaway PostgreSQL cluster, anvil, ``alliance worker``
(the elected outbox/indexer process) and ``alliance serve --workers N``, all on loopback, as
scripts/faults.py does. Then, in one run, with ``wrk`` (``--connections`` connections, one wrk
thread by default; scripts/bench_http.lua):

* the bare endpoint ``GET /health`` of the same server (constant JSON through the same
  middleware stack: the framework's ceiling here), and
* signed single ``POST /v1/points/issue`` requests, PRE-SIGNED just before the run (each its
  own order_id, nonce and Idempotency-Key, round-robin over the harness's two merchants'
  keys, well within the 300 s signature window), each replayed once,

each for ``--seconds``; it prints req/s, p50/p99 latency (wrk's), every answer by status (Lua
``response()`` counts them; any issue answer but 202 fails the run), the ratio to the bare
endpoint, the CPU each role used meanwhile (API processes, PostgreSQL, worker, anvil, from
/proc) and the CPU per issue request. ``--generator httpx`` keeps the older asyncio + httpx
clients in a process of their own (they are slower than the server: not for figures).

``--profile K``: instead, profile K signed issue requests in this process with cProfile
(the ASGI app called directly, no server and no HTTP client in the profile) and print the top
of the profile by internal time and by cumulative time.

    .venv/bin/python scripts/bench_http.py [--workers 2] [--clients 50] [--seconds 10]
    .venv/bin/python scripts/bench_http.py --profile 500
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import cProfile
import json
import multiprocessing
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import anyio.to_thread  # noqa: E402
import httpx  # noqa: E402
from eth_account import Account  # noqa: E402
from faults import ARTIFACTS, Harness, Postgres  # noqa: E402

from api.app import create_app  # noqa: E402
from api.client import sign_request  # noqa: E402
from api.routes import points as points_routes  # noqa: E402
from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
from ledger.serving import TCP_ESTABLISHED, socket_inodes, sockets_held  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from tests.servers import free_port  # noqa: E402

ISSUE = "/v1/points/issue"
MEMBERS = [Account.create().address for _ in range(64)]


def _issue_request(key_id: str, secret: str, i: int, tag: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"member": MEMBERS[i % len(MEMBERS)], "points": 1 + i % 7,
                       "order_id": f"{tag}-{i}"}, separators=(",", ":")).encode()
    headers = sign_request(key_id, secret, "POST", ISSUE, body)
    headers["Content-Type"] = "application/json"
    headers["Idempotency-Key"] = str(uuid.uuid4())
    return body, headers


# ---------------------------------------------------------------------- load (own process)
async def _load(url: str, path: str, clients: int, seconds: float, key_id: str, secret: str,
                tag: str) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        stop = time.monotonic() + seconds

        async def client() -> None:
            while time.monotonic() < stop:
                if path == ISSUE:
                    body, headers = _issue_request(key_id, secret, next(counter), tag)
                    t0 = time.perf_counter()
                    r = await http.post(path, content=body, headers=headers)
                else:
                    t0 = time.perf_counter()
                    r = await http.get(path)
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        t0 = time.monotonic()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.monotonic() - t0
    latencies.sort()
    return {"n": len(latencies), "elapsed": elapsed, "statuses": statuses,
            "p50": statistics.median(latencies),
            "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}


def _load_process(args: tuple[str, str, int, float, str, str, str]) -> dict[str, Any]:
    return asyncio.run(_load(*args))


def measure(url: str, path: str, clients: int, seconds: float, key_id: str, secret: str,
            tag: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        res: dict[str, Any] = pool.apply(_load_process,
                                         ((url, path, clients, seconds, key_id, secret, tag),))
    return res


# ---------------------------------------------------------------------- load (wrk)
LUA = ROOT / "scripts" / "bench_http.lua"
RESULT = re.compile(r"RESULT requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) "
                    r"sent=(\d+) file=(\d+) statuses=(\S*) errors=(\S+)")


def presign(path: Path, url: str, creds: list[tuple[str, str]], n: int, tag: str) -> None:
    """``n`` raw signed issue requests (each its own order_id, nonce and Idempotency-Key,
    round-robin over ``creds``), NUL-separated, for bench_http.lua to replay once each."""
    host = url.split("://", 1)[1].rstrip("/")
    with path.open("wb") as f:
        for i in range(n):
            key_id, secret = creds[i % len(creds)]
            body, headers = _issue_request(key_id, secret, i, tag)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            f.write(f"POST {ISSUE} HTTP/1.1\r\nHost: {host}\r\n{head}"
                    f"Content-Length: {len(body)}\r\n\r\n".encode() + body + b"\0")


def wrk(url: str, path: str, clients: int, seconds: float, threads: int = 1,
        requests: Path | None = None, replays_ok: bool = False) -> dict[str, Any]:
    """One wrk run; req/s, p50/p99 (s) and the answers by status (non-2xx counted by Lua)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed (scripts/install.sh --test installs it)")
    cmd = [exe, f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "30s", "-s", str(LUA), url.rstrip("/") + path]
    if requests is not None:
        cmd += ["--", str(requests), str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = RESULT.search(out)
    if m is None:
        raise SystemExit(f"wrk printed no RESULT line:\n{out}")
    n, dur, p50, p99, sent, file_n = (int(m.group(i)) for i in range(1, 7))
    statuses = {int(k): int(v) for k, v in
                (kv.split(":") for kv in m.group(7).split(",") if kv)}
    errors = {k: int(v) for k, v in (kv.split(":") for kv in m.group(8).split(","))}
    if requests is not None and sent > file_n and not replays_ok:
        print(f"  note: wrk sent {sent} requests but only {file_n} were pre-signed; "
              "the rest were replays (401)")
    return {"n": n, "elapsed": dur / 1e6, "statuses": statuses, "p50": p50 / 1e6,
            "p99": p99 / 1e6, "errors": {k: v for k, v in errors.items() if v}}


def measure_wrk(url: str, path: str, clients: int, seconds: float, creds: list[tuple[str, str]],
                tag: str, threads: int = 1, rate_cap: int = 4000) -> dict[str, Any]:
    if path != ISSUE:
        return wrk(url, path, clients, seconds, threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    try:
        reqs = tmp / "requests.bin"
        t0 = time.monotonic()
        presign(reqs, url, creds, int(rate_cap * seconds), tag)
        print(f"  pre-signed {int(rate_cap * seconds):,} requests in "
              f"{time.monotonic() - t0:.1f} s (signatures are good for "
              "request_max_age_s = 300 s)")
        return wrk(url, path, clients, seconds, threads, reqs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def floor_load(floor: FloorServer, requests: Path, path: str, clients: int, seconds: float,
               threads: int) -> dict[str, Any]:
    """wrk against one path of the floor app, replaying ``requests`` (wrapping around: the
    floor app keeps no replay record)."""
    f = requests.with_name(path.strip("/") + ".bin")
    if not f.exists():
        f.write_bytes(requests.read_bytes().replace(b"{PATH}", path.encode()))
    r = wrk(floor.url, path, clients, seconds, threads, f, replays_ok=True)
    want = 200 if path == "/health" else 202
    bad = {k: v for k, v in r["statuses"].items() if k != want}
    if path != "/health" and (bad or r.get("errors")):
        raise SystemExit(f"floor {path}: answers {r['statuses']} {r.get('errors')}")
    return r


def pg_connect(url: str) -> Any:
    """An autocommit psycopg connection to the store at ``url`` (its SQLAlchemy URL)."""
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                           autocommit=True)


def pg_operations_stats(dsn: str) -> dict[str, int]:
    """Counters of the ``operations`` table (PostgreSQL's statistics): rows inserted and
    updated, of which heap-only (HOT, no index touched), and each index's scans and size."""
    with pg_connect(dsn) as c:
        row = c.execute("SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                        "WHERE relname = 'operations'").fetchone()
        out = dict(zip(("inserted", "updated", "hot"), row or (0, 0, 0), strict=True))
        # the rows themselves (the statistics above reach the view up to seconds late)
        out["rows"] = int(c.execute("SELECT count(*) FROM operations").fetchone()[0])
        out["max_seq"] = int(c.execute("SELECT coalesce(max(seq), 0) FROM operations")
                             .fetchone()[0])
        for name, scans, size in c.execute(
                "SELECT indexrelname, idx_scan, pg_relation_size(indexrelid) "
                "FROM pg_stat_user_indexes WHERE relname = 'operations' ORDER BY 1"):
            out[f"scans {name}"] = scans
            out[f"bytes {name}"] = size
    return out


def pg_groups(dsn: str, since: float) -> tuple[int, int, dict[int, int]]:
    """The signed requests written since ``since`` (epoch s): how many, in how many
    transactions, and the transactions by their count of requests (a lean group commit
    writes its requests' signatures in one transaction; each other request has its own).
    ``used_request_signatures`` rows are never updated, so their xmin is their writer's."""
    with pg_connect(dsn) as c:
        sizes = {int(n): int(k) for n, k in c.execute(
            "SELECT n, count(*) FROM (SELECT count(*) AS n FROM used_request_signatures "
            "WHERE seen_at >= to_timestamp(%s) GROUP BY xmin::text) g GROUP BY n ORDER BY n",
            (since,))}
    return sum(n * k for n, k in sizes.items()), sum(sizes.values()), sizes


def pg_confirmation_lag(dsn: str, after_seq: int) -> tuple[int, int, float, float]:
    """The operations queued after ``after_seq``: how many, how many confirmed, and the
    confirmed ones' p50 and p99 seconds from queued (``created_at``) to confirmed (their last
    update, ``updated_at``)."""
    with pg_connect(dsn) as c:
        row = c.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'confirmed'), "
            "percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY "
            "extract(epoch FROM updated_at - created_at)) FILTER (WHERE status = 'confirmed') "
            "FROM operations WHERE seq > %s", (after_seq,)).fetchone()
    assert row is not None
    p50, p99 = row[2] or (0.0, 0.0)
    return int(row[0]), int(row[1]), float(p50), float(p99)


def cpu_ticks(pids: dict[str, list[int]]) -> dict[str, int]:
    """utime+stime clock ticks of each named group of processes (and their threads); and
    ``<name>-sys``, the stime (the kernel's share: sockets, wake-ups) of each."""
    out: dict[str, int] = {}
    for name, group in pids.items():
        total = kernel = 0
        for pid in group:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
                kernel += int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        out[name] = total
        out[f"{name}-sys"] = kernel
    return out


def connections_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """Established TCP connections on local ``port`` held by each of ``pids`` (their socket
    inodes in /proc/PID/fd against /proc/net/tcp{,6}): how the API processes share wrk's
    connections."""
    established = socket_inodes(port, TCP_ESTABLISHED)
    counts = {pid: sockets_held(pid, established) for pid in pids}
    return {pid: n for pid, n in counts.items() if n}


def split_text(counts: dict[int, int]) -> str:
    total = sum(counts.values()) or 1
    return " / ".join(f"{n} ({100 * n / total:.0f}%)"
                      for n in sorted(counts.values(), reverse=True)) or "none"


class WindowSampler:
    """Each role's CPU in 100 ms windows while a run goes (``--windows``): to set next to
    the issues accepted in the same windows (their ``created_at``) and name what takes the
    cores when completions fall."""

    WINDOW_S = 0.1

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = {k: groups[k] for k in ("api", "w-leader", "w-indexer", "postgres",
                                               "anvil")}
        self.samples: list[tuple[float, dict[str, int], int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        next_at = time.time()
        while not self._stop.is_set():
            self.samples.append((time.time(), cpu_ticks(self.groups), machine_busy_ticks()))
            # behind (this thread did not get a CPU in time): no catching up with windows of
            # a few ms, whose clock ticks (100 a second) would say nothing
            next_at = max(next_at + self.WINDOW_S, time.time() + self.WINDOW_S / 2)
            self._stop.wait(max(0.0, next_at - time.time()))

    def __enter__(self) -> WindowSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, dsn: str, after_seq: int) -> None:
        with pg_connect(dsn) as c:
            rows = c.execute(
                "SELECT extract(epoch FROM created_at) FROM operations WHERE seq > %s",
                (after_seq,)).fetchall()
        stamps = sorted(float(r[0]) for r in rows)
        tick = os.sysconf("SC_CLK_TCK")
        windows = []
        for (t0, c0, m0), (t1, c1, m1) in zip(self.samples, self.samples[1:], strict=False):
            lo = bisect.bisect_left(stamps, t0)
            n = bisect.bisect_left(stamps, t1) - lo
            cores = {k: (c1[k] - c0[k]) / tick / (t1 - t0) for k in self.groups}
            cores["machine"] = (m1 - m0) / tick / (t1 - t0)
            cores["outside"] = max(0.0, cores["machine"] - sum(cores[k] for k in self.groups))
            windows.append((t0, n * self.WINDOW_S / (t1 - t0), cores))
        busy = [w for w in windows if w[1]]
        if not busy:
            return
        first, last = busy[0][0], busy[-1][0]
        # the run's own windows: past wrk's first half second (its connections opening)
        run = [w for w in windows if first + 0.5 <= w[0] < last]
        med = statistics.median(w[1] for w in run)
        names = [*self.groups, "outside", "machine"]

        def mean_cores(ws: list[Any]) -> str:
            return " / ".join(f"{statistics.fmean(w[2][k] for w in ws):.2f}" for k in names)

        low = [w for w in run if w[1] < med / 3]
        print(f"windows of 100 ms: {len(run)}, issues accepted per window median {med:.0f}; "
              f"{len(low)} windows under a third of it")
        print("cores (" + " / ".join(names) + "): every window " + mean_cores(run)
              + (("; the low windows " + mean_cores(low)) if low else ""))
        for t, n, cores in low[:20]:
            print(f"  +{t - first:5.1f} s: {n:.0f} accepted; " + ", ".join(
                f"{k} {cores[k]:.1f}" for k in names))


def machine_busy_ticks() -> int:
    """Clock ticks every CPU of the machine spent busy (not idle, not waiting for I/O)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def runqueue_wait_s(pids: list[int]) -> float:
    """Seconds the threads of ``pids`` have spent runnable but waiting for a CPU
    (/proc/PID/task/TID/schedstat): on a shared machine, the time a request's CPU work
    waited for a core."""
    total = 0
    for pid in pids:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


ROLES = ("api", "postgres", "worker", "anvil")


def process_groups(h: Any) -> dict[str, list[int]]:
    """The harness's processes by role: API (uvicorn and its workers), worker (leader and
    standby), PostgreSQL (postmaster and backends), anvil."""
    groups: dict[str, list[int]] = {"api": [], "worker": [], "postgres": [], "anvil": [],
                                    # the worker's CPU split: the elected process itself
                                    # (outbox, expiry sweep, jobs, webhooks: threads), its
                                    # indexer (a child process), the standby worker
                                    "w-leader": [], "w-indexer": [], "w-standby": []}
    for name, p in h.procs.procs.items():
        kids = children(p.pid)
        groups["api" if name == "api" else "worker"].extend([p.pid, *kids])
        if name == getattr(h, "leader", None):
            groups["w-leader"].append(p.pid)
            groups["w-indexer"].extend(kids)
        elif name != "api":
            groups["w-standby"].extend([p.pid, *kids])
    try:
        master = int((h.pg.data / "postmaster.pid").read_text().split()[0])
        groups["postgres"] = [master, *children(master)]
    except (OSError, ValueError, IndexError):
        pass
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"anvil") and str(h.anvil_port).encode() in cmd:
                groups["anvil"].append(int(d.name))
    return groups


def children(pid: int) -> list[int]:
    out: list[int] = []
    kids: list[str] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += (task / "children").read_text().split()
    except OSError:
        return out
    for k in kids:
        out.append(int(k))
        out.extend(children(int(k)))
    return out


FLOOR_ROWS = (
    ("floor: GET /health, bare ASGI (uvicorn alone)", "/health"),
    ("floor: body + JSON + 1 EIP-712 recover", "/recover"),
    ("floor: that + 1 INSERT, autocommit (1 round trip)", "/commit1"),
    ("floor: that + BEGIN, 3 INSERTs, COMMIT (5 round trips)", "/commit5"),
)


def presign_floor(path: Path, url: str, n: int) -> None:
    """``n`` raw POSTs for the floor app: each body an EIP-712-shaped digest and a member's
    65-byte signature of it (v 27/28), for ``recover_signer``; NUL-separated."""
    from coincurve import PrivateKey
    from eth_utils.crypto import keccak

    host = url.split("://", 1)[1].rstrip("/")
    keys = [PrivateKey() for _ in range(16)]
    with path.open("wb") as f:
        for i in range(n):
            digest = keccak(b"\x19\x01" + keccak(b"domain") + keccak(i.to_bytes(32, "big")))
            sig = keys[i % len(keys)].sign_recoverable(digest, hasher=None)
            body = json.dumps({"digest": digest.hex(),
                               "signature": (sig[:64] + bytes((sig[64] + 27,))).hex()},
                              separators=(",", ":")).encode()
            f.write(f"POST {{PATH}} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    .encode() + body + b"\0")


class FloorServer:
    """``scripts/bench_http_floor.py`` under uvicorn with ``workers`` processes, on the
    harness's PostgreSQL (its own table), stopped on exit."""

    def __init__(self, h: Any, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        dsn = h.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
        import bench_http_floor
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(bench_http_floor.DDL)
        env = dict(os.environ, BENCH_FLOOR_DSN=dsn)
        self.log = h.tmp / "floor.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench_http_floor:app", "--app-dir",
             str(ROOT / "scripts"), "--workers", str(workers), "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--log-level", "warning"],
            env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"the floor app did not start:\n{self.log.read_text()}")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_trickle(workers: int, rate: float, seconds: float) -> None:
    """Single signed issues at ``rate`` a second, one at a time, the two merchants' keys in
    turn: how long each waits from queued to confirmed when the outbox is not busy (the
    elected worker's wake-up: its poll, or a notification from the API process)."""
    h = Harness(rate=1.0, api_workers=workers)
    with h:
        creds = [(m.key_id, m.secret) for m in h.merchants]
        print(f"PostgreSQL, alliance serve --workers {workers}: single issues at {rate:g}/s "
              f"for {seconds:g} s; machine load {os.getloadavg()[0]:.1f}")
        with httpx.Client(base_url=h.url, timeout=30) as http:
            for i in range(4):  # warm: pools, the minute's purges
                key_id, secret = creds[i % 2]
                body, headers = _issue_request(key_id, secret, i, "trickle-warm")
                assert http.post(ISSUE, content=body, headers=headers).status_code == 202
            time.sleep(2.0)
            seq0 = pg_operations_stats(h.settings.database_url)["max_seq"]
            n = int(rate * seconds)
            t0 = time.monotonic()
            for i in range(n):
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
                key_id, secret = creds[i % 2]
                body, headers = _issue_request(key_id, secret, i, "trickle")
                r = http.post(ISSUE, content=body, headers=headers)
                if r.status_code != 202:
                    raise SystemExit(f"issue not accepted: {r.status_code} {r.text}")
        time.sleep(3.0)
        queued, confirmed, lag50, lag99 = pg_confirmation_lag(h.settings.database_url, seq0)
        print(f"queued to confirmed: {confirmed:,} of {queued:,} confirmed; "
              f"p50 {1000 * lag50:.0f} ms, p99 {1000 * lag99:.0f} ms "
              f"(load {os.getloadavg()[0]:.1f})")


def run_http(workers: int, clients: int, seconds: float, generator: str, threads: int,
             floors: bool = False, windows: bool = False) -> None:
    h = Harness(rate=1.0, api_workers=workers)
    floor: FloorServer | None = None
    with h:
        creds = [(m.key_id, m.secret) for m in h.merchants]
        print(f"PostgreSQL, alliance serve --workers {workers}, {clients} connections, "
              f"{seconds:g} s each, load from {generator}"
              + (f" -t{threads}" if generator == "wrk" else " in its own process")
              + f", {len(creds)} merchants' keys; machine load {os.getloadavg()[0]:.1f}"
              + (f"; alliance worker --nice {os.environ['ALLIANCE_WORKER_NICE']}"
                 if os.environ.get("ALLIANCE_WORKER_NICE") else ""))

        def load(path: str, secs: float, tag: str) -> dict[str, Any]:
            if generator == "wrk":
                return measure_wrk(h.url, path, clients, secs, creds, tag, threads)
            m = h.merchants[0]
            return measure(h.url, path, clients, secs, m.key_id, m.secret, tag)

        # warm every API process (first requests open pools, compile statements)
        load(ISSUE, 2.0, "warm")
        tick = os.sysconf("SC_CLK_TCK")
        rows = []
        plan: list[tuple[str, str, str]] = [("bare GET /health", "/health", "bare")]
        sampler: WindowSampler | None = None
        floor_file = Path(tempfile.mkdtemp(prefix="bench-floor-")) / "floor.bin"
        try:
            if floors:
                floor = FloorServer(h, workers)
                presign_floor(floor_file, floor.url, 4000)
                plan += [(name, path, "floor") for name, path in FLOOR_ROWS]
                for _, path in FLOOR_ROWS[1:]:  # warm: connections, prepared statements
                    floor_load(floor, floor_file, path, clients, 1.0, threads)
            plan.append(("signed POST /v1/points/issue", ISSUE, "issue"))
            for name, path, tag in plan:
                groups = process_groups(h)
                if floor is not None:
                    # the floor app counts as the API of its rows; the product's API idles
                    groups["api-product"] = groups["api"]
                    groups["api"] = floor.pids() if tag == "floor" else groups["api"]
                if tag == "issue":
                    pg0 = pg_operations_stats(h.settings.database_url)
                    issue_from = time.time()
                c0, t0 = cpu_ticks(groups), time.monotonic()
                m0, q0 = machine_busy_ticks(), runqueue_wait_s(groups["api"])
                per0 = {pid: cpu_ticks({"p": [pid]})["p"] for pid in groups["api"]}
                # how the API processes share wrk's connections, looked at mid-run
                port = floor.port if tag == "floor" and floor is not None else h.api_port
                split: dict[int, int] = {}
                looker = threading.Timer(seconds / 2, lambda split, port, pids: split.update(
                    connections_by_process(port, pids)), (split, port, groups["api"]))
                looker.start()
                sampler = WindowSampler(groups) if windows and tag == "issue" else None
                if tag == "floor":
                    assert floor is not None
                    r = floor_load(floor, floor_file, path, clients, seconds, threads)
                elif sampler is not None:
                    with sampler:
                        r = load(path, seconds, tag)
                else:
                    r = load(path, seconds, tag)
                c1, wall = cpu_ticks(groups), time.monotonic() - t0
                m1, q1 = machine_busy_ticks(), runqueue_wait_s(groups["api"])
                cpu = {k: (c1[k] - c0[k]) / tick / wall for k in c0}
                # The machine's busy cores, and what of it was not the service's (wrk, other
                # sessions' work on a shared machine).
                cpu["machine"] = (m1 - m0) / tick / wall
                cpu["outside"] = max(0.0, cpu["machine"] - sum(cpu[k] for k in ROLES))
                cpu["api_wait"] = (q1 - q0) / wall
                looker.join()
                per = {pid: cpu_ticks({"p": [pid]})["p"] - t for pid, t in per0.items()}
                print(f"{name}: connections per API process (mid-run) {split_text(split)}; "
                      "API CPU per process "
                      + split_text({p: t for p, t in per.items() if t > 0}))
                rows.append((name, r, cpu, os.getloadavg()[0]))
            # the outbox's updates of the issued operations, 3 s on (statistics are sent at
            # each transaction's end, and the last batch confirms)
            time.sleep(3)
            pg1 = pg_operations_stats(h.settings.database_url)
            if sampler is not None:
                sampler.report(h.settings.database_url, pg0["max_seq"])
        finally:
            shutil.rmtree(floor_file.parent, ignore_errors=True)
            if floor is not None:
                floor.close()
        print("| endpoint | req/s | p50 ms | p99 ms | answers | CPU cores: api / postgres / "
              "worker / anvil / outside (wrk, others) | machine busy cores (of "
              f"{os.cpu_count()}) | API threads "
              f"waiting for a CPU | load avg |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, r, cpu, la in rows:
            rate = r["n"] / r["elapsed"]
            answers = dict(r["statuses"], **{f"err-{k}": v for k, v in
                                             r.get("errors", {}).items()})
            print(f"| {name} | {rate:,.0f} | {1000 * r['p50']:.1f} | {1000 * r['p99']:.1f} | "
                  f"{answers} | {cpu['api']:.2f} / {cpu['postgres']:.2f} / "
                  f"{cpu['worker']:.2f} / {cpu['anvil']:.2f} / {cpu['outside']:.2f} | "
                  f"{cpu['machine']:.2f} | {cpu['api_wait']:.1f} | {la:.1f} |")
        bare, issue = rows[0][1], rows[-1][1]
        bare_rate, issue_rate = bare["n"] / bare["elapsed"], issue["n"] / issue["elapsed"]
        icpu = rows[-1][2]
        # Little's law: with ``clients`` closed-loop connections always waiting, the mean
        # latency is clients / throughput, whatever the server does; so p99 <= 100 ms with 50
        # clients needs a mean well under 100 ms, i.e. well over 500 req/s.
        print(f"Little's law ({clients} closed-loop clients): mean latency = clients / "
              "req/s; req/s x that mean = clients")
        print("| endpoint | req/s | / bare | / issue | CPU ms a request: api / postgres | "
              "mean ms (clients / req/s) | p50 ms | p99 ms | req/s x p50 s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, r, cpu, _ in rows:
            rate = r["n"] / r["elapsed"]
            print(f"| {name} | {rate:,.0f} | {rate / bare_rate:.2f}x | "
                  f"{rate / max(issue_rate, 1e-9):.2f}x | {1000 * cpu['api'] / rate:.2f} / "
                  f"{1000 * cpu['postgres'] / rate:.2f} | {1000 * clients / rate:.1f} | "
                  f"{1000 * r['p50']:.1f} | {1000 * r['p99']:.1f} | {rate * r['p50']:.1f} |")
        print(f"issue / bare: {issue_rate / bare_rate:.2f}x (target >= 0.5x); issue req/s "
              f"{issue_rate:,.0f} (target >= 500), p99 {1000 * issue['p99']:.0f} ms "
              f"(target <= 100)")
        if issue_rate:
            roles = ROLES
            print("CPU per issue request (ms): " + ", ".join(
                f"{k} {1000 * icpu[k] / issue_rate:.1f}" for k in roles)
                + f"; the service in all {1000 * sum(icpu[k] for k in roles) / issue_rate:.1f}"
                f" (so {os.cpu_count()} cores hold at most "
                f"{os.cpu_count() / max(1e-9, sum(icpu[k] for k in roles)) * issue_rate:,.0f}"
                " req/s of it)")
            print("the worker's CPU per issue request (ms): " + ", ".join(
                f"{label} {1000 * icpu[k] / issue_rate:.2f}" for k, label in (
                    ("w-leader", "elected process (outbox, sweeps, webhooks)"),
                    ("w-indexer", "its indexer process"), ("w-standby", "standby"))))
            print("of which in the kernel (stime, ms per issue request): " + ", ".join(
                f"{k} {1000 * icpu[f'{k}-sys'] / issue_rate:.2f}" for k in roles))
        d = {k: pg1[k] - pg0.get(k, 0) if not k.startswith("bytes") else pg1[k] for k in pg1}
        print(f"operations during the issue run and 3 s on: {d['inserted']:,} inserted, "
              f"{d['updated']:,} updated, {d['hot']:,} of them HOT (heap-only: no index "
              f"written); index scans: " + ", ".join(
                  f"{k[6:]} {v:,} ({pg1['bytes ' + k[6:]] / 1e6:.1f} MB)"
                  for k, v in d.items() if k.startswith("scans ")))
        accepted = issue["statuses"].get(202, 0)
        queued, confirmed, lag50, lag99 = pg_confirmation_lag(h.settings.database_url,
                                                              pg0["max_seq"])
        print(f"queued to confirmed (operations of the issue run, 3 s on): {confirmed:,} of "
              f"{queued:,} confirmed; p50 {1000 * lag50:.0f} ms, p99 {1000 * lag99:.0f} ms")
        print(f"rows in operations: {d['rows']:,} more after the issue run, for {accepted:,} "
              "202 answers (more rows: requests in flight when wrk stopped)")
        signed, txs, sizes = pg_groups(h.settings.database_url, issue_from)
        print(f"requests per write transaction (the lean group commit): {signed:,} signed "
              f"requests in {txs:,} transactions, {signed / max(txs, 1):.2f} a transaction; "
              "by size " + ", ".join(f"{n}: {k:,}" for n, k in sizes.items()))
        if d["rows"] < accepted:
            raise SystemExit(f"{accepted:,} issues accepted but {d['rows']:,} operations queued")
        bad = {k: v for k, v in issue["statuses"].items() if k != 202}
        if bad or issue.get("errors"):
            raise SystemExit(f"issue requests not accepted: {bad} {issue.get('errors')}")


# ---------------------------------------------------------------------- profile (in process)
async def _asgi_post(app: Any, body: bytes, headers: dict[str, str]) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": ISSUE, "raw_path": ISSUE.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 80),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]
             + [(b"content-length", str(len(body)).encode())]}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


def run_profile(n: int, top: int) -> None:
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="alliance-profile-"))
    tmp.chmod(0o755)
    pg = Postgres(tmp / "pg")
    pg.base.mkdir()
    settings = None
    alliance = None
    try:
        db = pg.init()
        settings = Settings(data_dir=tmp / "data", chain_id=31337, anvil_port=free_port(),
                            artifacts_dir=ARTIFACTS, database_url=db)
        rpc = anvil.start(settings)
        settings = settings.model_copy(update={"rpc_url": rpc})
        alliance = Alliance.open(settings)
        m = admit_merchant(alliance, name="Profile Store", symbol="PRS", rate=1)
        app = create_app(alliance, run_workers=False)
        # cProfile sees one thread: run the routes' sync parts (FastAPI sends them to a thread
        # pool) inline on the loop's thread, so the profile holds the whole request.

        async def inline(func: Any, *args: Any, **_: Any) -> Any:
            return func(*args)

        # BENCH_PROFILE_THREADS=1 (with BENCH_PROFILE_OFF=1): keep the threads, to count
        # the hops' CPU too (process_time counts every thread of the process)
        if not os.environ.get("BENCH_PROFILE_THREADS"):
            anyio.to_thread.run_sync = inline  # type: ignore[assignment]
            if hasattr(points_routes, "in_lean_thread"):  # run on older code too
                points_routes.in_lean_thread = inline  # the lean issue's statement, likewise
        reqs = [_issue_request(m.key_id, m.secret, i, "prof") for i in range(n + 50)]

        async def go() -> None:
            for body, headers in reqs[:50]:  # warm-up
                assert await _asgi_post(app, body, headers) == 202
            if os.environ.get("BENCH_SQL"):  # the statements of one request, in order
                from sqlalchemy import event

                seen: list[str] = []

                def log(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
                    seen.append(" ".join(statement.split())[:160])

                event.listen(alliance.store.engine, "before_cursor_execute", log)
                body, headers = _issue_request(m.key_id, m.secret, 10**6, "sql")
                assert await _asgi_post(app, body, headers) == 202
                event.remove(alliance.store.engine, "before_cursor_execute", log)
                print(f"{len(seen)} statements in one request:")
                for line in seen:
                    print("  ", line)
            # BENCH_PROFILE_CPU=1: CPU time of this process (round trips waited for not counted)
            prof = (cProfile.Profile(time.process_time) if os.environ.get("BENCH_PROFILE_CPU")
                    else cProfile.Profile())
            t0 = time.perf_counter()
            c0 = time.process_time()
            # BENCH_PROFILE_OFF=1: the same requests without the profiler (its cost per call
            # inflates call-heavy code): the CPU a request takes in process, no server
            bare = bool(os.environ.get("BENCH_PROFILE_OFF"))
            if not bare:
                prof.enable()
            for body, headers in reqs[50:]:
                status = await _asgi_post(app, body, headers)
                assert status == 202, status
            prof.disable()
            cpu = time.process_time() - c0
            wall = time.perf_counter() - t0
            print(f"{n} signed issue requests in process on PostgreSQL: "
                  f"{1000 * cpu / n:.2f} ms CPU and {1000 * wall / n:.2f} ms wall each "
                  + ("(no profiler)" if bare else "(under the profiler)"))
            if bare:
                return
            if out := os.environ.get("BENCH_PROFILE_OUT"):
                prof.dump_stats(out)
            st = pstats.Stats(prof)
            st.sort_stats("tottime").print_stats(top)
            st.sort_stats("cumulative").print_stats(top)

        asyncio.run(go())
    finally:
        if alliance is not None:
            alliance.close()
        if settings is not None:
            anvil.stop(settings)
        pg.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="API processes")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--profile", type=int, default=0,
                   help="profile this many requests in process instead")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--generator", choices=("wrk", "httpx"), default="wrk",
                   help="load generator: wrk replaying pre-signed requests (default), or the "
                   "older asyncio+httpx clients (slower than the server: not for figures)")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--worker-nice", type=int, default=None,
                   help="start the `alliance worker` processes with --nice N "
                        "(ALLIANCE_WORKER_NICE)")
    p.add_argument("--trickle", type=float, default=0.0, metavar="RATE",
                   help="instead: single issues at RATE a second for --seconds, one at a "
                        "time; prints how long they wait from queued to confirmed")
    p.add_argument("--floors", action="store_true",
                   help="also measure, in the same run and server shape, what the unavoidable "
                   "parts of a signed issue cost: a bare ASGI endpoint, reading the body and "
                   "recovering one EIP-712 signature, and that plus one committed INSERT "
                   "(autocommit) or BEGIN + 3 INSERTs + COMMIT (scripts/bench_http_floor.py: "
                   "a benchmark's app, no route of the product)")
    p.add_argument("--windows", action="store_true",
                   help="also sample each role's CPU (API, elected worker, its indexer, "
                   "PostgreSQL, anvil, outside) in 100 ms windows of the issue run, next to "
                   "the issues accepted in each window: the windows where they fall")
    args = p.parse_args()
    if args.worker_nice is not None:  # the harness's processes inherit the environment
        os.environ["ALLIANCE_WORKER_NICE"] = str(args.worker_nice)
    if args.profile:
        run_profile(args.profile, args.top)
    elif args.trickle:
        run_trickle(args.workers, args.trickle, args.seconds)
    else:
        run_http(args.workers, args.clients, args.seconds, args.generator,
                 args.wrk_threads, args.floors, args.windows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
