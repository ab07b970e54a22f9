"""The points capability through the ledger layer: outbox, sender and chain together, on a
real anvil and a real SQLite store."""

from __future__ import annotations

import threading

import pytest
from eth_account import Account

from ledger.alliance import Alliance
from ledger.chain.sender import TransactionSender
from ledger.errors import (
    LedgerNotFoundError,
    LedgerPermissionError,
    LedgerSignatureError,
    LedgerValidationError,
)
from ledger.members import repos as member_repos
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox import repos as outbox_repos
from ledger.outbox.views import get_operation
from ledger.points.reads import balances, chain_now, history
from ledger.points.service import (
    IssueLine,
    order_ref,
    request_issue,
    request_issue_batch,
    request_redeem,
    request_reverse,
)
from ledger.runtime import indexer, outbox_worker

from .helpers import sign_redemption


def _program(alliance: Alliance, merchant: AdmittedMerchant):  # type: ignore[no-untyped-def]
    return alliance.contracts.program(merchant.program)


def test_issue_request_lands_on_chain_and_reports_confirmed(alliance: Alliance,
                                                            store_merchant: AdmittedMerchant
                                                            ) -> None:
    member = Account.create().address
    with alliance.store.session() as s:
        op = request_issue(alliance, s, merchant_id=store_merchant.merchant_id, member=member,
                           points=120, order_id="A-1001")
    assert op.status == "queued"
    outbox_worker(alliance).drain()
    done = get_operation(alliance, operation_id=op.id, merchant_id=store_merchant.merchant_id)
    assert done.status == "confirmed"
    assert done.tx_hash and done.block_number
    prog = _program(alliance, store_merchant)
    assert prog.balance_of(member) == 120
    assert prog.order_of(order_ref("A-1001"))[:2] == (member, 120)


def test_member_id_resolves_to_a_stable_custodial_account(alliance: Alliance,
                                                          store_merchant: AdmittedMerchant
                                                          ) -> None:
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store_merchant.merchant_id,
                      member_id="member-13800138000", points=30, order_id="A-2001")
        request_issue(alliance, s, merchant_id=store_merchant.merchant_id,
                      member_id="member-13800138000", points=12, order_id="A-2002")
        account = member_repos.member_account(s, alliance.master_key,
                                              member_id="member-13800138000")
    outbox_worker(alliance).drain()
    assert _program(alliance, store_merchant).balance_of(account) == 42
    # The member id itself never reaches the chain: only the derived account does.
    assert "13800138000" not in account


def test_batch_with_one_duplicate_order_fails_only_that_operation(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    members = [Account.create().address for _ in range(4)]
    with alliance.store.session() as s:
        first = request_issue(alliance, s, merchant_id=mid, member=members[0], points=5,
                              order_id="DUP-1")
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        ops = [request_issue(alliance, s, merchant_id=mid, member=members[i], points=5,
                             order_id=f"OK-{i}") for i in range(1, 4)]
        dup = request_issue(alliance, s, merchant_id=mid, member=members[3], points=99,
                            order_id="DUP-1")
    outbox_worker(alliance).drain()
    assert get_operation(alliance, operation_id=first.id, merchant_id=mid).status == "confirmed"
    failed = get_operation(alliance, operation_id=dup.id, merchant_id=mid)
    assert failed.status == "failed" and failed.error_code == "PointsOrderRefUsed"
    for op in ops:
        assert get_operation(alliance, operation_id=op.id, merchant_id=mid).status == "confirmed"
    prog = _program(alliance, store_merchant)
    assert prog.balance_of(members[3]) == 5  # the duplicate's 99 never landed


def test_fifty_concurrent_issues_land_with_contiguous_nonces(
        alliance_unbatched: Alliance, store_merchant_unbatched: AdmittedMerchant) -> None:
    alliance, merchant = alliance_unbatched, store_merchant_unbatched
    members = [Account.create().address for _ in range(50)]
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            with alliance.store.session() as s:
                request_issue(alliance, s, merchant_id=merchant.merchant_id, member=members[i],
                              points=i + 1, order_id=f"C-{i}")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    outbox_worker(alliance).drain()
    prog = _program(alliance, merchant)
    assert [prog.balance_of(m) for m in members] == [i + 1 for i in range(50)]
    with alliance.store.session() as s:
        nonces = sorted(t.nonce for t in outbox_repos.transactions_of(s, signer=merchant.account))
    assert len(nonces) == 50
    assert nonces == list(range(nonces[0], nonces[0] + 50))
    assert alliance.gateway.nonce(merchant.account, "latest") == nonces[-1] + 1


def test_crash_between_record_and_broadcast_is_sent_exactly_once(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    member = Account.create().address
    with alliance.store.session() as s:
        op = request_issue(alliance, s, merchant_id=store_merchant.merchant_id, member=member,
                           points=77, order_id="CRASH-1")

    class Crash(BaseException):
        pass

    def crash(self: TransactionSender, sent: object) -> None:
        raise Crash

    monkeypatch.setattr(TransactionSender, "broadcast", crash)
    with pytest.raises(Crash):
        outbox_worker(alliance).process_once()
    monkeypatch.undo()
    with alliance.store.session() as s:
        assert outbox_repos.get_operation(s, op.id).status == "submitted"
    assert _program(alliance, store_merchant).balance_of(member) == 0
    # Restart: the recovery pass rebroadcasts the recorded transaction, once.
    worker = outbox_worker(alliance)
    worker.recover()
    worker.drain()
    assert get_operation(alliance, operation_id=op.id,
                         merchant_id=store_merchant.merchant_id).status == "confirmed"
    assert _program(alliance, store_merchant).balance_of(member) == 77
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member)
    assert [e["kind"] for e in events] == ["issued"]


def test_crash_after_claim_before_signing_is_requeued_and_sent_once(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        monkeypatch: pytest.MonkeyPatch) -> None:
    member = Account.create().address
    with alliance.store.session() as s:
        op = request_issue(alliance, s, merchant_id=store_merchant.merchant_id, member=member,
                           points=15, order_id="CRASH-2")

    class Crash(BaseException):
        pass

    def crash(*args: object, **kwargs: object) -> None:
        raise Crash

    monkeypatch.setattr(TransactionSender, "sign", crash)
    with pytest.raises(Crash):
        outbox_worker(alliance).process_once()
    monkeypatch.undo()
    worker = outbox_worker(alliance)
    worker.recover()
    worker.drain()
    assert get_operation(alliance, operation_id=op.id,
                         merchant_id=store_merchant.merchant_id).status == "confirmed"
    assert _program(alliance, store_merchant).balance_of(member) == 15


def test_reverse_request_takes_points_back(alliance: Alliance,
                                           store_merchant: AdmittedMerchant) -> None:
    member = Account.create().address
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member, points=100, order_id="R-1")
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        ok = request_reverse(alliance, s, merchant_id=mid, order_id="R-1", points=60)
        too_much = request_reverse(alliance, s, merchant_id=mid, order_id="R-1", points=41)
    outbox_worker(alliance).drain()
    assert get_operation(alliance, operation_id=ok.id, merchant_id=mid).status == "confirmed"
    bad = get_operation(alliance, operation_id=too_much.id, merchant_id=mid)
    assert bad.status == "failed" and bad.error_code == "PointsReverseExceedsIssued"
    assert _program(alliance, store_merchant).balance_of(member) == 40


def test_redeem_request_relays_the_members_signature(alliance: Alliance,
                                                     store_merchant: AdmittedMerchant) -> None:
    member = Account.create()
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member.address, points=50,
                      order_id="P-1")
    outbox_worker(alliance).drain()
    prog = _program(alliance, store_merchant)
    deadline = chain_now(alliance) + 600
    sig = sign_redemption(member, program=prog.address, chain_id=alliance.gateway.chain_id,
                          registry=alliance.contracts.registry.address,
                          amount=20, merchant_id=mid, order_id="SALE-1", nonce=0,
                          deadline=deadline)
    with alliance.store.session() as s:
        op = request_redeem(alliance, s, merchant_id=mid, member=member.address, points=20,
                            order_id="SALE-1", nonce=0, deadline=deadline, signature=sig)
    # The signature reused for another order is refused before anything is queued (it
    # used to be queued and fail on chain with PointsInvalidSignature).
    with pytest.raises(LedgerSignatureError) as refused, alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=mid, member=member.address, points=20,
                       order_id="SALE-2", nonce=0, deadline=deadline, signature=sig)
    assert refused.value.code == "signature-mismatch"
    outbox_worker(alliance).drain()
    assert get_operation(alliance, operation_id=op.id, merchant_id=mid).status == "confirmed"
    # Once it landed, the same signed message again is refused for its spent nonce.
    with pytest.raises(LedgerSignatureError) as replayed, alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=mid, member=member.address, points=20,
                       order_id="SALE-1", nonce=0, deadline=deadline, signature=sig)
    assert replayed.value.code == "nonce-used"
    assert prog.balance_of(member.address) == 30
    indexer(alliance).catch_up()
    (b,) = [b for b in balances(alliance, member=member.address) if b.merchant_id == mid]
    assert (b.spendable, b.pending, b.next_nonce) == (30, 0, 1)
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member.address)
    assert [e["kind"] for e in events] == ["redeemed", "issued"]


def test_requests_reject_bad_input_and_write_nothing(alliance: Alliance,
                                                    store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    good = Account.create().address
    bad_calls = [
        {"member": "0x1234", "points": 1, "order_id": "V-1"},
        {"member": good, "points": 0, "order_id": "V-2"},
        {"member": good, "points": -5, "order_id": "V-3"},
        {"member": good, "points": 2**48, "order_id": "V-4"},
        {"member": good, "points": 1.5, "order_id": "V-5"},
        {"member": good, "points": 1, "order_id": ""},
        {"member": good, "points": 1, "order_id": "x" * 65},
        {"member": None, "points": 1, "order_id": "V-8"},
        {"member": "0x0000000000000000000000000000000000000000", "points": 1, "order_id": "V-9"},
    ]
    for kwargs in bad_calls:
        with pytest.raises(LedgerValidationError), alliance.store.session() as s:
            request_issue(alliance, s, merchant_id=mid, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(LedgerValidationError), alliance.store.session() as s:
        request_issue_batch(alliance, s, merchant_id=mid, items=[
            IssueLine(points=1, order_id="B-1", member=good),
            IssueLine(points=1, order_id="B-1", member=good)])
    with pytest.raises(LedgerNotFoundError), alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=999, member=good, points=1, order_id="V-10")
    with alliance.store.session() as s:
        assert outbox_repos.count_operations(s) == 0


def test_merchant_cannot_read_another_merchants_operation(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    with alliance.store.session() as s:
        op = request_issue(alliance, s, merchant_id=store_merchant.merchant_id,
                           member=Account.create().address, points=1, order_id="X-1")
    with pytest.raises(LedgerPermissionError):
        get_operation(alliance, operation_id=op.id, merchant_id=cafe_merchant.merchant_id)


def test_operations_wait_for_the_configured_confirmation_depth(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    alliance.settings = alliance.settings.model_copy(update={"confirmations": 3})
    with alliance.store.session() as s:
        op = request_issue(alliance, s, merchant_id=store_merchant.merchant_id,
                           member=Account.create().address, points=9, order_id="DEPTH-1")
    worker = outbox_worker(alliance)
    worker.drain()
    mined = get_operation(alliance, operation_id=op.id, merchant_id=store_merchant.merchant_id)
    assert mined.status == "submitted" and mined.block_number is not None
    for _ in range(3):
        alliance.gateway.rpc("evm_mine")
    worker.process_once()
    done = get_operation(alliance, operation_id=op.id, merchant_id=store_merchant.merchant_id)
    assert done.status == "confirmed" and done.block_number == mined.block_number


def test_history_drops_events_of_blocks_lost_in_a_reorg(alliance: Alliance,
                                                       store_merchant: AdmittedMerchant) -> None:
    member = Account.create().address
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member, points=5, order_id="ORG-1")
    outbox_worker(alliance).drain()
    for _ in range(3):
        alliance.gateway.rpc("evm_mine")
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member, points=7, order_id="ORG-2")
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member)
    assert [e["amount"] for e in events] == [7, 5]
    # The block holding the second issue is replaced by an empty one.
    alliance.gateway.rpc("anvil_reorg", [1, []])
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member)
    assert [e["amount"] for e in events] == [5]
    assert _program(alliance, store_merchant).balance_of(member) == 5
