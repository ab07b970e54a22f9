"""The single signed request's path (issue 14): the database work of one issue request, and
that what was moved out of its own session still refuses what it refused."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.requests import Request

from api import auth, errors
from api.auth import Principal
from api.client import sign_request
from api.errors import ApiError
from api.idempotency import run_idempotent
from api.ratelimit import RateLimiter
from api.routes import points
from ledger import runtime
from ledger.errors import LedgerValidationError
from ledger.merchants import repos as merchant_repos
from ledger.outbox import repos as outbox_repos
from ledger.settings import Settings
from ledger.store.models import IdempotencyRecord, UsedSignature
from ledger.types import MerchantId
from tests.ledger.conftest import fresh_pg_database
from tests.pg import postgres_server

from .conftest import ApiEnv, make_env, refused_while_suspended


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def quiet_env(request: pytest.FixtureRequest, settings: Settings) -> Iterator[ApiEnv]:
    # No background workers: every statement on the engine is the request's own. On
    # PostgreSQL the merchant read, the replay record and the claim are one statement.
    if request.param == "postgresql":
        url = fresh_pg_database(request.getfixturevalue("pg_server"))
        settings = settings.model_copy(update={"database_url": url})
    yield from make_env(settings, run_workers=False)


def _statements(env: ApiEnv, send: Any) -> tuple[Any, list[str]]:
    seen: list[str] = []

    def log(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = env.alliance.store.engine
    event.listen(engine, "before_cursor_execute", log)
    try:
        result = send()
    finally:
        event.remove(engine, "before_cursor_execute", log)
    return result, seen


def test_a_signed_issue_reads_its_merchant_once_in_its_own_write_transaction(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    member = Account.create().address
    assert env.store.post("/v1/points/issue", {"member": member, "points": 1,
                                               "order_id": "LEAN-0"}).status_code == 202
    # With a spend, so that on PostgreSQL too the request takes the route and its session
    # (the lean path, for requests without one, is tests/api/test_lean_issue_postgresql.py).
    r, seen = _statements(env, lambda: env.store.post(
        "/v1/points/issue", {"member": member, "points": 2, "order_id": "LEAN-1",
                             "spend": 700}, idempotency_key="lean-1"))
    assert r.status_code == 202, r.text
    merchant_reads = [s for s in seen if "FROM merchants" in s]
    # Before: the suspension check read the merchant in a session of its own, then the
    # service read it again in the write transaction (2 reads, 2 sessions).
    assert len(merchant_reads) == 1, seen
    # ... and that read comes before anything the request writes.
    first_write = next(i for i, s in enumerate(seen) if s.startswith(("INSERT", "UPDATE")))
    assert seen.index(merchant_reads[0]) < first_write, seen
    if env.alliance.store.engine.dialect.name == "postgresql":
        # One round trip reads the merchant, spends the signature and claims the key (three
        # before); then the operation; the recorded response goes with the COMMIT, in one
        # round trip under SQLAlchemy (repos.idempotency_complete_and_commit). The spend:
        # its read and its row.
        assert len(seen) == 4 and seen[0].startswith("WITH"), seen
        assert seen[1].startswith("INSERT INTO operations"), seen
        assert seen[2].startswith("SELECT") and "FROM order_spends" in seen[2], seen
        assert seen[3].startswith("INSERT INTO order_spends"), seen
        assert "used_request_signatures" in seen[0] and "idempotency_records" in seen[0]
    # The response was recorded with the request's writes: the same request under the same
    # key is its replay.
    again = env.store.post("/v1/points/issue", {"member": member, "points": 2,
                                                "order_id": "LEAN-1", "spend": 700},
                           idempotency_key="lean-1")
    assert again.status_code == 202 and again.json() == r.json(), again.text
    assert again.headers.get("idempotent-replayed") == "true"


def test_a_suspended_merchants_issue_is_refused_and_leaves_no_record_to_replay(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    payload = {"member": Account.create().address, "points": 3, "order_id": "LEAN-S"}
    refused_while_suspended(env, "/v1/points/issue", payload, key="lean-suspended")
    # The refusal recorded nothing under the key: the same request now runs (202), it is
    # not a replay of the 403.
    r = env.store.post("/v1/points/issue", payload, idempotency_key="lean-suspended")
    assert r.status_code == 202, r.text
    assert "Idempotent-Replayed" not in r.headers
    again = env.store.post("/v1/points/issue", payload, idempotency_key="lean-suspended")
    assert again.status_code == 202 and again.headers.get("Idempotent-Replayed") == "true"


def test_a_merchant_suspended_between_two_requests_is_refused_on_the_next_one(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    mid = env.store_merchant.merchant_id
    member = Account.create().address
    assert env.store.post("/v1/points/issue", {"member": member, "points": 1,
                                               "order_id": "LEAN-N1"}).status_code == 202
    with env.alliance.store.session() as s:
        merchant_repos.set_merchant_status(s, mid, "suspended")
    for path, body in (("/v1/points/issue", {"member": member, "points": 1,
                                             "order_id": "LEAN-N2"}),
                       ("/v1/points/reverse", {"order_id": "LEAN-N1", "points": 1})):
        r = env.store.post(path, body)
        assert r.status_code == 403 and r.json()["code"] == "merchant-suspended", (path, r.text)


def _queued(env: ApiEnv) -> int:
    with env.alliance.store.read_session() as s:
        return outbox_repos.count_operations(s)


def _signed_issue(env: ApiEnv, order: str, key: str) -> tuple[bytes, dict[str, str]]:
    m = env.store_merchant
    body = json.dumps({"member": Account.create().address, "points": 4,
                       "order_id": order}).encode()
    headers = sign_request(m.key_id, m.secret, "POST", "/v1/points/issue", body)
    headers.update({"Content-Type": "application/json", "Idempotency-Key": key})
    return body, headers


def test_a_captured_issue_sent_again_is_a_replay_and_queues_nothing(quiet_env: ApiEnv) -> None:
    env = quiet_env
    body, headers = _signed_issue(env, "LEAN-R", "lean-replay")
    assert env.http.post("/v1/points/issue", content=body, headers=headers).status_code == 202
    for key in ("lean-replay", "lean-replay-other-key"):
        r = env.http.post("/v1/points/issue", content=body,
                          headers=dict(headers, **{"Idempotency-Key": key}))
        assert r.status_code == 401 and "replay" in r.json()["detail"], r.text
    assert _queued(env) == 1
    with env.alliance.store.read_session() as s:  # the second key was not claimed
        assert s.get(IdempotencyRecord, (env.store_merchant.key_id,
                                         "lean-replay-other-key")) is None


def test_a_retry_with_a_fresh_signature_replays_and_another_body_is_refused(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    payload = {"member": Account.create().address, "points": 5, "order_id": "LEAN-I"}
    first = env.store.post("/v1/points/issue", payload, idempotency_key="lean-idem")
    again = env.store.post("/v1/points/issue", payload, idempotency_key="lean-idem")
    assert first.status_code == again.status_code == 202, first.text
    assert again.content == first.content and again.headers["Idempotent-Replayed"] == "true"
    other = env.store.post("/v1/points/issue", dict(payload, points=6),
                           idempotency_key="lean-idem")
    assert other.status_code == 409 and other.json()["code"] == "idempotency-key-reused"
    assert _queued(env) == 1


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_no_request_reads_or_writes_the_store_on_the_event_loop(quiet_env: ApiEnv) -> None:
    # A blocking round trip on the event loop holds every request of the process. The
    # credential is read again every CREDENTIAL_TTL_S per key (on the loop before: a stall
    # every two seconds per key), and a signed GET records its signature.
    env = quiet_env
    on_loop: list[str] = []

    def log(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        if _on_event_loop():
            on_loop.append(" ".join(statement.split())[:80])

    auth._caches.clear()  # the next request reads the credential from the store
    engine = env.alliance.store.engine
    event.listen(engine, "before_cursor_execute", log)
    try:
        r = env.store.post("/v1/points/issue", {"member": Account.create().address,
                                                "points": 1, "order_id": "LEAN-LOOP"})
        assert r.status_code == 202, r.text
        auth._caches.clear()
        assert env.store.get("/v1/merchants/me").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", log)
    assert on_loop == []


def test_a_burst_of_one_key_after_its_credential_expired_reads_the_store_once(
        quiet_env: ApiEnv) -> None:
    # The credential is read in a worker thread, before the key's in-flight cap applies:
    # a burst of one key must not take a thread (and a round trip) per request for it.
    env = quiet_env
    m = env.store_merchant
    reads: list[str] = []

    def log(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
        if "api_credentials" in statement:
            reads.append(statement)

    def request(i: int) -> Request:
        body = b"{}"
        headers = sign_request(m.key_id, m.secret, "POST", "/v1/probe", body)
        scope: dict[str, Any] = {
            "type": "http", "method": "POST", "scheme": "http", "path": "/v1/probe",
            "raw_path": b"/v1/probe", "query_string": b"", "root_path": "",
            "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000 + i), "state": {},
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        return Request(scope, receive)

    async def burst() -> list[Principal]:
        return await asyncio.gather(*(auth.authenticate(request(i), env.alliance)
                                      for i in range(20)))

    auth._caches.clear()
    engine = env.alliance.store.engine
    event.listen(engine, "before_cursor_execute", log)
    try:
        got = asyncio.run(burst())
    finally:
        event.remove(engine, "before_cursor_execute", log)
    assert {p.key_id for p in got} == {m.key_id}
    assert len(reads) == 1, len(reads)


def test_an_api_only_process_settles_its_heap_out_of_the_collectors_walks(
        settings: Settings) -> None:
    # `alliance serve` runs API-only processes (run_workers=False); only a runtime's start
    # froze the heap, so their full collections walked every module, ABI and the app, up to
    # 0.9 s each holding the GIL under load.
    runtime._heap_settled_once.clear()
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        env = make_env(settings, run_workers=False)
        next(env)
        assert gc.get_freeze_count() > 0
        env.close()
    finally:
        runtime.settle_heap()


def _post_request(key: str, guard: tuple[str, str, int] | None) -> Request:
    scope: dict[str, Any] = {
        "type": "http", "method": "POST", "scheme": "http", "path": "/v1/probe",
        "raw_path": b"/v1/probe", "query_string": b"", "root_path": "",
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000),
        "headers": [(b"idempotency-key", key.encode())], "state": {}}
    request = Request(scope)
    if guard is not None:
        request.state.replay_guard = guard
    return request


def test_work_that_writes_then_refuses_leaves_only_its_recorded_refusal_and_spent_signature(
        quiet_env: ApiEnv) -> None:
    # The work runs without a savepoint now: a refusal rolls the transaction back whole and
    # writes the signature and the claim again. Nothing the work wrote may stay.
    env = quiet_env
    alliance = env.alliance
    who = Principal("probe-key", "merchant", MerchantId(env.store_merchant.merchant_id))
    calls = 0

    def work(s: Session | None) -> tuple[int, Any]:
        nonlocal calls
        calls += 1
        assert s is not None
        s.add(UsedSignature(key_id="written-by-work", signature="w" * 64))
        s.flush()
        raise LedgerValidationError("refused after writing")

    guard = ("probe-key", "a" * 64, 600)
    r = run_idempotent(_post_request("k-refused", guard), b"{}", alliance, who, work)
    assert r.status_code == 422 and b"refused after writing" in r.body
    with alliance.store.read_session() as s:
        assert s.get(UsedSignature, ("written-by-work", "w" * 64)) is None
        assert s.get(UsedSignature, ("probe-key", "a" * 64)) is not None  # spent
        record = s.get(IdempotencyRecord, ("probe-key", "k-refused"))
        assert record is not None and record.status_code == 422
    # The same key replays the refusal without running the work again.
    again = run_idempotent(_post_request("k-refused", None), b"{}", alliance, who, work)
    assert again.status_code == 422 and again.headers["Idempotent-Replayed"] == "true"
    assert calls == 1
    # The captured request itself, sent again, is a replay (401), the signature being spent.
    with pytest.raises(ApiError) as exc:
        run_idempotent(_post_request("k-other", guard), b"{}", alliance, who, work)
    assert exc.value.status == 401


def test_an_issue_route_outside_the_guard_still_authenticates_and_spends_its_signature(
        quiet_env: ApiEnv) -> None:
    # ``api.deps.principal`` authenticates by itself (after parsing) when no RequestGuard ran
    # (an app built by hand around the routes): it reads the alliance off the app, with no
    # dependency of its own, and the issue route takes credentials, alliance and body as one.
    env = quiet_env
    bare = FastAPI()
    errors.install(bare)
    bare.state.alliance = env.alliance
    bare.state.rate_limiter = RateLimiter(1000)
    bare.include_router(points.router)
    with TestClient(bare) as http:
        body, headers = _signed_issue(env, "LEAN-BARE", "lean-bare")
        unsigned = {k: v for k, v in headers.items() if not k.startswith("X-Alliance")}
        assert http.post("/v1/points/issue", content=body, headers=unsigned).status_code == 401
        tampered = body.replace(b'"points": 4', b'"points": 5')
        assert http.post("/v1/points/issue", content=tampered,
                         headers=headers).status_code == 401
        assert _queued(env) == 0
        first = http.post("/v1/points/issue", content=body, headers=headers)
        assert first.status_code == 202, first.text
        again = http.post("/v1/points/issue", content=body,
                          headers=dict(headers, **{"Idempotency-Key": "lean-bare-2"}))
        assert again.status_code == 401 and "replay" in again.json()["detail"], again.text
    assert _queued(env) == 1


@pytest.mark.parametrize("cancellations", [1, 2])
def test_a_cancelled_lean_issue_waits_for_its_statement_before_it_gives_up_its_slot(
        cancellations: int) -> None:
    # The lean issue's statement runs in a thread while its request holds the key's
    # in-flight slot (api.guard): a cancelled request must not leave that slot before the
    # statement has ended, or the key would have more statements running than its cap. A
    # second cancellation lands while the caller already waits again for the thread
    # (points.in_lean_thread): it must wait on, not give the slot up.
    import threading
    import time

    started, release = threading.Event(), threading.Event()
    ended: list[float] = []

    def statement() -> int:
        started.set()
        release.wait(5)
        ended.append(time.monotonic())
        return 1

    async def main() -> float:
        task = asyncio.ensure_future(points.in_lean_thread(statement))
        while not started.is_set():
            await asyncio.sleep(0.001)
        for _ in range(cancellations - 1):
            task.cancel()
            await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        asyncio.get_running_loop().call_later(0.2, release.set)
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic()

    gave_up = asyncio.run(main())
    assert ended and ended[0] <= gave_up  # the statement ended before the caller went on


def test_the_lean_issues_thread_gives_its_result_or_its_error() -> None:
    async def main() -> tuple[int, str]:
        ok = await points.in_lean_thread(lambda a, b: a + b, 2, 3)
        try:
            await points.in_lean_thread(int, "not a number")
        except ValueError as exc:
            return ok, type(exc).__name__
        return ok, ""

    assert asyncio.run(main()) == (5, "ValueError")


@pytest.mark.parametrize("path", ["/v1/points/issue", "/v1/points/issue/", "//x", "/a b/ü",
                                  "/a;b", "/a%2Fb", "/a?b", "/a#b", "/a\\b", ""])
def test_the_lean_fingerprint_is_the_routes_fingerprint(path: str) -> None:
    # The lean issue fingerprints from the scope (api.idempotency.url_path); a key replayed
    # or reused across the lean path and the route must be judged on the same fingerprint.
    from starlette.requests import Request

    from api.idempotency import fingerprint, fingerprint_of, url_path

    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"q=1",
             "headers": [(b"host", b"127.0.0.1:8000")], "scheme": "http",
             "server": ("127.0.0.1", 8000)}
    body = b'{"points": 1}'
    assert fingerprint_of("POST", url_path(scope), body) == fingerprint(Request(scope), body)
