"""Single signed requests on PostgreSQL through ``alliance serve --workers N`` (issue 14).

Starts (and on any exit stops) a throwaway PostgreSQL cluster, anvil, ``alliance worker``
(the elected outbox/indexer process) and ``alliance serve --workers N``, all on loopback, as
scripts/faults.py does. Then, in one run, from ``--clients`` concurrent clients in a separate
process (asyncio + httpx, so the load generator is not limited by one GIL shared with the
server):

* the bare endpoint ``GET /health`` of the same server (constant JSON through the same
  middleware stack: the framework's ceiling here), and
* signed single ``POST /v1/points/issue`` requests (each its own order and Idempotency-Key),

each for ``--seconds``; it prints req/s, p50/p99 latency and the ratio to the bare endpoint.
Every issue request must be answered 202; the accepted operations are then left to the worker.

``--profile K``: instead, profile K signed issue requests in this process with cProfile
(the ASGI app called directly, no server and no HTTP client in the profile) and print the top
of the profile by internal time and by cumulative time.

    .venv/bin/python scripts/bench_http.py [--workers 2] [--clients 50] [--seconds 15]
    .venv/bin/python scripts/bench_http.py --profile 500
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing
import os
import pstats
import statistics
import sys
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
from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
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


def run_http(workers: int, clients: int, seconds: float) -> None:
    h = Harness(rate=1.0, api_workers=workers)
    with h:
        m = h.merchants[0]
        print(f"PostgreSQL, alliance serve --workers {workers}, {clients} clients, "
              f"{seconds:g} s each, load in its own process; machine load "
              f"{os.getloadavg()[0]:.1f}")
        # warm every API process (first requests open pools, compile statements)
        measure(h.url, ISSUE, clients, 2.0, m.key_id, m.secret, "warm")
        bare = measure(h.url, "/health", clients, seconds, m.key_id, m.secret, "bare")
        issue = measure(h.url, ISSUE, clients, seconds, m.key_id, m.secret, "issue")
        rows = []
        for name, r in (("bare GET /health", bare), ("signed POST /v1/points/issue", issue)):
            rows.append((name, r["n"] / r["elapsed"], r["p50"] * 1000, r["p99"] * 1000,
                         r["statuses"]))
        print("| endpoint | req/s | p50 ms | p99 ms | answers |")
        print("|---|---|---|---|---|")
        for name, rate, p50, p99, st in rows:
            print(f"| {name} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {st} |")
        ratio = rows[1][1] / rows[0][1]
        print(f"issue / bare: {ratio:.2f}x (target >= 0.5x); issue req/s "
              f"{rows[1][1]:,.0f} (target >= 500), p99 {rows[1][3]:.0f} ms (target <= 100)")
        bad = {k: v for k, v in issue["statuses"].items() if k != 202}
        if bad:
            raise SystemExit(f"issue requests not accepted: {bad}")


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

        anyio.to_thread.run_sync = inline  # type: ignore[assignment]
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
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            c0 = time.process_time()
            prof.enable()
            for body, headers in reqs[50:]:
                status = await _asgi_post(app, body, headers)
                assert status == 202, status
            prof.disable()
            cpu = time.process_time() - c0
            wall = time.perf_counter() - t0
            print(f"{n} signed issue requests in process on PostgreSQL: "
                  f"{1000 * cpu / n:.2f} ms CPU and {1000 * wall / n:.2f} ms wall each "
                  "(under the profiler)")
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
    args = p.parse_args()
    if args.profile:
        run_profile(args.profile, args.top)
    else:
        run_http(args.workers, args.clients, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
