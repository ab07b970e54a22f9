"""The floor of a signed single request (issue 14): a tiny ASGI app for ``bench_http.py
--floors``, served by uvicorn in the same shape as ``alliance serve --workers N``. It is a
benchmark's yardstick, never a route of the product.

Each path does the least a part of a signed issue must do, no framework around it:

* ``GET /health``: constant JSON (uvicorn alone; the product's ``/health`` adds FastAPI and
  the middleware stack);
* ``POST /recover``: read the body (``{"digest": hex, "signature": hex}``), parse its JSON and
  recover one EIP-712 signature's signer with ``ledger.points.service.recover_signer``
  (coincurve / libsecp256k1, as the redeem checks do);
* ``POST /commit1``: that, plus one PostgreSQL statement in autocommit: one INSERT of one row,
  committed (one round trip: the least a durable accept can do);
* ``POST /commit5``: that, with the product's shape of round trips: BEGIN, three INSERTs,
  COMMIT (five round trips, as a signed issue makes today).

The database is ``BENCH_FLOOR_DSN`` (a libpq DSN); each process keeps up to
``BENCH_FLOOR_POOL`` async connections (psycopg), made as they are first needed.

    uvicorn bench_http_floor:app --app-dir scripts --workers 2 --port P --no-access-log
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from ledger.points.service import recover_signer  # noqa: E402

TABLE = "bench_floor_accepts"
DDL = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, signer text NOT NULL, "
       "body bytea NOT NULL, at timestamptz NOT NULL DEFAULT now())")
INSERT = f"INSERT INTO {TABLE} (signer, body) VALUES (%s, %s)"
OK = b'{"status":"ok"}'
HEADERS = [(b"content-type", b"application/json")]


class Pool:
    """Async connections of this process, made when first needed, at most ``size``."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn, self.size, self.made = dsn, size, 0
        self.idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

    async def get(self, autocommit: bool) -> psycopg.AsyncConnection[Any]:
        if self.idle.empty() and self.made < self.size:
            self.made += 1
            conn = await psycopg.AsyncConnection.connect(self.dsn)
        else:
            conn = await self.idle.get()
        if conn.autocommit != autocommit:
            await conn.set_autocommit(autocommit)
        return conn

    def put(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.idle.put_nowait(conn)


_pool: Pool | None = None


def pool() -> Pool:
    global _pool
    if _pool is None:
        _pool = Pool(os.environ["BENCH_FLOOR_DSN"], int(os.environ.get("BENCH_FLOOR_POOL", "20")))
    return _pool


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": HEADERS + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/health":
        await _answer(send, 200, OK)
        return
    if path not in ("/recover", "/commit1", "/commit5") or scope["method"] != "POST":
        await _answer(send, 404, b'{"error":"not-found"}')
        return
    raw = await _body(receive)
    doc = json.loads(raw)
    signer = recover_signer(bytes.fromhex(doc["digest"]), bytes.fromhex(doc["signature"]))
    if path == "/commit1":
        p = pool()
        conn = await p.get(autocommit=True)
        try:
            await conn.execute(INSERT, (signer, raw))
        finally:
            p.put(conn)
    elif path == "/commit5":
        p = pool()
        conn = await p.get(autocommit=False)
        try:
            async with conn.transaction():  # BEGIN ... COMMIT
                for _ in range(3):
                    await conn.execute(INSERT, (signer, raw))
        finally:
            p.put(conn)
    await _answer(send, 202, json.dumps({"signer": signer}).encode())
