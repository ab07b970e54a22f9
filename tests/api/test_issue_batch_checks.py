"""An issue-batch request checks its lines (bounds, wallets' checksums, order ids and their
on-chain references, the payload's JSON) before it takes the store's one writer, and only
queues under it: its checks no longer hold every other request, the outbox and the indexer
behind them. What the checks find is still answered in the request's own transaction: a
refusal is recorded under its idempotency key and replayed, a suspended merchant meets 403
before any line's verdict, and the operation stored is the one the kind itself writes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from eth_account import Account

from ledger.members import repos as member_repos
from ledger.outbox import repos as outbox_repos
from ledger.points import kinds
from ledger.points import service as points
from ledger.points.service import order_spend
from ledger.settings import Settings
from ledger.store.models import OperationStatus
from ledger.types import OrderRef

from .conftest import ApiEnv, make_env, refused_while_suspended


@pytest.fixture
def quiet_env(settings: Settings) -> Iterator[ApiEnv]:
    # No workers: nothing but the request under test takes the store's writer.
    yield from make_env(settings, run_workers=False)


def _queued(env: ApiEnv) -> int:
    with env.alliance.store.read_session() as s:
        return outbox_repos.count_operations(s)


def test_an_issue_batch_computes_its_order_refs_while_another_holds_the_writer(
        quiet_env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    env = quiet_env
    lines = 40
    computed: list[str] = []
    real = points.order_ref

    def counted(order_id: str) -> OrderRef:
        computed.append(order_id)
        return real(order_id)

    monkeypatch.setattr(points, "order_ref", counted)
    body = {"items": [{"member": Account.create().address, "points": 5,
                       "order_id": f"WI-{i}"} for i in range(lines)]}
    answer: list[httpx.Response] = []
    with env.alliance.store.session():  # the store's one writer, held by this thread
        sender = threading.Thread(target=lambda: answer.append(
            env.store.post("/v1/points/issue-batch", body)))
        sender.start()
        deadline = time.monotonic() + 30
        while len(computed) < lines and time.monotonic() < deadline:
            time.sleep(0.02)
        while_held = len(computed)
        assert not answer  # it cannot queue while the writer is held
    sender.join(60)
    assert while_held == lines, f"{while_held} of {lines} order refs before the writer"
    assert answer and answer[0].status_code == 202, answer[0].text if answer else None
    op_id = answer[0].json()["id"]
    with env.alliance.store.read_session() as s:
        op = outbox_repos.get_operation(s, op_id)
        assert op is not None and op.status is OperationStatus.QUEUED and op.lines == lines
        assert [item["order_id"] for item in op.payload["items"]] == [
            f"WI-{i}" for i in range(lines)]


def test_an_issue_batch_stores_and_keeps_the_payload_the_kind_writes_member_ids_resolved(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    wallet = Account.create().address
    body = {"items": [
        {"member": wallet.lower(), "points": 7, "order_id": "PK-0", "spend": 1250},
        {"member_id": "member-pk-1", "points": 9, "order_id": "PK-1",
         "release_at": 1_900_000_000},
        {"member": wallet, "points": 1, "order_id": "PK-2"}]}
    r = env.store.post("/v1/points/issue-batch", body)
    assert r.status_code == 202, r.text
    with env.alliance.store.session() as s:
        custodial = member_repos.member_account(s, env.alliance.master_key,
                                                member_id="member-pk-1")
        op = outbox_repos.get_operation(s, r.json()["id"])
        assert op is not None and op.kind == "issue_batch" and op.lines == 3
        expected = kinds.ISSUE_BATCH.dump(kinds.IssuePayload((
            kinds.IssueLinePayload(wallet, 7, "PK-0", points.order_ref("PK-0"), 0),
            kinds.IssueLinePayload(custodial, 9, "PK-1", points.order_ref("PK-1"),
                                   1_900_000_000),
            kinds.IssueLinePayload(wallet, 1, "PK-2", points.order_ref("PK-2"), 0))))
        assert op.payload == expected
        # The worker of this process gets the typed payload (no parse of the JSON back),
        # and it is the very payload the stored JSON holds.
        assert outbox_repos.QUEUED_PAYLOADS.take(op.id, "issue_batch") == \
            kinds.ISSUE_BATCH.parse(op.payload)
        assert order_spend(s, merchant_id=env.store_merchant.merchant_id,
                           order_ref_hex="0x" + points.order_ref("PK-0").hex()) == 1250


def test_a_refused_issue_batch_is_recorded_under_its_key_and_replayed(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    member = Account.create().address
    body = {"items": [{"member": member, "points": 5, "order_id": "RB-0"},
                      {"member": member, "points": 5, "order_id": "RB-1"},
                      {"member": member, "points": 5, "order_id": "RB-0"}]}
    key = str(uuid.uuid4())
    before = _queued(env)
    first = env.store.post("/v1/points/issue-batch", body, idempotency_key=key)
    assert first.status_code == 422, first.text
    assert first.json()["index"] == 2 and "twice" in first.json()["detail"]
    again = env.store.post("/v1/points/issue-batch", body, idempotency_key=key)
    assert again.status_code == 422 and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert _queued(env) == before


def test_the_first_failing_line_is_named_members_checked_before_the_other_fields(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    good = Account.create().address
    # Line 1's order id repeats line 0's; line 2's wallet has a wrong checksum: the members
    # are checked first (as when they were resolved first), so line 2 is the one named.
    k = next(i for i, c in enumerate(good) if i >= 2 and c.isalpha())
    bad = good[:k] + good[k].swapcase() + good[k + 1:]  # one letter's case flipped
    body = {"items": [{"member": good, "points": 5, "order_id": "FL-0"},
                      {"member": good, "points": 5, "order_id": "FL-0"},
                      {"member": bad, "points": 5, "order_id": "FL-2"}]}
    r = env.store.post("/v1/points/issue-batch", body)
    assert r.status_code == 422, r.text
    assert r.json()["index"] == 2 and "checksum" in r.json()["detail"], r.text


def test_a_suspended_merchants_bad_batch_meets_403_before_its_lines_verdict(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    member = Account.create().address
    body = {"items": [{"member": member, "points": 5, "order_id": "SB-0"},
                      {"member": member, "points": 5, "order_id": "SB-0"}]}
    refused_while_suspended(env, "/v1/points/issue-batch", body, key="batch-suspended")
    # Nothing was recorded under the key: the same request now meets its lines' verdict.
    r = env.store.post("/v1/points/issue-batch", body, idempotency_key="batch-suspended")
    assert r.status_code == 422 and r.json()["index"] == 1, r.text
    assert "Idempotent-Replayed" not in r.headers
