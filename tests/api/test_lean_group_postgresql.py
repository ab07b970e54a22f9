"""The lean issue's group commit on a real PostgreSQL (group15): the requests of a merchant
pending while its last statement ran go in one statement and one transaction
(``ledger.store.repos.queue_merchant_requests``, ``api.routes.points.queue_in_group``), and
each request gets exactly the answer it gets alone: a replayed signature, a claimed key, an
inactive merchant, a key or a signature twice in the same group, the store gone."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from api import auth
from api.client import sign_request
from api.routes import points as points_routes
from ledger.errors import LedgerValidationError, StoreUnavailableError
from ledger.merchants import repos as merchant_repos
from ledger.store import repos as store_repos
from ledger.store.models import utcnow
from ledger.store.repos import MAX_GROUP, QueuedRequest, queue_merchant_requests

from .conftest import ApiEnv
from .test_lean_issue_postgresql import _counts, traced

ISSUE = "/v1/points/issue"


def _request(mid: int, key_id: str, *, signature: str | None = None,
             key: str | None = None) -> QueuedRequest:
    """A queueing request as the lean path builds it (the payload's content is not read)."""
    return QueuedRequest(
        merchant_id=mid, key_id=key_id, signature=signature or secrets.token_hex(32),
        principal=key_id, key=key or f"group-{secrets.token_hex(8)}",
        fingerprint=secrets.token_hex(32), ttl=timedelta(hours=1), status_code=202,
        body="sealed", content_type="application/json",
        operation_id=str(uuid.uuid4()), kind="issue",
        payload_json='{"items": []}', lines=1, now=utcnow())


def _store(env: ApiEnv) -> Callable[..., QueuedRequest]:
    m = env.store_merchant
    return lambda **kw: _request(m.merchant_id, m.key_id, **kw)


def _written(env: ApiEnv, requests: list[QueuedRequest]) -> list[tuple[bool, bool, bool]]:
    """Per request: its signature, its key's record (its own fingerprint), its operation."""
    out = []
    with env.alliance.store.engine.connect() as c:
        for r in requests:
            out.append((
                bool(c.scalar(text("SELECT count(*) FROM used_request_signatures WHERE "
                                   "key_id = :k AND signature = :s"),
                              {"k": r.key_id, "s": r.signature})),
                bool(c.scalar(text("SELECT count(*) FROM idempotency_records WHERE "
                                   "principal = :p AND key = :k AND fingerprint = :f"),
                              {"p": r.principal, "k": r.key, "f": r.fingerprint})),
                bool(c.scalar(text("SELECT count(*) FROM operations WHERE id = :i"),
                              {"i": r.operation_id}))))
    return out


def _transactions(env: ApiEnv, keys: list[str]) -> int:
    """How many transactions wrote the idempotency records of ``keys``."""
    with env.alliance.store.engine.connect() as c:
        return int(c.scalar(text(
            "SELECT count(DISTINCT xmin::text) FROM idempotency_records WHERE key = ANY(:k)"),
            {"k": keys}) or 0)


def test_a_group_of_new_requests_is_written_in_one_statement_and_one_transaction(
        pg_env: ApiEnv) -> None:
    env = pg_env
    new = _store(env)
    group = [new() for _ in range(5)]
    before = _counts(env)
    results, t = traced(env.alliance.store.engine,
                        lambda: queue_merchant_requests(env.alliance.store.engine, group))
    assert results == [True] * 5
    assert t.round_trips == 1, t.trace
    assert _written(env, group) == [(True, True, True)] * 5
    assert _transactions(env, [r.key for r in group]) == 1
    assert _counts(env) == tuple(n + 5 for n in before)


def test_a_replayed_signature_in_a_group_is_declined_alone_and_the_others_go_in(
        pg_env: ApiEnv) -> None:
    env = pg_env
    new = _store(env)
    seen = new()
    assert queue_merchant_requests(env.alliance.store.engine, [seen]) == [True]
    replay = new(signature=seen.signature)  # the same signature, another key
    group = [new(), replay, new()]
    assert queue_merchant_requests(env.alliance.store.engine, group) == [True, False, True]
    assert _written(env, group) == [(True, True, True), (True, False, False),
                                    (True, True, True)]  # the replay's signature is seen's


def test_a_claimed_key_in_a_group_is_declined_alone_and_writes_not_even_its_signature(
        pg_env: ApiEnv) -> None:
    env = pg_env
    new = _store(env)
    first = new()
    assert queue_merchant_requests(env.alliance.store.engine, [first]) == [True]
    again = new(key=first.key)  # a fresh signature, the key claimed already
    group = [again, new(), new()]
    assert queue_merchant_requests(env.alliance.store.engine, group) == [False, True, True]
    assert _written(env, group) == [(False, False, False), (True, True, True),
                                    (True, True, True)]
    assert _written(env, [first]) == [(True, True, True)]


def test_a_key_or_a_signature_twice_in_one_group_goes_in_once_the_first_in_order(
        pg_env: ApiEnv) -> None:
    env = pg_env
    new = _store(env)
    a = new()
    a_again = new(signature=a.signature)  # the same signature: a replay of a
    b = new()
    b_again = new(key=b.key)  # the same key, another signature and body
    group = [a, a_again, b, b_again]
    before = _counts(env)
    assert queue_merchant_requests(env.alliance.store.engine, group) == [
        True, False, True, False]
    assert _written(env, group) == [(True, True, True), (True, False, False),
                                    (True, True, True), (False, False, False)]
    assert _counts(env) == tuple(n + 2 for n in before)


def test_an_inactive_merchants_request_in_a_group_is_declined_alone(pg_env: ApiEnv) -> None:
    env = pg_env
    new = _store(env)
    cafe = env.cafe_merchant
    with env.alliance.store.session() as s:
        merchant_repos.set_merchant_status(s, cafe.merchant_id, "suspended")
    suspended = _request(cafe.merchant_id, cafe.key_id)
    group = [new(), suspended, new()]
    assert queue_merchant_requests(env.alliance.store.engine, group) == [True, False, True]
    assert _written(env, group) == [(True, True, True), (False, False, False),
                                    (True, True, True)]


def test_a_group_is_one_to_max_group_requests_and_nothing_else_is_written(
        pg_env: ApiEnv) -> None:
    env = pg_env
    new = _store(env)
    before = _counts(env)
    for size in (0, MAX_GROUP + 1):
        with pytest.raises(LedgerValidationError):
            queue_merchant_requests(env.alliance.store.engine, [new() for _ in range(size)])
    assert _counts(env) == before
    full = [new() for _ in range(MAX_GROUP)]
    assert queue_merchant_requests(env.alliance.store.engine, full) == [True] * MAX_GROUP
    assert _transactions(env, [r.key for r in full]) == 1


def _held_by_a_lock(pg_server: str, env: ApiEnv, mid: int,
                    run: Callable[[Connection, str], Any]) -> Any:
    """``run(admin, db)`` while ``mid``'s row is locked FOR UPDATE (each operation's INSERT
    waits for it: its foreign key takes the row FOR KEY SHARE)."""
    db = str(env.alliance.store.engine.url.database)
    admin = create_engine(pg_server.rsplit("/", 1)[0] + "/" + db)
    try:
        with admin.connect() as lock, \
                admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            lock.execute(text("SELECT id FROM merchants WHERE id = :m FOR UPDATE"), {"m": mid})
            try:
                return run(c, db)
            finally:
                lock.rollback()
    finally:
        admin.dispose()


def _until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _lock_waiters(c: Connection, db: str) -> list[int]:
    return [int(p) for p in c.execute(text(
        "SELECT pid FROM pg_stat_activity WHERE datname = :d AND wait_event_type = 'Lock'"),
        {"d": db}).scalars()]


def test_a_group_whose_statement_loses_its_connection_fails_whole_and_writes_nothing(
        pg_env: ApiEnv, pg_server: str) -> None:
    env = pg_env
    new = _store(env)
    group = [new() for _ in range(4)]
    before = _counts(env)
    outcome: list[object] = []

    def write() -> None:
        try:
            outcome.append(queue_merchant_requests(env.alliance.store.engine, group))
        except Exception as exc:
            outcome.append(exc)

    def run(c: Connection, db: str) -> None:
        writer = threading.Thread(target=write)
        writer.start()
        _until(lambda: bool(_lock_waiters(c, db)), "the group's statement did not wait")
        (pid,) = _lock_waiters(c, db)
        c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        writer.join(10)

    _held_by_a_lock(pg_server, env, env.store_merchant.merchant_id, run)
    assert len(outcome) == 1 and isinstance(outcome[0], StoreUnavailableError), outcome
    assert _counts(env) == before
    # Nothing of it stayed: the same requests go in as new.
    assert queue_merchant_requests(env.alliance.store.engine, group) == [True] * 4


def _groups_of(mid: int) -> list[points_routes._LeanGroup]:
    return [g[mid] for g in list(points_routes._lean_groups.values()) if mid in g]


def _pending(mid: int) -> int:
    return sum(len(g.pending) for g in _groups_of(mid))


def _burst_behind_a_held_statement(
        env: ApiEnv, pg_server: str, sends: list[Callable[[], Any]]) -> list[Any]:
    """Send one request, hold its statement in PostgreSQL, send ``sends`` (each in its own
    thread) and wait until all of them are pending in the merchant's group; then let go.
    The answers of ``sends``, in order."""
    mid = env.store_merchant.merchant_id
    answers: list[Any] = [None] * len(sends)
    threads: list[threading.Thread] = []

    def run(c: Connection, db: str) -> None:
        first = threading.Thread(target=lambda: env.store.post(ISSUE, {
            "member": Account.create().address, "points": 1, "order_id": "GROUP-HOLD"}))
        first.start()
        _until(lambda: bool(_lock_waiters(c, db)), "the first statement did not wait")

        def one(i: int) -> None:
            answers[i] = sends[i]()

        threads.extend(threading.Thread(target=one, args=(i,)) for i in range(len(sends)))
        for t in threads:
            t.start()
        _until(lambda: _pending(mid) == len(sends), "the burst did not queue in the group")
        assert len(_lock_waiters(c, db)) == 1  # one statement in PostgreSQL, the rest here
        threads.append(first)  # the lock goes when run returns; joined after

    _held_by_a_lock(pg_server, env, mid, run)
    for t in threads:
        t.join(30)
    return answers


def test_requests_pending_behind_a_statement_go_next_in_one_transaction(
        pg_env: ApiEnv, pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = pg_env
    monkeypatch.setattr(auth, "CREDENTIAL_TTL_S", 600.0)  # no credential read in the burst
    assert env.store.post(ISSUE, {"member": Account.create().address, "points": 1,
                                  "order_id": "GROUP-0"}).status_code == 202  # the purges
    keys = [f"group-tx-{i}" for i in range(7)]
    sends = [(lambda k=k: env.store.post(ISSUE, {"member": Account.create().address,
                                                 "points": 2, "order_id": f"O-{k}"},
                                         idempotency_key=k)) for k in keys]
    answers = _burst_behind_a_held_statement(env, pg_server, sends)
    assert [a.status_code for a in answers] == [202] * 7, [a.text for a in answers]
    assert all("Idempotent-Replayed" not in a.headers for a in answers)
    assert _transactions(env, keys) == 1
    with env.alliance.store.engine.connect() as c:
        ids = [a.json()["id"] for a in answers]
        assert c.scalar(text("SELECT count(*) FROM operations WHERE id = ANY(:i) "
                             "AND status = 'queued'"), {"i": ids}) == 7


def test_a_mixed_group_answers_each_request_as_it_would_be_answered_alone(
        pg_env: ApiEnv, pg_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = pg_env
    monkeypatch.setattr(auth, "CREDENTIAL_TTL_S", 600.0)
    assert env.store.post(ISSUE, {"member": Account.create().address, "points": 1,
                                  "order_id": "GROUP-1"}).status_code == 202
    m = env.store_merchant

    def raw(body: dict[str, Any], key: str) -> Callable[[], Any]:
        data = json.dumps(body).encode()
        headers = sign_request(m.key_id, m.secret, "POST", ISSUE, data)
        headers.update({"Content-Type": "application/json", "Idempotency-Key": key})
        return lambda: env.http.post(ISSUE, content=data, headers=headers)

    same = {"member": Account.create().address, "points": 3, "order_id": "MIX-SAME"}
    captured = raw({"member": Account.create().address, "points": 4, "order_id": "MIX-CAP"},
                   "mix-cap")
    sends = [
        # the same body under the same key, each freshly signed: one queues, one replays it
        lambda: env.store.post(ISSUE, same, idempotency_key="mix-same"),
        lambda: env.store.post(ISSUE, same, idempotency_key="mix-same"),
        # one captured request sent twice: one queues, one is a replay (401)
        captured, captured,
        # one key, two bodies: one queues, the other is refused (409)
        lambda: env.store.post(ISSUE, {"member": Account.create().address, "points": 5,
                                       "order_id": "MIX-K1"}, idempotency_key="mix-k"),
        lambda: env.store.post(ISSUE, {"member": Account.create().address, "points": 6,
                                       "order_id": "MIX-K2"}, idempotency_key="mix-k"),
        # and a plain new one
        lambda: env.store.post(ISSUE, {"member": Account.create().address, "points": 7,
                                       "order_id": "MIX-NEW"}, idempotency_key="mix-new"),
    ]
    before = _counts(env)
    a = _burst_behind_a_held_statement(env, pg_server, sends)
    s1, s2 = sorted(a[:2], key=lambda r: "Idempotent-Replayed" in r.headers)
    assert (s1.status_code, s2.status_code) == (202, 202), (s1.text, s2.text)
    assert s2.headers["Idempotent-Replayed"] == "true" and s2.content == s1.content
    c1, c2 = sorted(a[2:4], key=lambda r: r.status_code)
    assert c1.status_code == 202 and c2.status_code == 401, (c1.text, c2.text)
    assert "replay" in c2.json()["detail"]
    k1, k2 = sorted(a[4:6], key=lambda r: r.status_code)
    assert k1.status_code == 202 and k2.status_code == 409, (k1.text, k2.text)
    assert k2.json()["code"] == "idempotency-key-reused"
    assert a[6].status_code == 202 and "Idempotent-Replayed" not in a[6].headers
    # the operations: the blocker's, and one each of the same body, the captured request,
    # the key and the new one
    assert _counts(env)[0] == before[0] + 5
    assert store_repos.MAX_GROUP >= len(sends)


def test_a_group_that_deadlocks_with_another_transaction_goes_one_by_one_not_503(
        pg_env: ApiEnv, pg_server: str) -> None:
    # Two groups (two processes) taking two of the same keys in the other order deadlock;
    # one request's statement alone cannot. Here the other side is a transaction of the
    # test's, which waits longer before it looks for the cycle: the group is the victim.
    env = pg_env
    new = _store(env)
    one, two = new(), new()
    outcome: list[object] = []

    def write() -> None:
        try:
            outcome.append(queue_merchant_requests(env.alliance.store.engine, [one, two]))
        except Exception as exc:
            outcome.append(exc)

    db = str(env.alliance.store.engine.url.database)
    admin = create_engine(pg_server.rsplit("/", 1)[0] + "/" + db)
    claim = text("INSERT INTO idempotency_records (principal, key, fingerprint, created_at, "
                 "expires_at) VALUES (:p, :k, 'other', now(), now() + interval '1 hour') "
                 "ON CONFLICT DO NOTHING")
    writer = threading.Thread(target=write)
    try:
        with admin.connect() as other, \
                admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            other.execute(text("SET deadlock_timeout = '20s'"))
            other.execute(claim, {"p": two.principal, "k": two.key})
            writer.start()  # claims one's key, then waits for two's
            _until(lambda: bool(_lock_waiters(c, db)), "the group did not wait")
            other.execute(claim, {"p": one.principal, "k": one.key})  # the cycle
            other.commit()
        writer.join(20)
    finally:
        admin.dispose()
    # Each request alone then: two's key is the other transaction's (declined, as alone,
    # for the route's path to answer); one's goes to whichever of the two took it first
    # once the group's was gone (a race, both answers right). Never a 503, each whole or
    # nothing.
    assert len(outcome) == 1 and isinstance(outcome[0], list), outcome
    done_one, done_two = outcome[0]
    assert done_two is False
    assert _written(env, [one, two]) == [(done_one, done_one, done_one), (False, False, False)]
