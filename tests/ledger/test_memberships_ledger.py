"""Membership cards and tiers through the ledger layer (service, outbox worker, indexer
projection) on anvil and SQLite: a card issued, renewed and expiring with chain time, a
payment reference refused twice, a card earned with a signed points redemption, tiers rising
and falling with the rolling window, a tier's points multiplier and a tier-locked campaign."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.alliance import Alliance
from ledger.coupons.service import request_create_campaign
from ledger.demo import seed_demo
from ledger.errors import LedgerConflictError, LedgerNotFoundError, LedgerValidationError
from ledger.memberships import service
from ledger.memberships.clients import card_id
from ledger.memberships.service import TIER_TOO_LOW, CardStatus, TierDef
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox import repos as outbox
from ledger.outbox.views import OperationView
from ledger.points.service import order_ref, request_issue, request_redeem
from ledger.runtime import indexer, operation_kinds, outbox_worker
from ledger.store.models import OperationStatus

from .helpers import sign_redemption

DAY = 86_400


def _now(alliance: Alliance) -> int:
    return int(alliance.gateway.block("latest")["timestamp"])


def _pass_time(alliance: Alliance, seconds: int) -> None:
    alliance.gateway.rpc("evm_increaseTime", [seconds])
    alliance.gateway.rpc("evm_mine")


def _settle(alliance: Alliance) -> None:
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()


def _status(alliance: Alliance, op: OperationView) -> str:
    with alliance.store.read_session() as s:
        row = outbox.get_operation(s, op.id)
        assert row is not None
        return str(row.status)


def test_every_membership_kind_is_registered() -> None:
    names = [k.name for k in operation_kinds()]
    assert {"membership_issue", "membership_renew"} <= set(names)


def test_a_card_is_issued_renewed_and_expires_with_chain_time(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    member = Account.create().address
    mid = cafe_merchant.merchant_id
    with alliance.store.session() as s:
        service.request_issue_card(alliance, s, merchant_id=mid, member=member, tier=2, days=30,
                                   payment_ref="till-1/receipt-1")
    _settle(alliance)
    with alliance.store.read_session() as s:
        (card,) = service.member_cards(alliance, s, member=member)
    assert (card.token_id, card.merchant_id, card.tier, card.status) == (
        str(card_id(mid, member)), mid, 2, CardStatus.VALID)
    first_expiry = card.expires_at
    _pass_time(alliance, 31 * DAY)
    with alliance.store.read_session() as s:
        (card,) = service.member_cards(alliance, s, member=member)
    assert card.status is CardStatus.EXPIRED
    assert not alliance.contracts.memberships.is_valid(int(card.token_id))  # type: ignore[union-attr]
    with alliance.store.session() as s:
        service.request_renew_card(alliance, s, merchant_id=mid, member=member, days=365,
                                   payment_ref="till-1/receipt-2")
    _settle(alliance)
    with alliance.store.read_session() as s:
        (card,) = service.member_cards(alliance, s, member=member)
    assert card.status is CardStatus.VALID and card.tier == 2
    assert card.expires_at > first_expiry + 365 * DAY - DAY


def test_a_payment_reference_used_twice_is_refused_before_it_is_queued(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    mid = cafe_merchant.merchant_id
    with alliance.store.session() as s:
        service.request_issue_card(alliance, s, merchant_id=mid,
                                   member=Account.create().address, tier=1, days=30,
                                   payment_ref="receipt-9")
    _settle(alliance)
    with pytest.raises(LedgerConflictError), alliance.store.session() as s:
        service.request_issue_card(alliance, s, merchant_id=mid,
                                   member=Account.create().address, tier=1, days=30,
                                   payment_ref="receipt-9")


def test_a_second_card_is_refused_and_renewing_no_card_is_not_found(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    member = Account.create().address
    mid = cafe_merchant.merchant_id
    with alliance.store.session() as s:
        with pytest.raises(LedgerNotFoundError):
            service.request_renew_card(alliance, s, merchant_id=mid, member=member, days=3,
                                       payment_ref="r0")
        service.request_issue_card(alliance, s, merchant_id=mid, member=member, tier=1, days=3,
                                   payment_ref="r1")
    _settle(alliance)
    with pytest.raises(LedgerConflictError), alliance.store.session() as s:
        service.request_issue_card(alliance, s, merchant_id=mid, member=member, tier=1,
                                   days=3, payment_ref="r2")


@pytest.mark.parametrize(("field", "value"), [("tier", 0), ("tier", 256), ("days", 0),
                                              ("payment_ref", "")])
def test_bad_card_input_is_refused_with_nothing_queued(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, field: str, value: object) -> None:
    args: dict[str, object] = {"tier": 1, "days": 30, "payment_ref": "p", field: value}
    with pytest.raises(LedgerValidationError), alliance.store.session() as s:
        service.request_issue_card(alliance, s, merchant_id=cafe_merchant.merchant_id,
                                   member=Account.create().address, **args)  # type: ignore[arg-type]


def _earn_points(alliance: Alliance, m: AdmittedMerchant, member: str, points: int,
                 order_id: str) -> None:
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=m.merchant_id, member=member, points=points,
                      order_id=order_id)
    _settle(alliance)


def _redeem(alliance: Alliance, m: AdmittedMerchant, member: LocalAccount, points: int,
            order_id: str) -> None:
    deadline = _now(alliance) + 3600
    sig = sign_redemption(member, program=m.program, registry=alliance.contracts.registry.address,
                          chain_id=alliance.gateway.chain_id, amount=points,
                          merchant_id=m.merchant_id, order_id=order_id, nonce=7,
                          deadline=deadline)
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=m.merchant_id, member=member.address,
                       points=points, order_id=order_id, nonce=7, deadline=deadline,
                       signature=sig)
    _settle(alliance)


def test_a_card_earned_with_a_signed_points_redemption_pays_once(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    member = Account.create()
    m = cafe_merchant
    _earn_points(alliance, m, member.address, 1000, "buy-1")
    with pytest.raises(LedgerConflictError), alliance.store.session() as s:
        service.request_earn_card(alliance, s, merchant_id=m.merchant_id,
                                  member=member.address, tier=1, days=365,
                                  points_order_id="card-1", price_points=500)
    _redeem(alliance, m, member, 500, "card-1")
    with alliance.store.session() as s:
        with pytest.raises(LedgerConflictError):  # the redemption is of 500, not 600
            service.request_earn_card(alliance, s, merchant_id=m.merchant_id,
                                      member=member.address, tier=1, days=365,
                                      points_order_id="card-1", price_points=600)
        service.request_earn_card(alliance, s, merchant_id=m.merchant_id,
                                  member=member.address, tier=3, days=365,
                                  points_order_id="card-1", price_points=500)
    _settle(alliance)
    with alliance.store.read_session() as s:
        (card,) = service.member_cards(alliance, s, member=member.address)
    assert card.tier == 3 and card.status is CardStatus.VALID
    # The redemption's order ref paid: it cannot pay for a renewal's reference either.
    cards = alliance.contracts.memberships
    assert cards is not None
    assert cards.payment_ref_used(m.merchant_id, bytes(order_ref("card-1")))


SILVER_GOLD = [TierDef(1, "silver", 1000, 365, 12_500), TierDef(2, "gold", 5000, 365, 15_000)]


def test_tier_rises_with_points_and_falls_when_they_leave_the_window(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    member = Account.create().address
    mid = cafe_merchant.merchant_id
    with alliance.store.session() as s:
        service.set_tiers(s, merchant_id=mid, tiers=SILVER_GOLD)

    def level() -> int:
        with alliance.store.read_session() as s:
            return service.member_tier(alliance, s, merchant_id=mid, member=member).level

    assert level() == 0
    _earn_points(alliance, cafe_merchant, member, 1200, "o-1")
    assert level() == 1
    _pass_time(alliance, 200 * DAY)
    _earn_points(alliance, cafe_merchant, member, 4000, "o-2")
    assert level() == 2
    _pass_time(alliance, 170 * DAY)  # o-1 (day 0) is out of the 365-day window, o-2 is not
    assert level() == 1
    _pass_time(alliance, 200 * DAY)  # o-2 is out too
    assert level() == 0
    # Alliance-wide tiers count every program's points.
    with alliance.store.session() as s:
        service.set_tiers(s, merchant_id=0, tiers=[TierDef(1, "member", 100, 30, 10_000)])
    _earn_points(alliance, cafe_merchant, member, 150, "o-3")
    with alliance.store.read_session() as s:
        assert service.member_tier(alliance, s, merchant_id=0, member=member).level == 1


def test_a_tier_raises_the_points_an_issue_gives(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    member = Account.create().address
    mid = cafe_merchant.merchant_id
    with alliance.store.session() as s:
        service.set_tiers(s, merchant_id=mid, tiers=SILVER_GOLD)
        assert service.boosted_points(alliance, s, merchant_id=mid, member=member,
                                      points=100) == 100
    _earn_points(alliance, cafe_merchant, member, 1000, "o-1")
    with alliance.store.read_session() as s:
        assert service.boosted_points(alliance, s, merchant_id=mid, member=member,
                                      points=101) == 126


@pytest.mark.parametrize("tiers", [
    [TierDef(2, "gold", 5000, 365, 15_000)],  # no level 1
    [TierDef(1, "a", 500, 365, 10_000), TierDef(2, "b", 500, 365, 10_000)],  # not rising
    [TierDef(1, "a", 500, 0, 10_000)],  # no window
    [TierDef(1, "a", 500, 30, 9_000)],  # lowers points
])
def test_bad_tiers_are_refused_and_the_old_ones_stay(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, tiers: list[TierDef]) -> None:
    mid = cafe_merchant.merchant_id
    with alliance.store.session() as s:
        service.set_tiers(s, merchant_id=mid, tiers=SILVER_GOLD)
    with pytest.raises(LedgerValidationError), alliance.store.session() as s:
        service.set_tiers(s, merchant_id=mid, tiers=tiers)
    with alliance.store.read_session() as s:
        assert service.get_tiers(s, merchant_id=mid) == SILVER_GOLD


def test_a_tier_locked_campaign_refuses_a_member_below_the_tier(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    gold, plain = Account.create().address, Account.create().address
    mid = cafe_merchant.merchant_id
    with alliance.store.session() as s:
        service.set_tiers(s, merchant_id=mid, tiers=SILVER_GOLD)
        request_create_campaign(alliance, s, merchant_id=mid, kind="fixed_off", value=500,
                                budget=100_000)
    _settle(alliance)
    _earn_points(alliance, cafe_merchant, gold, 6000, "big")
    with alliance.store.session() as s:
        service.lock_campaign(s, merchant_id=mid, campaign_id=1, min_level=2)
    with pytest.raises(LedgerConflictError) as info, alliance.store.session() as s:
        service.request_tier_grant(alliance, s, merchant_id=mid, campaign_id=1,
                                   members=[gold, plain])
    assert info.value.code == TIER_TOO_LOW and info.value.details["index"] == 1
    with alliance.store.session() as s:
        op = service.request_tier_grant(alliance, s, merchant_id=mid, campaign_id=1,
                                        members=[gold])
    _settle(alliance)
    assert _status(alliance, op) == str(OperationStatus.CONFIRMED)


def test_demo_seeds_the_stores_tiers_and_a_card_for_the_demo_wallet(alliance: Alliance) -> None:
    creds = seed_demo(alliance)
    seeded = creds["memberships"]
    assert isinstance(seeded, dict)
    wallet = creds["demo_wallet"]
    assert isinstance(wallet, dict)
    store = int(seeded["merchant_id"])
    with alliance.store.read_session() as s:
        assert [(t.level, t.name) for t in service.get_tiers(s, merchant_id=store)] == [
            (1, "silver"), (2, "gold")]
    indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        tier = service.member_tier(alliance, s, merchant_id=store, member=wallet["address"])
        (card,) = service.member_cards(alliance, s, member=wallet["address"])
    # The wallet earned 1,600 store points (1,000 and the 600-point parking order): silver.
    assert (tier.level, tier.name, seeded["tier"], seeded["tier_name"]) == (
        1, "silver", 1, "silver")
    assert (card.token_id, card.merchant_id, card.tier, card.status) == (
        str(card_id(store, wallet["address"])), store, 1, CardStatus.VALID)
