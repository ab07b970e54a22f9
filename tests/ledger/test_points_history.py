"""A member's history and balances (issue 8): releases of pending points and expiries with
their dates, reversals with what they burned, redemptions here or elsewhere."""

from __future__ import annotations

from eth_account import Account

from ledger.alliance import Alliance
from ledger.merchants.clients import ProgramConfig
from ledger.merchants.service import AdmittedMerchant, admit_merchant
from ledger.points.reads import balances, chain_now, history
from ledger.points.service import order_ref, request_issue, request_reverse
from ledger.runtime import indexer, outbox_worker

DAY = 86_400


def _pass_time(alliance: Alliance, seconds: int) -> None:
    alliance.gateway.rpc("evm_increaseTime", [seconds])
    alliance.gateway.rpc("evm_mine")


def test_history_shows_a_release_with_its_date_once_it_comes(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    member = Account.create().address
    mid = store_merchant.merchant_id
    release_at = chain_now(alliance) + 2 * DAY
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member, points=80,
                      order_id="HOLD-1", release_at=release_at)
        request_issue(alliance, s, merchant_id=mid, member=member, points=30,
                      order_id="HOLD-2", release_at=release_at)
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_reverse(alliance, s, merchant_id=mid, order_id="HOLD-2", points=10)
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member)
    assert [e["kind"] for e in events] == ["reversed", "issued", "issued"]
    hold_ref = "0x" + order_ref("HOLD-1").hex()
    (issued,) = [e for e in events if e["order_ref"] == hold_ref and e["kind"] == "issued"]
    assert issued["release_at"] is not None
    # The points release at the start of the program day that holds release_at, or after.
    assert release_at <= issued["release_at"] < release_at + DAY
    assert issued["expires_at"] is not None and issued["expires_at"] > issued["release_at"]
    assert all(e["at"] and e["program_merchant_id"] == mid for e in events)

    _pass_time(alliance, 3 * DAY)
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member)
    # Releases come in when they happen: newer than the reversal before them.
    assert [e["kind"] for e in events] == ["released", "released", "reversed", "issued",
                                           "issued"]
    released = {e["order_ref"]: e for e in events if e["kind"] == "released"}
    assert released[hold_ref]["amount"] == 80
    assert released[hold_ref]["at"] == issued["release_at"]
    assert released["0x" + order_ref("HOLD-2").hex()]["amount"] == 20  # 10 reversed pending
    program = alliance.contracts.program(store_merchant.program)
    assert program.pending_of(member) == 0


def test_balances_say_what_is_pending_until_when_and_what_expires_when(
        alliance: Alliance, chain_snapshot: None) -> None:
    daily = admit_merchant(
        alliance, name="Daily Florist", symbol="FLOW", rate=1,
        config=ProgramConfig(period_length=DAY, expiry_periods=2, max_pending_days=7))
    member = Account.create().address
    mid = daily.merchant_id
    release_at = chain_now(alliance) + DAY
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member, points=60, order_id="F-1")
        request_issue(alliance, s, merchant_id=mid, member=member, points=25, order_id="F-2",
                      release_at=release_at)
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()
    (b,) = [b for b in balances(alliance, member=member) if b.merchant_id == mid]
    assert (b.balance, b.spendable, b.pending, b.expired) == (85, 60, 25, 0)
    (release,) = b.releases
    assert release.points == 25 and release_at <= release.release_at < release_at + DAY
    assert release.order_ref == "0x" + order_ref("F-2").hex()
    (lot,) = b.lots
    program = alliance.contracts.program(daily.program)
    assert lot.points == 85 and lot.expires_at == program.expiry_of(lot.period)
    assert b.next_nonce == 0

    # Past the lot's expiry, before any sweep: the logs still count it, as `expired`.
    assert lot.expires_at is not None
    alliance.gateway.rpc("evm_increaseTime", [lot.expires_at - chain_now(alliance) + 1])
    alliance.gateway.rpc("evm_mine")
    indexer(alliance).catch_up()
    (b,) = [b for b in balances(alliance, member=member) if b.merchant_id == mid]
    assert (b.balance, b.spendable, b.pending, b.expired) == (85, 0, 0, 85)
    assert b.releases == [] and b.lots == []


def test_history_shows_what_a_reversal_burned_and_the_expiry_with_its_date(
        alliance: Alliance, chain_snapshot: None) -> None:
    daily = admit_merchant(
        alliance, name="Daily Grocer", symbol="GROC", rate=1,
        config=ProgramConfig(period_length=DAY, expiry_periods=1, max_pending_days=7))
    member = Account.create().address
    mid = daily.merchant_id
    program = alliance.contracts.program(daily.program)
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member, points=100,
                      order_id="G-1")
    outbox_worker(alliance).drain()
    ((earned, _),) = program.lots_of(member)
    expires = program.expiry_of(earned)
    alliance.gateway.rpc("evm_increaseTime", [expires - chain_now(alliance) + 1])
    alliance.gateway.rpc("evm_mine")
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=member, points=70,
                      order_id="G-2")
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_reverse(alliance, s, merchant_id=mid, order_id="G-1", points=40)
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member)
    kinds = [e["kind"] for e in events]
    # The member's own transaction (the second issue) swept the expired lot on its way.
    assert kinds[0] == "reversed" and "expired" in kinds
    assert events[0]["amount"] == 40 and events[0]["burned"] == 0  # its own lot had expired
    (expired,) = [e for e in events if e["kind"] == "expired"]
    assert expired["amount"] == 100 and expired["expired_at"] == expires
    assert expired["period"] == earned
    assert program.spendable_of(member) == 70


def test_same_order_id_at_two_merchants_keeps_their_reversals_apart(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        chain_snapshot: None) -> None:
    member = Account.create().address
    release_at = chain_now(alliance) + 2 * DAY
    with alliance.store.session() as s:
        for m in (store_merchant, cafe_merchant):
            request_issue(alliance, s, merchant_id=m.merchant_id, member=member, points=30,
                          order_id="SAME-1", release_at=release_at)
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_reverse(alliance, s, merchant_id=store_merchant.merchant_id,
                        order_id="SAME-1", points=30)
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()
    pending = {b.merchant_id: [r.points for r in b.releases]
               for b in balances(alliance, member=member)}
    assert pending == {store_merchant.merchant_id: [], cafe_merchant.merchant_id: [30]}
    _pass_time(alliance, 3 * DAY)
    indexer(alliance).catch_up()
    events, _ = history(alliance, member=member)
    released = [(e["program_merchant_id"], e["amount"]) for e in events
                if e["kind"] == "released"]
    # The store's order was reversed in full while pending: it releases nothing.
    assert released == [(cafe_merchant.merchant_id, 30)]
