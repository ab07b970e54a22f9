"""One member's line never fails a batch for the others: the outbox splits the offending line
out of a reverted batch in the same worker round (issue 8, item 1's service half)."""

from __future__ import annotations

import json
import random

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from ledger.alliance import Alliance
from ledger.chain.sender import TransactionSender
from ledger.errors import ChainError
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox import repos as outbox_repos
from ledger.outbox.views import get_operation
from ledger.points import kinds
from ledger.points.reads import chain_now
from ledger.points.service import (
    IssueLine,
    check_issue_batch,
    order_ref,
    order_spend,
    queue_issues,
    request_issue,
    request_issue_batch,
    request_redeem,
)
from ledger.runtime import outbox_worker

from .helpers import sign_redemption


def _statuses(alliance: Alliance, mid: int, op_ids: list[str]) -> list[tuple[str, str | None]]:
    out = []
    for op_id in op_ids:
        op = get_operation(alliance, operation_id=op_id, merchant_id=mid)
        out.append((op.status, op.error_code))
    return out


def test_issue_batch_with_one_bad_line_confirms_the_others_in_the_same_round(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    members = [Account.create().address for _ in range(7)]
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=members[0], points=1,
                      order_id="USED-1")
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        ops = [request_issue(alliance, s, merchant_id=mid, member=m, points=10 + i,
                             order_id="USED-1" if i == 3 else f"LINE-{i}")
               for i, m in enumerate(members)]
    worker = outbox_worker(alliance)
    # One round: the batch goes out as one issueBatch, reverts, and is split at once.
    assert worker.process_once() == 7
    statuses = _statuses(alliance, mid, [op.id for op in ops])
    assert statuses[3] == ("failed", "PointsOrderRefUsed")
    assert statuses[:3] + statuses[4:] == [("confirmed", None)] * 6
    program = alliance.contracts.program(store_merchant.program)
    assert [program.balance_of(m) for m in members] == [11, 11, 12, 0, 14, 15, 16]
    with alliance.store.read_session() as s:
        assert outbox_repos.queued_counts(s) == {}


def test_redeem_batch_with_one_short_member_confirms_the_others_in_the_same_round(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    program = alliance.contracts.program(store_merchant.program)
    members = [Account.create() for _ in range(5)]
    with alliance.store.session() as s:
        for i, m in enumerate(members):
            request_issue(alliance, s, merchant_id=mid, member=m.address,
                          points=5 if i == 2 else 50, order_id=f"EARN-{i}")
    outbox_worker(alliance).drain()
    deadline = chain_now(alliance) + 600
    with alliance.store.session() as s:
        ops = []
        for i, m in enumerate(members):
            sig = sign_redemption(m, program=program.address,
                                  registry=alliance.contracts.deployment.registry,
                                  chain_id=alliance.gateway.chain_id, amount=20,
                                  merchant_id=mid, order_id=f"SPEND-{i}", nonce=0,
                                  deadline=deadline)
            ops.append(request_redeem(alliance, s, merchant_id=mid, member=m.address,
                                      points=20, order_id=f"SPEND-{i}", nonce=0,
                                      deadline=deadline, signature=sig))
    assert outbox_worker(alliance).process_once() == 5
    statuses = _statuses(alliance, mid, [op.id for op in ops])
    assert statuses[2] == ("failed", "PointsInsufficientBalance")
    assert statuses[:2] + statuses[3:] == [("confirmed", None)] * 4
    assert [program.balance_of(m.address) for m in members] == [30, 30, 5, 30, 30]


def test_all_or_none_batch_operation_fails_naming_its_offending_line(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    members = [Account.create().address for _ in range(6)]
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=members[0], points=1,
                      order_id="TAKEN-1")
    outbox_worker(alliance).drain()
    lines = [IssueLine(points=5, order_id="TAKEN-1" if i == 4 else f"ALL-{i}", member=m)
             for i, m in enumerate(members)]
    with alliance.store.session() as s:
        op = request_issue_batch(alliance, s, merchant_id=mid, items=lines)
    assert outbox_worker(alliance).process_once() == 1
    failed = get_operation(alliance, operation_id=op.id, merchant_id=mid)
    assert failed.status == "failed" and failed.error_code == "PointsOrderRefUsed"
    assert failed.error_message is not None
    assert failed.error_message.startswith(f"items[4] (member {members[4]}, order TAKEN-1)")
    program = alliance.contracts.program(store_merchant.program)
    assert [program.balance_of(m) for m in members] == [1, 0, 0, 0, 0, 0]  # all or none


def test_node_failure_while_splitting_a_batch_requeues_instead_of_stranding(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    mid = store_merchant.merchant_id
    members = [Account.create().address for _ in range(4)]
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=members[0], points=1,
                      order_id="SPLIT-USED")
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        ops = [request_issue(alliance, s, merchant_id=mid, member=m, points=3,
                             order_id="SPLIT-USED" if i == 1 else f"SPLIT-{i}")
               for i, m in enumerate(members)]

    def node_down(self: TransactionSender, to: str | None, data: bytes) -> int:
        raise ChainError("connection refused")

    monkeypatch.setattr(TransactionSender, "estimate", node_down)
    worker = outbox_worker(alliance)
    worker.process_once()  # the batch reverts; splitting it meets the node failure
    assert [s for s, _ in _statuses(alliance, mid, [op.id for op in ops])] == ["queued"] * 4
    monkeypatch.undo()
    worker.drain()
    statuses = _statuses(alliance, mid, [op.id for op in ops])
    assert statuses[1] == ("failed", "PointsOrderRefUsed")
    assert [statuses[i] for i in (0, 2, 3)] == [("confirmed", None)] * 3


def test_checked_wallet_lines_are_the_payload_and_json_the_kind_builds(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    """A wallet's line is built and written to JSON once, before the writer, without the
    payload's own checks run again: it is what ``IssueLinePayload`` builds and writes, and
    the operation stores (and keeps for its worker) what the kind writes and parses."""
    rng = random.Random(14)
    mid = store_merchant.merchant_id
    items = []
    for i in range(40):
        address = Account.create().address
        member = rng.choice([address, address.lower(), "0x" + address[2:].upper()])
        items.append(IssueLine(points=rng.randint(1, 10**6),
                               order_id=f"CHK:{i}/#_.{rng.randint(0, 99)}", member=member,
                               release_at=rng.choice([None, 0, 1_900_000_000]),
                               spend=rng.choice([None, 1250])))
    checked = check_issue_batch(alliance, merchant_id=mid, items=items)
    assert checked.error is None
    expected = tuple(kinds.IssueLinePayload(to_checksum_address(it.member or ""), it.points,
                                            it.order_id, order_ref(it.order_id),
                                            it.release_at or 0) for it in items)
    assert checked.lines == expected
    assert all(type(line) is kinds.IssueLinePayload for line in checked.lines)
    assert [json.dumps(d) for d in checked.data] == [json.dumps(e.to_json()) for e in expected]
    with alliance.store.session() as s:
        op_id = queue_issues(alliance, s, checked).id
        row = outbox_repos.get_operation(s, op_id)
        assert row is not None
        assert row.payload == kinds.ISSUE_BATCH.dump(kinds.IssuePayload(expected))
        assert outbox_repos.QUEUED_PAYLOADS.take(op_id, "issue_batch") == \
            kinds.ISSUE_BATCH.parse(row.payload) == kinds.IssuePayload(expected)
        assert [order_spend(s, merchant_id=mid, order_ref_hex="0x" + order_ref(it.order_id)
                            .hex()) for it in items] == [it.spend for it in items]
