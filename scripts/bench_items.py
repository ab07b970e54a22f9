"""Items benchmark on a fresh local anvil, every figure next to its floor, in one run.

- gas per serial of a 100,000-serial batch registration (one Merkle root);
- gas per custody event in a 200-event ``recordEvents`` (marginal: (g(200) - g(1)) / 199)
  next to the log-only floor (LOG3 + 3 data words = 2,268, plus the event's own calldata);
- gas per activation in a 200-item ``activate`` (marginal) next to the storage floor (one
  new slot, 22,100, + its log and calldata);
- custody events recorded per second through the service with outbox batching;
- custody events recorded per second through the HTTP batch endpoint (``POST
  /v1/items/events``, a few signed clients against a real uvicorn server with its workers
  running), each confirmed on chain, next to the same number of events queued by the ledger
  layer (``items.record_events``, no HTTP) from as many threads against the same workers;
- verify requests per second (read model only: the chain is not asked), in the service and
  through HTTP: 16 keep-alive clients against a real uvicorn server on loopback, next to a
  bare endpoint of the same server that returns constant JSON (the framework's ceiling here).

Usage: .venv/bin/python scripts/bench_items.py [--serials 100000] [--events 200]
       [--http-seconds 5] [--clients 16] [--api-events 512] [--api-batch 64]
       [--api-clients 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

import httpx
import uvicorn
from fastapi import Depends
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.app import create_app  # noqa: E402
from api.client import AllianceClient  # noqa: E402
from api.routes.public import public_client  # noqa: E402
from api.schemas.items import VerifyOut  # noqa: E402
from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.items import service as items  # noqa: E402
from ledger.items.repos import ItemScan  # noqa: E402
from ledger.merchants.service import AdmittedMerchant, admit_merchant  # noqa: E402
from ledger.outbox import repos as outbox_repos  # noqa: E402
from ledger.runtime import indexer, outbox_worker  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.store.models import Operation, OperationStatus  # noqa: E402

GTIN = "09506000134352"
FACTORY, SHOP = "urn:epc:id:sgln:9506000.13435.0", "store:bench:1"
NEW_SLOT = 22_100
LOG3_3WORDS = 375 + 3 * 375 + 8 * 96  # CustodyRecorded: 2,268


def calldata_cost(data: bytes) -> int:
    nonzero = sum(1 for b in data if b)
    return 16 * nonzero + 4 * (len(data) - nonzero)


def gas_of(alliance: Alliance, op_ids: list[str]) -> tuple[int, int]:
    """(gas, calldata gas) of the one transaction carrying these operations."""
    with alliance.store.read_session() as s:
        txs = {outbox_repos.get_operation(s, i).tx_hash for i in op_ids}  # type: ignore[union-attr]
    assert len(txs) == 1, f"expected one transaction, got {len(txs)}"
    (tx,) = txs
    receipt = alliance.gateway.receipt(str(tx))
    assert receipt is not None and receipt["status"] == 1
    raw = alliance.gateway.rpc("eth_getTransactionByHash", [tx])["input"]
    return int(receipt["gasUsed"]), calldata_cost(bytes.fromhex(raw[2:]))


def settle(alliance: Alliance) -> None:
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()


def events(alliance: Alliance, merchant_id: int, lines: list[items.EventLine]) -> list[str]:
    with alliance.store.session() as s:
        return [v.id for v in items.record_events(alliance, s, merchant_id=merchant_id,
                                                  lines=lines)]


def _load(url: str, paths: list[str], seconds: float, clients: int) -> tuple[float, list[float]]:
    """Requests/s answered 200 and their latencies (s), ``clients`` keep-alive clients."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            k = i
            while k == i or time.perf_counter() < stop:  # at least one request each
                t = time.perf_counter()
                r = http.get(paths[k % len(paths)])
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                    return
                latencies[i].append(time.perf_counter() - t)
                k += clients

    t0 = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"a request failed: {failures[0]}")
    flat = sorted(x for lat in latencies for x in lat)
    return len(flat) / elapsed, flat


def _serve(app: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,  # type: ignore[arg-type]
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def _wait_confirmed(alliance: Alliance, op_ids: list[str], timeout_s: float = 600) -> None:
    """Poll (one count query) until every operation is confirmed on chain; none may fail."""
    deadline = time.monotonic() + timeout_s
    while True:
        with alliance.store.read_session() as s:
            rows = dict(s.execute(select(Operation.status, func.count())
                                  .where(Operation.id.in_(op_ids))
                                  .group_by(Operation.status)).all())
        if rows.get(OperationStatus.FAILED):
            raise SystemExit(f"{rows[OperationStatus.FAILED]} custody events failed")
        if rows.get(OperationStatus.CONFIRMED, 0) == len(op_ids):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"not confirmed in {timeout_s} s: {rows}")
        time.sleep(0.02)


def events_over_http(alliance: Alliance, brand: AdmittedMerchant, codes: list[str],
                     batch: int, clients: int) -> None:
    """Shipping events through POST /v1/items/events (``clients`` signed clients, requests of
    ``batch`` events) against a real server whose workers run, until each is confirmed on
    chain; then as many events of other items queued by ``items.record_events`` from as many
    threads, against the same running workers: the reference, in the same run."""
    half = len(codes) // 2
    via_http, via_ledger = codes[:half], codes[half:2 * half]
    app = create_app(alliance, run_workers=True)
    server, thread, url = _serve(app)

    def chunks(cs: list[str]) -> list[list[str]]:
        return [cs[i:i + batch] for i in range(0, len(cs), batch)]

    def run(send: object, parts: list[list[str]]) -> tuple[float, float]:
        """(events/s accepted, events/s confirmed on chain), from the first send."""
        ids: list[str] = []
        lock = threading.Lock()

        def worker(mine: list[list[str]]) -> None:
            for part in mine:
                got = send(part)  # type: ignore[operator]
                with lock:
                    ids.extend(got)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(parts[i::clients],))
                   for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = len(ids) / (time.perf_counter() - t0)
        _wait_confirmed(alliance, ids)
        assert len(ids) == sum(len(p) for p in parts)
        return accepted, len(ids) / (time.perf_counter() - t0)

    local = threading.local()

    def send_http(part: list[str]) -> list[str]:
        if not hasattr(local, "client"):
            local.client = AllianceClient(httpx.Client(base_url=url, timeout=120),
                                          brand.key_id, brand.secret)
        body = {"events": [{"code": c, "biz_step": "shipping", "location": FACTORY,
                            "destination": SHOP} for c in part]}
        r = local.client.post("/v1/items/events", body)
        if r.status_code != 202:
            raise SystemExit(f"events request failed: {r.status_code} {r.text[:300]}")
        return [op["id"] for op in r.json()["operations"]]

    def send_ledger(part: list[str]) -> list[str]:
        return events(alliance, brand.merchant_id,
                      [items.EventLine(c, "shipping", FACTORY, SHOP) for c in part])

    try:
        http_in, http_rate = run(send_http, chunks(via_http))
        ledger_in, ledger_rate = run(send_ledger, chunks(via_ledger))
    finally:
        server.should_exit = True
        thread.join(30)
    print(f"events recorded through HTTP (POST /v1/items/events, {clients} clients, "
          f"{batch} events a request, workers running, each confirmed on chain): "
          f"{http_rate:,.0f} events/s; the ledger layer queueing as many events from "
          f"{clients} threads against the same workers: {ledger_rate:,.0f} events/s -> "
          f"{http_rate / ledger_rate:.2f}x; accepted (202 / queued): {http_in:,.0f} vs "
          f"{ledger_in:,.0f} events/s -> {http_in / ledger_in:.2f}x")


def scans_after(alliance: Alliance) -> int:
    """Scan rows written so far."""
    with alliance.store.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(ItemScan)) or 0)


def verify_over_http(alliance: Alliance, codes: list[str], seconds: float,
                     clients: int) -> None:
    """The public verify endpoint through a real server, next to a bare endpoint of it and
    to the same verify writing its scan as it did before the scan buffer (a write session and
    a commit per request), alternating, in one run."""
    app = create_app(alliance, run_workers=False)

    @app.get("/bench/bare", include_in_schema=False)
    def bare() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/bench/verify-commit", include_in_schema=False, response_model=VerifyOut,
             dependencies=[Depends(public_client)])
    def verify_commit(code: str) -> VerifyOut:
        with alliance.store.session() as s:
            v = items.verify(s, code=code)
        return VerifyOut.model_validate(asdict(v))

    server, thread, url = _serve(app)
    try:
        flushes0 = items.scan_buffer(alliance.store).flushes
        verify_paths = [f"/v1/public/items/verify?code={quote(c, safe='')}" for c in codes]
        commit_paths = [f"/bench/verify-commit?code={quote(c, safe='')}" for c in codes]
        _load(url, verify_paths[:clients], 0.5, clients)  # warm up
        names = ("verify", "commit", "bare")
        rates: dict[str, list[float]] = {n: [] for n in names}
        lat: dict[str, list[float]] = {n: [] for n in names}
        buf = items.scan_buffer(alliance.store)
        scans_buffered = 0
        for _ in range(2):  # alternate, so a noisy moment hits each
            for name, paths in zip(names, (verify_paths, commit_paths, ["/bench/bare"]),
                                   strict=True):
                before = scans_after(alliance)
                rate, flat = _load(url, paths, seconds / 3, clients)
                if name == "verify":
                    buf.flush()
                    scans_buffered += scans_after(alliance) - before
                rates[name].append(rate)
                lat[name].extend(flat)
        v, b = statistics.mean(rates["verify"]), statistics.mean(rates["bare"])
        c = statistics.mean(rates["commit"])

        def pct(xs: list[float], q: float) -> float:
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")

        print(f"verify through HTTP ({clients} keep-alive clients, uvicorn on loopback, "
              f"public rate limit lifted for the run): {v:,.0f} requests/s, p50 "
              f"{pct(lat['verify'], 0.5):.1f} ms, p99 {pct(lat['verify'], 0.99):.1f} ms; "
              f"bare endpoint of the same server {b:,.0f}/s (p50 "
              f"{pct(lat['bare'], 0.5):.1f} ms) -> {v / b:.2f}x the bare endpoint; scan "
              f"rows written by the buffer: {buf.flushes - flushes0} INSERTs for "
              f"{scans_buffered:,} scans")
        print(f"verify writing its scan with a commit per request (before the buffer), same "
              f"server, alternated: {c:,.0f} requests/s, p50 {pct(lat['commit'], 0.5):.1f} ms, "
              f"p99 {pct(lat['commit'], 0.99):.1f} ms -> {c / b:.2f}x the bare endpoint; "
              f"buffered / commit per request: {v / c:.2f}x")
    finally:
        server.should_exit = True
        thread.join(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--serials", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--http-seconds", type=float, default=6.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--api-events", type=int, default=512,
                    help="custody events through HTTP, and as many through the ledger layer")
    ap.add_argument("--api-batch", type=int, default=64)
    ap.add_argument("--api-clients", type=int, default=4)
    args = ap.parse_args()
    n = args.events
    # The public endpoints' per-address limit (120/min) would cap a loopback benchmark.
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-items-")), chain_id=31337,
                        public_rate_limit_per_minute=10**9)
    url = anvil.start(settings)
    try:
        settings = settings.model_copy(update={"rpc_url": url})
        alliance = Alliance.open(settings)
        brand = admit_merchant(alliance, name="Bench Brand", symbol="BB", rate=1)
        shop = admit_merchant(alliance, name="Bench Shop", symbol="BS", rate=1)
        items.grant_brand(alliance, merchant_id=brand.merchant_id)
        with alliance.store.session() as s:
            items.register_product(alliance, s, merchant_id=brand.merchant_id, gtin=GTIN,
                                   name="bench", claim_points=0)
            items.register_locations(alliance, s, merchant_id=brand.merchant_id,
                                     labels=[FACTORY])
            items.register_locations(alliance, s, merchant_id=shop.merchant_id, labels=[SHOP])
        settle(alliance)

        t0 = time.perf_counter()
        with alliance.store.session() as s:
            b = items.register_batch(alliance, s, merchant_id=brand.merchant_id, gtin=GTIN,
                                     count=args.serials, prefix="B")
        t_build = time.perf_counter() - t0
        settle(alliance)
        g_batch, _ = gas_of(alliance, [b.operation.id])
        print(f"batch of {args.serials:,} serials: {g_batch:,} gas in one transaction = "
              f"{g_batch / args.serials:.3f} gas/serial (tree and store built in "
              f"{t_build:.1f} s)")

        with alliance.store.session() as s:
            labels = items.batch_labels(alliance, s, merchant_id=brand.merchant_id,
                                        batch_id=b.batch_id)
        codes = [c.uri() for c in labels[: n + 1]]

        # activation: one alone, then n in one transaction
        (one,) = events(alliance, brand.merchant_id,
                        [items.EventLine(codes[0], "commissioning", FACTORY)])
        settle(alliance)
        g1, _ = gas_of(alliance, [one])
        t0 = time.perf_counter()
        many = events(alliance, brand.merchant_id, [items.EventLine(c, "commissioning", FACTORY)
                                                    for c in codes[1:]])
        settle(alliance)
        t_act = time.perf_counter() - t0
        gn, cd_n = gas_of(alliance, many)
        per_act = (gn - g1) / (n - 1)
        floor_act = NEW_SLOT + LOG3_3WORDS + cd_n / n
        depth = max(1, (args.serials - 1).bit_length())
        print(f"activation (commissioning with a ~{depth}-level proof): "
              f"{per_act:,.0f} gas/item marginal in a {n}-item tx; storage floor "
              f"{floor_act:,.0f} (new slot 22,100 + log 2,268 + its calldata "
              f"{cd_n / n:,.0f}) -> {per_act / floor_act:.2f}x")

        # custody events: shipping of one, then of n in one transaction
        (one,) = events(alliance, brand.merchant_id,
                        [items.EventLine(codes[0], "shipping", FACTORY, SHOP)])
        settle(alliance)
        g1, _ = gas_of(alliance, [one])
        t0 = time.perf_counter()
        many = events(alliance, brand.merchant_id, [items.EventLine(c, "shipping", FACTORY, SHOP)
                                                    for c in codes[1:]])
        t_queue = time.perf_counter() - t0
        outbox_worker(alliance).drain()
        t_send = time.perf_counter() - t0 - t_queue
        indexer(alliance).catch_up()
        t_ev = time.perf_counter() - t0
        t_index = t_ev - t_queue - t_send
        gn, cd_n = gas_of(alliance, many)
        per_ev = (gn - g1) / (n - 1)
        cd_ev = cd_n / n
        floor_ev = LOG3_3WORDS + cd_ev
        print(f"custody event: {per_ev:,.0f} gas/event marginal in a {n}-event tx; log-only "
              f"floor {floor_ev:,.0f} (LOG3 + 3 words 2,268 + calldata {cd_ev:,.0f}) -> "
              f"{per_ev / floor_ev:.2f}x (target <= 1.3x); vs 2,268 alone "
              f"{per_ev / LOG3_3WORDS:.2f}x")
        print(f"events recorded through the service with batching: {n / t_ev:,.0f}/s "
              f"(queue {n} events, send, confirm, index; activation {n / t_act:,.0f}/s); "
              f"split: queue {t_queue:.2f} s, send+confirm {t_send:.2f} s, index "
              f"{t_index:.2f} s")

        # custody events through HTTP, next to the ledger layer
        m = min(args.api_events, (len(labels) - n - 1) // 2)
        if m > 0:
            api_codes = [c.uri() for c in labels[n + 1: n + 1 + 2 * m]]
            for i in range(0, len(api_codes), 256):
                events(alliance, brand.merchant_id,
                       [items.EventLine(c, "commissioning", FACTORY)
                        for c in api_codes[i:i + 256]])
            settle(alliance)
            events_over_http(alliance, brand, api_codes, args.api_batch, args.api_clients)
            settle(alliance)

        # verify: read model only; the scan goes to the store's scan buffer, as the public
        # endpoint does (ledger.items.scans)
        buf = items.scan_buffer(alliance.store)
        flushes0 = buf.flushes
        t0 = time.perf_counter()
        k = 0
        while time.perf_counter() - t0 < 3.0:
            with alliance.store.read_session() as s:
                v = items.verify(s, code=codes[k % len(codes)], scans=buf)
            assert v.verdict in {"genuine", "suspicious"}
            k += 1
        rate = k / (time.perf_counter() - t0)
        buf.flush()
        print(f"verify: {rate:,.0f} requests/s through the service (store only, no chain call;"
              f" {k:,} scans written in {buf.flushes - flushes0} INSERTs by the scan buffer)")
        verify_over_http(alliance, codes, args.http_seconds, args.clients)
        alliance.close()
    finally:
        anvil.stop(settings)


if __name__ == "__main__":
    main()
