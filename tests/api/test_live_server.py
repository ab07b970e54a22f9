"""Hostile bodies against a real server process: a crash here is a dead process (a segfault
cannot be caught in-process), so these tests talk HTTP to a uvicorn subprocess."""

from __future__ import annotations

import json

import httpx

from api.client import AllianceClient

from .conftest import ApiEnv, LiveServer

MEMBER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_a_body_nested_100000_deep_is_refused_and_the_server_lives(
        live_server: LiveServer) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    # Unauthenticated, as the outside probe sent it; then signed, as a merchant could.
    r = httpx.post(live_server.url + "/v1/points/issue", content=body, timeout=30,
                   headers={"Content-Type": "application/json", "Idempotency-Key": "deep-1"})
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"] == "application/problem+json"
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        m = live_server.merchant
        signed = AllianceClient(http, m.key_id, m.secret).post("/v1/points/issue", None,
                                                               raw=body)
        assert 400 <= signed.status_code < 500, signed.text
        assert signed.headers["content-type"] == "application/problem+json"
        assert live_server.alive(), live_server.log.read_text()
        assert http.get("/healthz").status_code == 200
        ok = AllianceClient(http, m.key_id, m.secret).post(
            "/v1/points/issue", {"member": MEMBER, "points": 5, "order_id": "LIVE-1"})
        assert ok.status_code == 202, ok.text


def test_a_31_mb_unauthenticated_body_is_refused_with_413_before_it_is_read(
        live_server: LiveServer) -> None:
    big = json.dumps({"member": MEMBER, "points": 1, "order_id": "X",
                      "pad": "a" * (31 * 1024 * 1024)}).encode()
    r = httpx.post(live_server.url + "/v1/points/issue", content=big, timeout=60,
                   headers={"Content-Type": "application/json", "Idempotency-Key": "big-1"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "body-too-large"
    assert live_server.alive()


def test_a_chunked_body_without_content_length_is_capped_too(live_server: LiveServer) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(64):
            yield b" " * 65536

    r = httpx.post(live_server.url + "/v1/points/issue", content=chunks(), timeout=60,
                   headers={"Content-Type": "application/json", "Idempotency-Key": "chunk-1"})
    assert r.status_code == 413 and r.json()["code"] == "body-too-large"
    assert live_server.alive()


def test_the_app_puts_back_a_recursion_limit_a_dependency_lifted(env: ApiEnv) -> None:
    import sys

    import py_ecc.optimized_bn128  # noqa: F401

    from api.guard import RECURSION_LIMIT

    previous = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(100_000)  # as py_ecc does on import
        assert env.store.get("/v1/merchants/me").status_code == 200
        assert sys.getrecursionlimit() == RECURSION_LIMIT
    finally:
        sys.setrecursionlimit(previous)
