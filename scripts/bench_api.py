"""The HTTP half of the points benchmark (called by bench_points.py): batch requests, then
single requests from 50 concurrent clients, against a real uvicorn server on loopback."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from bench_points import _tree_cpu_s, ledger_layer  # (the scripts' folder is on sys.path)
from eth_utils.address import to_checksum_address
from sqlalchemy import select

from api.app import create_app
from api.client import AllianceClient
from ledger.alliance import Alliance
from ledger.chain import anvil
from ledger.merchants.service import AdmittedMerchant
from ledger.settings import IndexerMode, Settings
from ledger.store.models import Operation


def _serve(alliance: Alliance, port: int, *, indexer_mode: IndexerMode = "thread"
           ) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(create_app(alliance, indexer_mode=indexer_mode),
                            host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread


def _thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by this process's live threads, by the first word of their
    names (Linux: /proc/self/task/<id>/stat, user + system time)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for t in threading.enumerate():
        try:
            with open(f"/proc/self/task/{t.native_id}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = t.name.split("_")[0].split("-")[0].split(" ")[0]
        out[name] = out.get(name, 0.0) + (int(stat[11]) + int(stat[12])) / tick
    return out


def _wait_confirmed(alliance: Alliance, op_ids: list[str], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(op_ids)
    while pending:
        # A read session: it takes no write lock, so the poll does not queue with the
        # service's writers (requests, outbox, indexer) for SQLite's one writer.
        # One statement a poll for the three columns it needs: it read every pending
        # operation whole (its ~40 kB payload parsed) by one query each, every 20 ms, on
        # the measured process's CPU (75 us an op of its MainThread while the outbox
        # finished the batches, load 9).
        with alliance.store.read_session() as s:
            rows = s.execute(select(Operation.id, Operation.status, Operation.error_code)
                             .where(Operation.id.in_(pending),
                                    Operation.status.in_(("confirmed", "failed")))).all()
        for op_id, status, error in rows:
            if status == "failed":
                raise RuntimeError(f"operation {op_id} failed: {error}")
            pending.discard(op_id)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} operations not confirmed")
        time.sleep(0.02)


def send_from_process(port: int, requests: list[dict[str, Any]], work: Path,
                      *, threads: int = 4, at_start: Callable[[], None] | None = None
                      ) -> tuple[float, list[str]]:
    """:func:`send_timed` without the time of the last answer (bench_clearing's call; its
    CPU counters, started before this call, also count the service's idle rounds while the
    clients' process starts: ``at_start`` starts them with the clock)."""
    t0, _, op_ids = send_timed(port, requests, work, threads=threads, at_start=at_start)
    return t0, op_ids


def send_timed(port: int, requests: list[dict[str, Any]], work: Path,
               *, threads: int = 4, at_start: Callable[[], None] | None = None
               ) -> tuple[float, float, list[str]]:
    """Send ``requests`` (each ``{"key_id", "secret", "path", "body"}``) from ``threads``
    threads of a process of their own, as partners' systems would: the measured process is
    the service alone. The clock starts at the first request (the client process says when
    its imports are done and its requests loaded, then sends on "go"; ``at_start`` is called
    just before, where the caller's CPU counters start too). Gives the clock's
    start (``time.perf_counter``), when the last answer was in (the client printed their
    operation ids) and the operation ids of the 202 answers."""
    work.write_text(json.dumps(requests))
    root = Path(sys.modules[AllianceClient.__module__].__file__ or "").resolve().parents[1]
    proc = subprocess.Popen([sys.executable, __file__, "--client", str(port), str(work),
                             str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(root)))
    assert proc.stdin is not None and proc.stdout is not None
    ready = proc.stdout.readline()
    assert ready.strip() == "ready", ready
    if at_start is not None:
        at_start()
    t0 = time.perf_counter()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    # The answers are in when the client prints their operation ids: the process's exit
    # is not waited for on the clock (it tore down web3's and FastAPI's module graph, 0.1 s
    # on a quiet machine, 2.9-5.9 s at load 10, counted against the service until 2026-11-27;
    # it now ends by os._exit, see _client).
    out = proc.stdout.readline()
    answered = time.perf_counter()
    rest, _ = proc.communicate(timeout=600)
    CLIENT_CPU["last"] = float(rest.split()[0]) if rest.strip() else 0.0
    if os.environ.get("ALLIANCE_WRITER_TIMING"):
        from ledger.store.db import note_timing

        note_timing("sender go", t0, 0.0, 0.0)
        note_timing("sender read", answered, 0.0, 0.0)
        note_timing("sender done", time.perf_counter(), 0.0, 0.0)
    assert proc.returncode == 0 and out, f"the client process failed ({proc.returncode})"
    return t0, answered, list(json.loads(out))


# The client process's CPU seconds in its last run of send_timed (printed by _client).
CLIENT_CPU: dict[str, float] = {"last": 0.0}


def _client(port: int, path: Path, threads: int) -> None:
    """The client process of :func:`send_from_process`: prints the operation ids as JSON."""
    requests = json.loads(path.read_text())
    op_ids: list[str] = []
    lock = threading.Lock()
    # ALLIANCE_WRITER_TIMING=<path>: every request's latency, to <path>.client.<pid>.
    timing = os.environ.get("ALLIANCE_WRITER_TIMING")
    latencies: list[tuple[float, float]] = []

    def send(part: list[dict[str, Any]], http: httpx.Client) -> None:
        with http:
            for req in part:
                c = AllianceClient(http, req["key_id"], req["secret"])
                t = time.perf_counter()
                r = c.post(req["path"], req["body"])
                if timing:
                    with lock:
                        latencies.append((t, time.perf_counter() - t))
                assert r.status_code == 202, r.text
                answer = r.json()
                with lock:
                    op_ids.extend([op["id"] for op in answer["operations"]]
                                  if "operations" in answer else [answer["id"]])

    # The clients are made before "ready": the clock is the requests' (creating them took
    # 0.1-0.2 s at load 10, on the clock until 2026-11-27).
    workers = [threading.Thread(target=send, args=(
        requests[i::threads], httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)))
        for i in range(threads)]
    print("ready", flush=True)
    sys.stdin.readline()
    went = time.perf_counter()
    cpu_went = time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if timing:
        with open(f"{timing}.client.{os.getpid()}", "a") as f:
            f.writelines(f"client\t{t:.6f}\t{d * 1e3:.3f}\t0\n" for t, d in latencies)
            f.write(f"client go\t{went:.6f}\t0\t0\nclient done\t{time.perf_counter():.6f}"
                    "\t0\t0\n")
    print(json.dumps(op_ids), flush=True)
    # Its CPU (seconds) from "go", on a line of its own after the ids: the machine's other load.
    print(json.dumps(time.process_time() - cpu_went), flush=True)
    # Nothing is left to do: the interpreter's teardown of this process's modules is skipped.
    os._exit(0)


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds used so far by process ``pid`` (Linux: /proc/<pid>/stat; 0 if gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _indexer_of(server: uvicorn.Server) -> Any:
    """The indexer worker of the served app's runtime (a Follower thread or an
    IndexerProcess)."""
    app = server.config.app
    return next(w for w in app.state.runtime.workers if w.name == "indexer")


def _wait_indexed(alliance: Alliance, indexer: Any, timeout_s: float = 300) -> None:
    """Wait until the indexer's every projection reflects the confirmed head as it is now."""
    target = alliance.gateway.block_number() - alliance.settings.confirmations
    deadline = time.monotonic() + timeout_s
    while min(indexer.synced_blocks().values(), default=-1) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the indexer did not reach block {target}")
        time.sleep(0.02)


SHAPES = {
    "process": "the indexer in a process of its own (as `alliance serve` runs it)",
    "thread": "the indexer in a thread of the measured process (as main measured it)",
}


def batch_figure(alliance: Alliance, settings: Settings, merchant: AdmittedMerchant, ops: int,
                 batch: int, server: uvicorn.Server, port: int, shape: str, tag: str,
                 ledger_ops_s: float | None,
                 adjacent: tuple[float, float] | None = None) -> float:
    """Batch requests: ``ops`` lines in requests of ``batch``, from 4 clients at once, in a
    process of their own (as bench_clearing's: the measured process is the service). The
    indexer first reads what the runs before left on the chain (the ledger layer's and the
    chain alone's 8,000+ events: not this figure's work; main counted it here), then the
    clock starts. Prints the figure and the CPU of every role per op, the indexer's wherever
    it runs (its own process is on the same two cores)."""
    indexer = _indexer_of(server)
    _wait_indexed(alliance, indexer)
    # The server's first request builds the request guard's route table (api/guard.py,
    # once per app: 0.2-1.3 s of the event loop at load 5-10, on the clock and in the event
    # loop's CPU per op until 2026-11-27): a start-up cost, not an op's; bench_clearing
    # warms its server so too.
    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).raise_for_status()
    members = [to_checksum_address(os.urandom(20)) for _ in range(ops)]
    bodies = [{"items": [{"member": members[i], "points": 5, "order_id": f"api-b{tag}-{i}"}
                         for i in range(k, min(ops, k + batch))]}
              for k in range(0, ops, batch)]
    pid = getattr(indexer, "pid", None)
    # The CPU counters start with the clock, when the client process is ready: they started
    # before it was spawned, and the service's idle rounds while it imported web3 and FastAPI
    # (1-5 s by the load; 350 empty rounds of the outbox, ~1 ms each, at load 8) were counted
    # as the ops' CPU until 2026-11-27: most of the outbox's "115-168 us an op".
    start: dict[str, Any] = {}

    node_pid = anvil.status(settings).pid

    def counters_start() -> None:
        start["threads"], start["child"] = _thread_cpu(), _proc_cpu(pid)
        start["node"] = _tree_cpu_s(node_pid) if node_pid else 0.0

    t0, answered, op_ids = send_timed(port, [
        {"key_id": merchant.key_id, "secret": merchant.secret,
         "path": "/v1/points/issue-batch", "body": b} for b in bodies],
        Path(settings.data_dir) / f"bench-batch-requests{tag}.json", at_start=counters_start)
    threads0, child0 = start["threads"], start["child"]
    accepted_s = ops / (answered - t0)  # every 202 in
    _wait_confirmed(alliance, op_ids)
    elapsed = time.perf_counter() - t0
    batch_s = ops / elapsed
    per = {k: (v - threads0.get(k, 0.0)) * 1e6 / ops for k, v in _thread_cpu().items()}
    if pid is not None:
        per["indexer process"] = (_proc_cpu(pid) - child0) * 1e6 / ops
    node_us = ((_tree_cpu_s(node_pid) if node_pid else 0.0) - start["node"]) * 1e6 / ops
    client_us = CLIENT_CPU["last"] * 1e6 / ops
    print(f"HTTP API, batch requests of {batch}: {ops} ops confirmed at {batch_s:,.0f} "
          f"ops/s  (target >= 5,000: {batch_s / 5000:.2f}x; accepted at {accepted_s:,.0f} ops/s); "
          f"{SHAPES[shape]}, load {os.getloadavg()[0]:.2f}")
    print("  CPU per op by role (us; the clients' process not counted): " + ", ".join(
        f"{k} {v:.0f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v > 0)
        + f"; total {sum(per.values()):.0f}")
    # How busy the two cores were on the clock: the service, the node and the clients. What
    # is left of 2 x the clock was waiting (or other processes' load).
    busy = (sum(per.values()) + node_us + client_us) * ops / 1e6
    print(f"  the node (anvil) {node_us:.0f} us an op, the clients' process {client_us:.0f}: "
          f"{busy:.2f} CPU-s over {elapsed:.2f} s on the clock = {busy / elapsed:.2f} cores "
          f"busy of {os.cpu_count()}")
    if adjacent is not None:
        print(f"HTTP batch vs the ledger layer measured just before it on the same chain: "
              f"{batch_s:,.0f} vs {adjacent[0]:,.0f} ops/s = {batch_s / adjacent[0]:.2f}x  "
              f"(the node {adjacent[1]:.0f} us an op there; {shape})")
    if ledger_ops_s is not None:
        print(f"HTTP batch vs the ledger layer of the same run: {batch_s:,.0f} vs "
              f"{ledger_ops_s:,.0f} ops/s = {batch_s / ledger_ops_s:.2f}x  (target >= 0.8x; "
              f"{shape})")
    return batch_s


def _ledger_layer_now(alliance: Alliance, merchant: AdmittedMerchant, ops: int, batch: int,
                      tag: str) -> tuple[float, float]:
    """bench_points' ledger layer on the chain as it is now: its ops/s and the node's CPU
    per op (printed)."""
    res = ledger_layer(alliance, merchant.merchant_id, ops, batch, tag=f"adj{tag}")
    ops_s, node_us = ops / res["elapsed"], res["cpu"]["node"] * 1e6 / ops
    print(f"ledger layer again, just before the HTTP batches, on the same chain: {ops_s:,.0f} "
          f"ops/s; the node {node_us:.0f} us an op, Python "
          f"{res['cpu']['python'] * 1e6 / ops:.0f}")
    return ops_s, node_us


def api_figures(alliance: Alliance, settings: Settings, merchant: AdmittedMerchant, ops: int,
                batch: int, ledger_ops_s: float | None = None,
                shapes: tuple[str, ...] = ("process", "thread")) -> None:
    """``ledger_ops_s``: the ledger layer's ops/s measured in the same run (bench_points), the
    reference of the HTTP batch figure (target >= 0.8x of it). The batch figure is measured
    once per shape of ``shapes`` (a server each, in that order); the single requests on the
    last one's server."""
    import socket

    adjacent: dict[str, tuple[float, float]] = {}
    # Each figure's own tag (its order ids: the ledger layer's just before and the HTTP
    # batches'): a shape named twice (``thread,thread``) reused the first one's order ids, so
    # the second ledger layer's issues were all already issued, none was confirmed, and its
    # wait for them never ended (one figure printed, not two).
    tags = [f"-{shape}" if shapes.count(shape) == 1 else f"-{shape}{n}"
            for n, shape in enumerate(shapes)]
    for n, shape in enumerate(shapes):
        # The ledger layer again, on the chain as it is now (no server runs yet): the node's
        # CPU per op grows with the chain's state (53 us an op on the fresh chain, 167-230 on
        # the same after the chain-alone halves, scratch runs of 2026-11-27), and the figure
        # of the same run was measured on the fresh chain, before the chain-alone halves.
        adjacent[tags[n]] = _ledger_layer_now(alliance, merchant, ops, batch, tags[n])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        server, thread = _serve(alliance, port, indexer_mode=shape)
        if n < len(shapes) - 1:
            try:
                batch_figure(alliance, settings, merchant, ops, batch, server, port, shape,
                             tags[n], ledger_ops_s, adjacent[tags[n]])
            finally:
                server.should_exit = True
                thread.join(timeout=30)
    base = f"http://127.0.0.1:{port}"
    try:
        lock = threading.Lock()
        batch_figure(alliance, settings, merchant, ops, batch, server, port, shapes[-1],
                     tags[-1], ledger_ops_s, adjacent[tags[-1]])

        # Single requests from 50 concurrent clients.
        singles = min(ops, 2000)
        per_client = singles // 50
        latencies: list[float] = []
        single_ids: list[str] = []
        client_cpu: list[float] = []

        threads0 = _thread_cpu()

        def client_loop(c_index: int) -> None:
            with httpx.Client(base_url=base, timeout=60) as http:
                c = AllianceClient(http, merchant.key_id, merchant.secret)
                for j in range(per_client):
                    body = {"member": to_checksum_address(os.urandom(20)), "points": 3,
                            "order_id": f"api-s-{c_index}-{j}"}
                    t = time.perf_counter()
                    r = c.post("/v1/points/issue", body)
                    dt = time.perf_counter() - t
                    assert r.status_code == 202, r.text
                    with lock:
                        latencies.append(dt)
                        single_ids.append(r.json()["id"])
            with lock:
                client_cpu.append(time.thread_time())

        t0 = time.perf_counter()
        cpu0 = time.process_time()
        clients = [threading.Thread(target=client_loop, args=(i,)) for i in range(50)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        accepted_s = len(latencies) / (time.perf_counter() - t0)
        _wait_confirmed(alliance, single_ids)
        confirmed_s = len(latencies) / (time.perf_counter() - t0)
        cpu_ms = (time.process_time() - cpu0) * 1000 / len(latencies)
        per = {k: (v - threads0.get(k, 0.0)) * 1000 / len(latencies)
               for k, v in _thread_cpu().items()}
        per["clients"] = sum(client_cpu) * 1000 / len(latencies)
        print(f"CPU of this process (server, workers and clients) per single request, to "
              f"confirmed: {cpu_ms:.2f} ms")
        print("  of which, by thread: " + ", ".join(
            f"{k} {v:.2f} ms" for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v > 0))
        lat = sorted(latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000
        print(f"HTTP API, single requests from 50 clients: {accepted_s:,.0f} req/s accepted "
              f"(target >= 500: {accepted_s / 500:.2f}x), {confirmed_s:,.0f}/s confirmed; "
              f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--client":
        _client(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
