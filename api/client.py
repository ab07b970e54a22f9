"""A client of the API that signs its requests: for tests, benchmarks, the demo and partners."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from typing import Any

import httpx

from .auth import sign


def sign_request(key_id: str, secret: str, method: str, path: str, body: bytes,
                 ts: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The authentication headers of one request (a fresh nonce unless given)."""
    stamp = str(int(time.time()) if ts is None else ts)
    nonce = nonce or secrets.token_hex(12)
    return {"X-Alliance-Key": key_id, "X-Alliance-Timestamp": stamp,
            "X-Alliance-Nonce": nonce,
            "X-Alliance-Signature": sign(secret, stamp, nonce, method, path, body)}


class AllianceClient:
    """Signed requests to the API through any httpx client (live server or ASGI app)."""

    def __init__(self, http: httpx.Client, key_id: str, secret: str) -> None:
        self.http = http
        self.key_id = key_id
        self.secret = secret

    def request(self, method: str, path: str, payload: Any = None, *,
                idempotency_key: str | None = None, raw: bytes | None = None,
                headers: dict[str, str] | None = None) -> httpx.Response:
        body = raw if raw is not None else (b"" if payload is None else json.dumps(
            payload, separators=(",", ":")).encode())
        h = sign_request(self.key_id, self.secret, method, path, body)
        h["Content-Type"] = "application/json"
        if method == "POST":
            h["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        h.update(headers or {})
        return self.http.request(method, path, content=body, headers=h)

    def post(self, path: str, payload: Any, **kw: Any) -> httpx.Response:
        return self.request("POST", path, payload, **kw)

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def wait_operation(self, op_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll an operation until it is confirmed or failed."""
        deadline = time.monotonic() + timeout_s
        while True:
            body: dict[str, Any] = self.get(f"/v1/operations/{op_id}").json()
            if body.get("status") in {"confirmed", "failed"}:
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(f"operation {op_id} still {body.get('status')}")
            time.sleep(0.02)


def new_key() -> str:
    return str(uuid.uuid4())
