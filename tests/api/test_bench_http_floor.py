"""scripts/bench_http_floor.py, the yardstick of ``bench_http.py --floors`` (issue 14): each
path does the work it is named for, on a real PostgreSQL: the recovered signer is the key's
address, and the commits leave their rows."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from coincurve import PrivateKey
from eth_account import Account
from eth_utils.crypto import keccak

from tests.pg import postgres_server

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> Any:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "scripts"))


floor = _load("bench_http_floor")
bench_http = _load("bench_http")


def test_the_floor_recovers_the_signer_and_commits_one_row_or_three(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = PrivateKey()
    address = Account.from_key(key.secret).address.lower()
    digest = keccak(b"\x19\x01" + keccak(b"domain") + keccak(b"struct"))
    sig = key.sign_recoverable(digest, hasher=None)
    body = json.dumps({"digest": digest.hex(),
                       "signature": (sig[:64] + bytes((sig[64] + 27,))).hex()}).encode()
    with postgres_server() as url:
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(floor.DDL)
        monkeypatch.setenv("BENCH_FLOOR_DSN", dsn)
        monkeypatch.setattr(floor, "_pool", None)

        async def go() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=floor.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://floor") as h:
                out = [await h.get("/health")]
                for path in ("/recover", "/commit1", "/commit5"):
                    out.append(await h.post(path, content=body))
                return out

        health, recover, commit1, commit5 = asyncio.run(go())
        with psycopg.connect(dsn) as c:
            rows = c.execute(f"SELECT signer, count(*) FROM {floor.TABLE} GROUP BY 1").fetchall()
    assert health.status_code == 200
    for r in (recover, commit1, commit5):
        assert r.status_code == 202 and r.json() == {"signer": address}, r.text
    assert rows == [(address, 4)]  # one row for /commit1, three for /commit5

    # the bench's pre-signed floor requests are well-formed POSTs of such bodies
    reqs = tmp_path / "floor.bin"
    bench_http.presign_floor(reqs, "http://127.0.0.1:1", 3)
    records = reqs.read_bytes().split(b"\0")[:-1]
    assert len(records) == 3
    head, _, first = records[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST {PATH} HTTP/1.1\r\n")
    assert set(json.loads(first)) == {"digest", "signature"}
