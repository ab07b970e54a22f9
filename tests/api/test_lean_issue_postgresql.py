"""The lean path of a signed ``POST /v1/points/issue`` on a real PostgreSQL (issue 14):
``api.routes.points.issue_lean``, called by the request guard after it authenticated the raw
bytes, writes the replay record, the idempotency record with its response and the operation
in one statement and commits it in the same round trip; every other request (a bad body, a
refusal, a replay, a reused key, a suspended merchant) is declined with nothing written and
answered by the route exactly as before."""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from eth_account import Account
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine

from api import auth
from api.client import sign_request
from api.guard import MAX_IN_FLIGHT_PER_KEY
from api.routes import points as points_routes
from ledger.merchants import repos as merchant_repos
from ledger.metrics import HTTP_REQUESTS
from ledger.outbox import bell
from ledger.outbox import repos as outbox_repos
from ledger.outbox.bell import BellListener
from ledger.points import service as points_service
from ledger.runtime import Runtime, outbox_worker
from ledger.store import repos as store_repos
from ledger.store.models import IdempotencyRecord, Operation, UsedSignature
from tests.ledger.test_outbox_bell import _confirmed_within

from .conftest import ApiEnv

ISSUE = "/v1/points/issue"


class Traced:
    """What the requests of a block sent through SQLAlchemy and on the driver (libpq's
    trace of every connection checked out of the pool meanwhile)."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.trace = ""

    @property
    def round_trips(self) -> int:
        """Answers of the server that close an exchange (ReadyForQuery)."""
        return sum("ReadyForQuery" in line for line in self.trace.splitlines())


def traced(engine: Engine, send: Callable[[], Any]) -> tuple[Any, Traced]:
    out = Traced()
    with tempfile.TemporaryFile("w+") as f:
        def checkout(dbapi_conn: Any, *_: Any) -> None:
            dbapi_conn.pgconn.trace(f.fileno())

        def checkin(dbapi_conn: Any, *_: Any) -> None:
            if not dbapi_conn.closed:
                dbapi_conn.pgconn.untrace()

        def log(conn: Any, cursor: Any, statement: str, *a: Any) -> None:
            out.statements.append(" ".join(statement.split()))

        event.listen(engine.pool, "checkout", checkout)
        event.listen(engine.pool, "checkin", checkin)
        event.listen(engine, "before_cursor_execute", log)
        try:
            result = send()
        finally:
            event.remove(engine.pool, "checkout", checkout)
            event.remove(engine.pool, "checkin", checkin)
            event.remove(engine, "before_cursor_execute", log)
        f.flush()
        os.fsync(f.fileno())
        f.seek(0)
        out.trace = f.read()
    return result, out


def _counts(env: ApiEnv) -> tuple[int, int, int]:
    with env.alliance.store.read_session() as s:
        return tuple(int(s.scalar(select(func.count()).select_from(m)) or 0)  # type: ignore
                     for m in (Operation, IdempotencyRecord, UsedSignature))


def _signed(env: ApiEnv, body: bytes, key: str, *, ctype: str = "application/json"
            ) -> dict[str, str]:
    m = env.store_merchant
    headers = sign_request(m.key_id, m.secret, "POST", ISSUE, body)
    headers.update({"Content-Type": ctype, "Idempotency-Key": key})
    return headers


def test_a_signed_issue_is_written_whole_and_committed_in_one_round_trip(
        pg_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env = pg_env
    # The key's credential stays fresh in the cache between the two requests, however slow
    # the machine: the traced request is the lean path's alone.
    monkeypatch.setattr(auth, "CREDENTIAL_TTL_S", 600.0)
    engine = env.alliance.store.engine
    member = Account.create().address
    # The first request of a process makes the minute's purges (the route's path) and reads
    # the key's credential.
    assert env.store.post(ISSUE, {"member": member, "points": 1, "order_id": "LEAN-PG-0"}
                          ).status_code == 202
    counted = HTTP_REQUESTS.labels("POST", ISSUE, "202")
    before = counted._value.get()
    r, t = traced(engine, lambda: env.store.post(
        ISSUE, {"member": member, "points": 7, "order_id": "LEAN-PG-1"},
        idempotency_key="lean-pg-1"))
    assert r.status_code == 202, r.text
    # Nothing through SQLAlchemy; on the driver, BEGIN, the statement and COMMIT answered
    # together (the route's path took 4 round trips: BEGIN, the claim, the operation, the
    # recorded response with the COMMIT).
    assert t.statements == [], t.statements
    assert t.round_trips == 1, t.trace
    # counted under its route's template, as the route's answers are
    assert counted._value.get() == before + 1
    out = r.json()
    assert (out["kind"], out["status"], out["items"]) == ("issue", "queued", 1)
    assert out["merchant_id"] == env.store_merchant.merchant_id
    # The operation is the one the service's own path writes for the same line.
    with env.alliance.store.session() as s:
        lean = s.scalars(select(Operation).where(Operation.id == out["id"])).one()
        view = points_service.request_issue(
            env.alliance, s, merchant_id=env.store_merchant.merchant_id, member=member,
            points=7, order_id="LEAN-PG-2")
        full = s.scalars(select(Operation).where(Operation.id == view.id)).one()
        columns = [c.key for c in Operation.__table__.columns
                   if c.key not in ("seq", "id", "created_at", "updated_at", "payload")]
        assert {c: getattr(lean, c) for c in columns} == {c: getattr(full, c) for c in columns}
        assert lean.payload["items"][0] == dict(
            full.payload["items"][0], order_id="LEAN-PG-1",
            order_ref=lean.payload["items"][0]["order_ref"])
        assert lean.created_at == lean.updated_at
        assert out["created_at"].replace("Z", "+00:00") == lean.created_at.isoformat()
        s.rollback()
    # The response is recorded with it: the same request again (a fresh signature) replays it.
    again = env.store.post(ISSUE, {"member": member, "points": 7, "order_id": "LEAN-PG-1"},
                           idempotency_key="lean-pg-1")
    assert again.status_code == 202 and again.content == r.content, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    # ... and the outbox of this process holds the typed payload, as every enqueue does.
    assert outbox_repos.QUEUED_PAYLOADS.take(out["id"], "issue") is not None


@pytest.mark.parametrize(("body", "status", "code"), [
    (b'{"member": "0x12", "points": 1, "order_id": "B-1"}', 422, "validation-error"),
    (b'{"points": "7", "order_id": "B-2", "member": "%s"}', 422, "validation-error"),
    (b'{"member": "%s", "points": 1, "order_id": "B-3", "colour": "red"}', 422,
     "validation-error"),
    (b'{"member": "%s", "points": 1, "order_id": ', 400, "malformed-json"),
    (b'[1, 2]', 422, "validation-error"),
])
def test_a_bad_body_is_answered_as_the_route_answers_it_and_writes_nothing(
        pg_env: ApiEnv, body: bytes, status: int, code: str) -> None:
    env = pg_env
    if b"%s" in body:
        body = body.replace(b"%s", Account.create().address.encode())
    before = _counts(env)
    r = env.http.post(ISSUE, content=body, headers=_signed(env, body, "lean-bad"))
    assert r.status_code == status and r.json()["code"] == code, r.text
    if status == 422:
        assert r.json()["errors"] and all(e["loc"][0] == "body" for e in r.json()["errors"])
    assert _counts(env) == before


def test_a_refused_issue_is_recorded_under_its_key_as_before(pg_env: ApiEnv) -> None:
    env = pg_env
    # A wallet whose EIP-55 checksum is wrong: the schema lets it through, the service's
    # check refuses it (a refusal recorded under the key, replayed as such).
    good = Account.create().address
    i = next(i for i, ch in enumerate(good) if ch.isalpha() and i > 1)
    bad = good[:i] + good[i].swapcase() + good[i + 1:]
    payload = {"member": bad, "points": 1, "order_id": "LEAN-Z"}
    first = env.store.post(ISSUE, payload, idempotency_key="lean-zero")
    assert first.status_code == 422, first.text
    again = env.store.post(ISSUE, payload, idempotency_key="lean-zero")
    assert again.status_code == 422 and again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _counts(env)[0] == 0


def test_a_captured_request_sent_again_is_a_replay_and_writes_nothing(pg_env: ApiEnv) -> None:
    env = pg_env
    body = json.dumps({"member": Account.create().address, "points": 2,
                       "order_id": "LEAN-RP"}).encode()
    headers = _signed(env, body, "lean-rp")
    assert env.http.post(ISSUE, content=body, headers=headers).status_code == 202
    before = _counts(env)
    for key in ("lean-rp", "lean-rp-other"):
        r = env.http.post(ISSUE, content=body, headers=dict(headers, **{"Idempotency-Key": key}))
        assert r.status_code == 401 and "replay" in r.json()["detail"], r.text
    assert _counts(env) == before


def test_a_key_reused_with_another_body_is_refused_and_writes_nothing(pg_env: ApiEnv) -> None:
    env = pg_env
    member = Account.create().address
    assert env.store.post(ISSUE, {"member": member, "points": 2, "order_id": "LEAN-K1"},
                          idempotency_key="lean-k").status_code == 202
    before = _counts(env)
    r = env.store.post(ISSUE, {"member": member, "points": 3, "order_id": "LEAN-K2"},
                       idempotency_key="lean-k")
    assert r.status_code == 409 and r.json()["code"] == "idempotency-key-reused", r.text
    # the route's path spent the new signature (as it always did for a refused request)
    assert _counts(env)[:2] == before[:2]


def test_a_suspended_merchants_issue_is_refused_and_records_nothing(pg_env: ApiEnv) -> None:
    env = pg_env
    mid = env.store_merchant.merchant_id
    with env.alliance.store.session() as s:
        merchant_repos.set_merchant_status(s, mid, "suspended")
    before = _counts(env)
    payload = {"member": Account.create().address, "points": 2, "order_id": "LEAN-SUS"}
    r = env.store.post(ISSUE, payload, idempotency_key="lean-sus")
    assert r.status_code == 403 and r.json()["code"] == "merchant-suspended", r.text
    assert _counts(env) == before
    with env.alliance.store.session() as s:
        merchant_repos.set_merchant_status(s, mid, "active")
    r = env.store.post(ISSUE, payload, idempotency_key="lean-sus")
    assert r.status_code == 202 and "Idempotent-Replayed" not in r.headers, r.text


def test_a_request_without_a_json_content_type_is_left_to_the_route(pg_env: ApiEnv) -> None:
    env = pg_env
    body = json.dumps({"member": Account.create().address, "points": 2,
                       "order_id": "LEAN-CT"}).encode()
    m = env.store_merchant
    headers = sign_request(m.key_id, m.secret, "POST", ISSUE, body)
    headers["Idempotency-Key"] = "lean-ct"
    before = _counts(env)
    r = env.http.post(ISSUE, content=body, headers=headers)
    # FastAPI reads no JSON from a body whose type is not said: 422, as without the lean path
    assert r.status_code == 422, r.text
    assert _counts(env) == before


def test_a_store_that_cannot_answer_is_the_stores_503_and_nothing_stays(
        pg_env: ApiEnv, pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = pg_env
    monkeypatch.setattr(auth, "CREDENTIAL_TTL_S", 600.0)  # the request reaches the lean path
    engine = env.alliance.store.engine
    db = engine.url.database
    payload = {"member": Account.create().address, "points": 2, "order_id": "LEAN-DOWN"}
    # One request first: the key's credential is then fresh in this process's cache
    # (CREDENTIAL_TTL_S), so the next request gets past the guard to the lean path.
    assert env.store.post(ISSUE, dict(payload, order_id="LEAN-UP")).status_code == 202
    before = _counts(env)
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            # The database refuses new connections and every open one is ended under the
            # pool: its checkout finds the sockets closed and cannot connect again.
            c.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false'))
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :d"), {"d": db})
            deadline = time.monotonic() + 10
            while c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                            {"d": db}).scalar():
                assert time.monotonic() < deadline, "the backends did not go"
                time.sleep(0.05)
            try:
                r = env.store.post(ISSUE, payload, idempotency_key="lean-down")
            finally:
                c.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true'))
    finally:
        admin.dispose()
    assert r.status_code == 503 and r.json()["code"] == "store-unavailable", r.text
    assert r.headers.get("Retry-After")
    assert _counts(env) == before
    # The store answers again, and the request runs as new under the same key.
    r = env.store.post(ISSUE, payload, idempotency_key="lean-down")
    assert r.status_code == 202 and "Idempotent-Replayed" not in r.headers, r.text


def test_the_lean_path_runs_inside_the_keys_in_flight_cap(
        pg_env: ApiEnv, pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The merchant's row locked FOR UPDATE holds every operation's INSERT (its foreign key
    # takes the row FOR KEY SHARE): what waits in PostgreSQL is what the guard let through.
    env = pg_env
    db = env.alliance.store.engine.url.database
    mid = env.store_merchant.merchant_id
    monkeypatch.setattr(auth, "CREDENTIAL_TTL_S", 600.0)  # no credential read in the burst
    assert env.store.post(ISSUE, {"member": Account.create().address, "points": 1,
                                  "order_id": "LEAN-CAP-0"}).status_code == 202  # the purges
    burst = 3 * MAX_IN_FLIGHT_PER_KEY
    results: list[int] = []
    admin = create_engine(pg_server.rsplit("/", 1)[0] + "/" + str(db))
    try:
        with admin.connect() as lock:
            lock.execute(text("SELECT id FROM merchants WHERE id = :m FOR UPDATE"), {"m": mid})

            def one(i: int) -> None:
                results.append(env.store.post(ISSUE, {
                    "member": Account.create().address, "points": 1,
                    "order_id": f"LEAN-CAP-{i + 1}"}).status_code)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(burst)]
            for t in threads:
                t.start()
            waiting: list[int] = []
            admitted: list[int] = []
            deadline = time.monotonic() + 10
            # Autocommit: each poll its own transaction. PostgreSQL takes one snapshot of
            # pg_stat_activity per transaction, so polls in one transaction all saw the count
            # of the first (the "plateau at 2-7" this test once saw).
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                while time.monotonic() < deadline:
                    waiting.append(int(c.execute(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = :d "
                        "AND wait_event_type = 'Lock'"), {"d": db}).scalar() or 0))
                    # The merchant's requests in its group commit: the one statement held
                    # in PostgreSQL and those waiting for it to end (group15).
                    groups = [g[mid] for g in list(points_routes._lean_groups.values())
                              if mid in g]
                    admitted.append(sum(g.in_flight + len(g.pending) for g in groups))
                    if admitted[-1] >= MAX_IN_FLIGHT_PER_KEY and len(admitted) > 20:
                        break
                    time.sleep(0.05)
            # exactly the key's slots, while the others wait in the guard; one statement of
            # them in PostgreSQL, the rest waiting to go in the next group
            assert max(admitted) == MAX_IN_FLIGHT_PER_KEY, admitted
            assert max(waiting) == 1, waiting
            # another key is not held by this one's burst
            assert env.cafe.post(ISSUE, {"member": Account.create().address, "points": 1,
                                         "order_id": "LEAN-CAP-CAFE"}).status_code == 202
            lock.rollback()
        for t in threads:
            t.join(30)
    finally:
        admin.dispose()
    assert results == [202] * burst, results


def test_an_issue_on_the_lean_path_wakes_the_idle_outbox_of_another_process(
        pg_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # The lean statement rings no bell in this process (it runs on a raw connection, no
    # session): only its notification, heard by the listener, can wake an outbox whose poll
    # is 60 s, as the elected worker's in another process is woken.
    env = pg_env
    alliance = env.alliance
    monkeypatch.setattr(auth, "CREDENTIAL_TTL_S", 600.0)  # the next request's path is lean
    # The first request of a process makes the minute's purges (the route's path, a session
    # that rings this process's bell): before the outbox runs.
    assert env.store.post(ISSUE, {"member": Account.create().address, "points": 1,
                                  "order_id": "LEAN-BELL-0"}).status_code == 202
    worker = outbox_worker(alliance, idle_sleep_s=60.0)
    runtime = Runtime(alliance, [worker, BellListener(alliance.store.engine, spacing_s=0.02)])
    runtime.start()
    try:
        time.sleep(0.5)  # the outbox's first rounds done: idle, waiting
        r = env.store.post(ISSUE, {"member": Account.create().address, "points": 3,
                                   "order_id": "LEAN-BELL-1"})
        assert r.status_code == 202, r.text
        assert _confirmed_within(alliance, r.json()["id"], 10.0) is not None
        assert worker.in_flight == 0
    finally:
        runtime.stop()


def test_the_first_notification_after_a_quiet_spell_rings_and_a_stream_rings_no_more(
        pg_env: ApiEnv) -> None:
    # Within a stream the outbox reads its queue every batch_window_ms anyway; a ring per
    # commit would end every wait of its thread, a round each.
    engine = pg_env.alliance.store.engine
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    listener = BellListener(engine, spacing_s=0.2)
    listener.start()
    try:
        with psycopg.connect(url, autocommit=True) as c:
            time.sleep(1.0)  # listening, its first ring (on connecting) rung
            before = bell.BELL.rung
            c.execute(f"NOTIFY {bell.CHANNEL}")
            assert bell.BELL.wait(before, 2.0)  # the first after a quiet spell: at once
            first = bell.BELL.rung
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.0:  # ~100 commits in a second
                c.execute(f"NOTIFY {bell.CHANNEL}")
                time.sleep(0.01)
            time.sleep(0.1)
            in_stream = bell.BELL.rung - first
            time.sleep(0.3)  # quiet: the next rings again
            c.execute(f"NOTIFY {bell.CHANNEL}")
            assert bell.BELL.wait(first + in_stream, 2.0)
    finally:
        listener.stop()
    assert in_stream == 0


@pytest.mark.parametrize(("window_ms", "notifications"), [(60_000, 1), (0, 3)])
def test_an_api_process_notifies_at_most_once_a_batch_window(
        pg_env: ApiEnv, monkeypatch: pytest.MonkeyPatch, window_ms: int,
        notifications: int) -> None:
    # Under a stream of requests the outbox reads its queue every batch_window_ms anyway:
    # within the window a lean statement sends no notification of its own.
    env = pg_env
    monkeypatch.setattr(auth, "CREDENTIAL_TTL_S", 600.0)
    assert env.store.post(ISSUE, {"member": Account.create().address, "points": 1,
                                  "order_id": f"LEAN-N-{window_ms}"}).status_code == 202
    monkeypatch.setattr(env.alliance.settings, "batch_window_ms", window_ms)
    monkeypatch.setattr(store_repos, "_notified_at", [-1e9])
    url = env.alliance.store.engine.url.set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(url, autocommit=True) as ear:
        ear.execute(f"LISTEN {bell.CHANNEL}")
        for i in range(3):
            r = env.store.post(ISSUE, {"member": Account.create().address, "points": 1,
                                       "order_id": f"LEAN-N-{window_ms}-{i}"})
            assert r.status_code == 202, r.text
        heard = list(ear.notifies(timeout=1.0))
    assert len(heard) == notifications
