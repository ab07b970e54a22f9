"""A member's history and balances (issue 8): releases of pending points and expiries with
their dates, reversals with what they burned, redemptions here or elsewhere."""

from __future__ import annotations

from eth_account import Account

from ledger.alliance import Alliance
from ledger.merchants import AdmittedMerchant
from ledger.outbox import OutboxWorker
from ledger.points import chain_now, history, order_ref, request_issue, request_reverse

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
    OutboxWorker(alliance).drain()
    with alliance.store.session() as s:
        request_reverse(alliance, s, merchant_id=mid, order_id="HOLD-2", points=10)
    OutboxWorker(alliance).drain()
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
