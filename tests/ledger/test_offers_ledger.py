"""Triggered offers and gifts through the ledger layer on anvil and SQLite: the parking rule
grants exactly once per qualifying order (an issue retried, the projection re-read), a
disabled rule never fires, the birthday job run twice in a month grants once, a referral
grants both members once, and a gift is paid for with signed points and collected in store."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select

from ledger import runtime
from ledger.alliance import Alliance
from ledger.coupons import repos as coupon_repos
from ledger.coupons.clients import campaign_of
from ledger.coupons.service import (
    campaign_stats as coupon_stats,
)
from ledger.coupons.service import (
    member_coupons,
    request_create_campaign,
    request_redeem,
    request_set_paused,
)
from ledger.coupons.signing import redeem_coupon_typed_data
from ledger.errors import LedgerConflictError, LedgerPermissionError, LedgerValidationError
from ledger.indexer import repos as cursors
from ledger.memberships import service as memberships
from ledger.merchants.service import AdmittedMerchant
from ledger.offers import service as offers
from ledger.offers.demo import seed_demo_offers
from ledger.offers.projection import CURSOR
from ledger.points.service import order_ref, request_issue, request_reverse
from ledger.store.models import (
    OfferBirthMonth,
    OfferFiring,
    OfferReversal,
    Operation,
    OperationStatus,
)
from ledger.types import MerchantId

from .helpers import sign_redemption

DAY = 86_400


def settle(alliance: Alliance) -> None:
    """Send what is queued and read the chain back, twice: a fired rule's grant is queued by
    the indexer and sent on the second pass."""
    for _ in range(2):
        runtime.outbox_worker(alliance).drain()
        runtime.indexer(alliance).catch_up()


def campaign(alliance: Alliance, merchant: AdmittedMerchant, kind: str = "fixed_off",
             value: int = 500) -> int:
    with alliance.store.session() as s:
        request_create_campaign(alliance, s, merchant_id=merchant.merchant_id, kind=kind,
                                value=value, budget=10**9, all_merchants=True)
    settle(alliance)
    with alliance.store.read_session() as s:
        return max(c.campaign_id for c in coupon_repos.campaigns(s, issuer=merchant.merchant_id))


def issue(alliance: Alliance, merchant: AdmittedMerchant, member: str, points: int,
          order_id: str) -> None:
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=MerchantId(merchant.merchant_id), member=member,
                      points=points, order_id=order_id)


def held(alliance: Alliance, holder: str, campaign_id: int) -> list[dict[str, object]]:
    with alliance.store.read_session() as s:
        return [c for c in member_coupons(alliance, s, holder=holder)
                if c["campaign_id"] == campaign_id]


def firings(alliance: Alliance, rule_id: int) -> list[tuple[str, list[str], str]]:
    """The rule's firings: (cause, members, status)."""
    with alliance.store.read_session() as s:
        return [(f.cause, f.members, f.status) for f in s.scalars(
            select(OfferFiring).where(OfferFiring.rule_id == rule_id)
            .order_by(OfferFiring.id)).all()]


def chain_now(alliance: Alliance) -> int:
    return int(alliance.gateway.block("latest")["timestamp"])


def test_parking_rule_grants_once_per_qualifying_order_even_when_the_issue_is_retried(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    cid = campaign(alliance, store_merchant)
    with alliance.store.session() as s:
        rule = offers.create_rule(alliance, s, merchant_id=store_merchant.merchant_id,
                                  kind="purchase", campaign_id=cid, min_points=100)
    member = Account.create().address
    issue(alliance, store_merchant, member, 150, "park-1")
    issue(alliance, store_merchant, member, 99, "small-1")
    settle(alliance)
    assert len(held(alliance, member, cid)) == 1
    # The same order issued again (a client's retry): the chain refuses the second issue.
    issue(alliance, store_merchant, member, 150, "park-1")
    settle(alliance)
    with alliance.store.read_session() as s:
        failed = s.scalars(select(Operation.error_code).where(
            Operation.status == OperationStatus.FAILED)).all()
    assert list(failed) == ["PointsOrderRefUsed"]
    # A restart that reads every block again (the cursor put back) fires nothing new.
    with alliance.store.session() as s:
        cursors.set_cursor(s, CURSOR, alliance.contracts.deployment.block - 1, "")
    settle(alliance)
    assert firings(alliance, rule["rule_id"]) == [
        (f"order:0x{order_ref('park-1').hex()}", [member], "queued")]
    assert len(held(alliance, member, cid)) == 1
    with alliance.store.read_session() as s:
        assert offers.show_rule(s, merchant_id=store_merchant.merchant_id,
                                rule_id=rule["rule_id"])["fired"] == 1


def test_a_disabled_rule_never_fires_and_cannot_be_disabled_twice(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    cid = campaign(alliance, store_merchant)
    with alliance.store.session() as s:
        rule = offers.create_rule(alliance, s, merchant_id=store_merchant.merchant_id,
                                  kind="purchase", campaign_id=cid, min_points=1)
        offers.disable_rule(s, merchant_id=store_merchant.merchant_id, rule_id=rule["rule_id"])
    with pytest.raises(LedgerConflictError) as exc, alliance.store.session() as s:
        offers.disable_rule(s, merchant_id=store_merchant.merchant_id, rule_id=rule["rule_id"])
    assert exc.value.code == "offers-rule-disabled"
    member = Account.create().address
    issue(alliance, store_merchant, member, 500, "o-1")
    settle(alliance)
    assert firings(alliance, rule["rule_id"]) == [] and held(alliance, member, cid) == []


def test_a_rule_on_another_merchants_campaign_is_refused(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    cid = campaign(alliance, store_merchant)
    with pytest.raises(LedgerPermissionError), alliance.store.session() as s:
        offers.create_rule(alliance, s, merchant_id=cafe_merchant.merchant_id,
                           kind="purchase", campaign_id=cid, min_points=1)
    with alliance.store.read_session() as s:
        assert offers.list_rules(s, merchant_id=cafe_merchant.merchant_id) == []


def test_birthday_job_run_twice_in_a_month_grants_once_and_again_next_year(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    cid = campaign(alliance, store_merchant, kind="gift", value=100)
    now = chain_now(alliance)
    month = datetime.fromtimestamp(now, UTC).month
    with alliance.store.session() as s:
        rule = offers.create_rule(alliance, s, merchant_id=store_merchant.merchant_id,
                                  kind="birthday", campaign_id=cid)
        born = offers.set_birth_month(alliance, s, merchant_id=store_merchant.merchant_id,
                                      member_id="birthday-member", month=month)
        other = offers.set_birth_month(alliance, s, merchant_id=store_merchant.merchant_id,
                                       member_id="other-member", month=month % 12 + 1)
    with alliance.store.read_session() as s:
        stored = s.scalars(select(OfferBirthMonth.month_enc)).all()
    assert len(stored) == 2 and all(bytes([month]) != m and len(m) > 16 for m in stored)
    assert offers.run_birthday_offers(alliance, now=now) == 1
    assert offers.run_birthday_offers(alliance, now=now + 60) == 0
    settle(alliance)
    assert len(held(alliance, born, cid)) == 1 and held(alliance, other, cid) == []
    assert offers.run_birthday_offers(alliance, now=now + 366 * DAY) == 1
    assert [f[0].split(":")[-1] for f in firings(alliance, rule["rule_id"])] == [
        str(datetime.fromtimestamp(now, UTC).year),
        str(datetime.fromtimestamp(now + 366 * DAY, UTC).year)]


def test_a_referral_grants_both_members_once_on_the_invitees_first_purchase(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    cid = campaign(alliance, store_merchant)
    mid = store_merchant.merchant_id
    inviter, invitee = Account.create().address, Account.create().address
    with alliance.store.session() as s:
        rule = offers.create_rule(alliance, s, merchant_id=mid, kind="referral",
                                  campaign_id=cid)
        code = offers.invite_code(alliance, s, merchant_id=mid, member=inviter)["code"]
        assert offers.invite_code(alliance, s, merchant_id=mid, member=inviter)["code"] == code
        offers.refer(alliance, s, merchant_id=mid, code=code, member=invitee)
    for reason, member in [("offers-referral-exists", invitee),
                           ("offers-referral-self", inviter)]:
        with pytest.raises(LedgerConflictError) as exc, alliance.store.session() as s:
            offers.refer(alliance, s, merchant_id=mid, code=code, member=member)
        assert exc.value.code == reason
    issue(alliance, store_merchant, invitee, 10, "first")
    settle(alliance)
    issue(alliance, store_merchant, invitee, 10, "second")
    settle(alliance)
    ((_, members, _),) = firings(alliance, rule["rule_id"])
    assert members == [inviter, invitee]
    assert len(held(alliance, inviter, cid)) == 1 and len(held(alliance, invitee, cid)) == 1
    late = Account.create().address
    with pytest.raises(LedgerConflictError) as exc, alliance.store.session() as s:
        offers.refer(alliance, s, merchant_id=mid, code=code, member=invitee)
    with alliance.store.session() as s:
        offers.refer(alliance, s, merchant_id=mid, code=code, member=late)
    assert exc.value.code == "offers-referral-exists"


def _sign_gift(alliance: Alliance, merchant: AdmittedMerchant, member: LocalAccount, *,
               gift_id: int, request_id: str, points: int) -> dict[str, object]:
    nonce = int.from_bytes(os.urandom(6))
    deadline = chain_now(alliance) + 600
    sig = sign_redemption(member, program=merchant.program,
                          registry=alliance.contracts.deployment.registry,
                          chain_id=alliance.gateway.chain_id, amount=points,
                          merchant_id=merchant.merchant_id,
                          order_id=offers.gift_order_id(gift_id, request_id), nonce=nonce,
                          deadline=deadline)
    return {"member": member.address, "request_id": request_id, "nonce": nonce,
            "deadline": deadline, "signature": sig}


def test_a_gift_is_paid_with_signed_points_held_as_a_coupon_and_redeemed_in_store(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant, kind="gift", value=3000)
    member = Account.create()
    issue(alliance, store_merchant, member.address, 250, "buy-1")
    settle(alliance)
    program = alliance.contracts.program(store_merchant.program)
    with alliance.store.session() as s:
        gift = offers.create_gift(alliance, s, merchant_id=mid, name="Umbrella", points=100,
                                  campaign_id=cid, stock=2, per_member_limit=0)
    gid = gift["gift_id"]
    with alliance.store.session() as s:
        offers.request_gift_redemption(alliance, s, merchant_id=mid, gift_id=gid,
                                       **_sign_gift(alliance, store_merchant, member,
                                                    gift_id=gid, request_id="r1",
                                                    points=100))  # type: ignore[arg-type]
    # Replayed, and more than the member holds: refused, nothing written.
    cases = [("r1", 100, "offers-gift-request-replayed")]
    for rid, pts, code in cases:
        with pytest.raises(LedgerConflictError) as exc, alliance.store.session() as s:
            offers.request_gift_redemption(alliance, s, merchant_id=mid, gift_id=gid,
                                           **_sign_gift(alliance, store_merchant, member,
                                                        gift_id=gid, request_id=rid,
                                                        points=pts))  # type: ignore[arg-type]
        assert exc.value.code == code
    settle(alliance)
    assert program.spendable_of(member.address) == 150
    (coupon,) = held(alliance, member.address, cid)
    assert coupon["status"] == "valid"
    with alliance.store.read_session() as s:
        assert offers.show_gift_redemption(s, merchant_id=mid, gift_id=gid,
                                           request_id="r1")["status"] == "paid"
        assert offers.show_gift(s, merchant_id=mid, gift_id=gid)["left"] == 1
    # Collected in store: the holder signs the coupon's redemption, the store relays it.
    book = alliance.contracts.coupons
    assert book is not None
    deadline = chain_now(alliance) + 600
    typed = redeem_coupon_typed_data(
        chain_id=alliance.gateway.chain_id, book=book.address,
        registry=alliance.contracts.deployment.registry, holder=member.address,
        coupon_id=int(str(coupon["coupon_id"])), acceptor=mid, order_ref=order_ref("collect-1"),
        order_amount=3000, nonce=7, deadline=deadline)
    sig = "0x" + bytes(Account.sign_typed_data(member.key, full_message=typed).signature).hex()
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=mid, coupon_id=coupon["coupon_id"],
                       order_id="collect-1", order_amount=3000, nonce=7, deadline=deadline,
                       signature=sig)
    settle(alliance)
    (coupon,) = held(alliance, member.address, cid)
    assert coupon["status"] == "used"


def test_gift_refusals_change_nothing(alliance: Alliance, store_merchant: AdmittedMerchant
                                      ) -> None:
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant, kind="gift", value=3000)
    coupon_campaign = campaign(alliance, store_merchant)
    member = Account.create()
    issue(alliance, store_merchant, member.address, 100, "buy-1")
    settle(alliance)
    with pytest.raises(LedgerConflictError) as exc, alliance.store.session() as s:
        offers.create_gift(alliance, s, merchant_id=mid, name="Mug", points=10,
                           campaign_id=coupon_campaign, stock=1)
    assert exc.value.code == "offers-campaign-not-gift"
    with alliance.store.session() as s:
        big = offers.create_gift(alliance, s, merchant_id=mid, name="Bike", points=101,
                                 campaign_id=cid, stock=5)["gift_id"]
        none_left = offers.create_gift(alliance, s, merchant_id=mid, name="Pen", points=1,
                                       campaign_id=cid, stock=0)["gift_id"]
        off = offers.create_gift(alliance, s, merchant_id=mid, name="Cap", points=1,
                                 campaign_id=cid, stock=5)["gift_id"]
        offers.update_gift(s, merchant_id=mid, gift_id=off, active=False)
    with alliance.store.read_session() as s:
        ops_before = s.query(Operation).count()
    for gid, pts, code in [(big, 101, "offers-insufficient-points"),
                           (none_left, 1, "offers-gift-out-of-stock"),
                           (off, 1, "offers-gift-disabled")]:
        with pytest.raises(LedgerConflictError) as exc, alliance.store.session() as s:
            offers.request_gift_redemption(alliance, s, merchant_id=mid, gift_id=gid,
                                           **_sign_gift(alliance, store_merchant, member,
                                                        gift_id=gid, request_id="x",
                                                        points=pts))  # type: ignore[arg-type]
        assert exc.value.code == code
    with alliance.store.read_session() as s:
        assert s.query(Operation).count() == ops_before
        assert [g["left"] for g in offers.list_gifts(s, merchant_id=mid)] == [5, 0, 5]


def test_a_gift_redemption_the_chain_refuses_grants_nothing_and_gives_its_stock_back(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    # Two requests each pass the balance check (150 spendable, 100 each) before either is
    # sent: the chain takes the first and refuses the second.
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant, kind="gift", value=3000)
    member = Account.create()
    issue(alliance, store_merchant, member.address, 150, "buy-1")
    settle(alliance)
    with alliance.store.session() as s:
        gid = offers.create_gift(alliance, s, merchant_id=mid, name="Scarf", points=100,
                                 campaign_id=cid, stock=5)["gift_id"]
    for rid in ("a", "b"):
        with alliance.store.session() as s:
            offers.request_gift_redemption(alliance, s, merchant_id=mid, gift_id=gid,
                                           **_sign_gift(alliance, store_merchant, member,
                                                        gift_id=gid, request_id=rid,
                                                        points=100))  # type: ignore[arg-type]
    with alliance.store.read_session() as s:
        assert offers.show_gift(s, merchant_id=mid, gift_id=gid)["left"] == 3
    settle(alliance)
    with alliance.store.read_session() as s:
        states = {rid: offers.show_gift_redemption(s, merchant_id=mid, gift_id=gid,
                                                   request_id=rid) for rid in ("a", "b")}
        assert offers.show_gift(s, merchant_id=mid, gift_id=gid)["left"] == 4
    assert {r["status"] for r in states.values()} == {"paid", "failed"}
    assert [r["grant_operation_id"] is None for r in states.values()].count(True) == 1
    assert len(held(alliance, member.address, cid)) == 1
    assert alliance.contracts.program(store_merchant.program).spendable_of(member.address) == 50


def test_the_demo_wallet_gets_the_parking_coupon_and_the_tote_bag(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    wallet = Account.create()
    ids = seed_demo_offers(alliance, runtime.outbox_worker(alliance),
                           store=store_merchant.merchant_id, program=store_merchant.program,
                           wallet_key=bytes(wallet.key))
    runtime.indexer(alliance).catch_up()
    assert [c["status"] for c in held(alliance, wallet.address, ids["parking_campaign"])] == [
        "valid"]
    assert [c["kind"] for c in held(alliance, wallet.address, ids["gift_campaign"])] == ["gift"]
    program = alliance.contracts.program(store_merchant.program)
    assert program.spendable_of(wallet.address) == 600 - 100


def test_a_rule_whose_campaign_is_paused_records_the_firing_as_skipped_and_grants_nothing(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant)
    with alliance.store.session() as s:
        rule = offers.create_rule(alliance, s, merchant_id=mid, kind="purchase",
                                  campaign_id=cid, min_points=10)
        request_set_paused(alliance, s, merchant_id=mid, campaign_id=cid, paused=True)
    settle(alliance)
    member = Account.create().address
    issue(alliance, store_merchant, member, 50, "while-paused")
    settle(alliance)
    assert firings(alliance, rule["rule_id"]) == [
        (f"order:0x{order_ref('while-paused').hex()}", [member], "skipped")]
    assert held(alliance, member, cid) == []
    with alliance.store.session() as s:
        request_set_paused(alliance, s, merchant_id=mid, campaign_id=cid, paused=False)
    settle(alliance)
    issue(alliance, store_merchant, member, 50, "after-resume")
    settle(alliance)
    assert [f[2] for f in firings(alliance, rule["rule_id"])] == ["skipped", "queued"]
    assert len(held(alliance, member, cid)) == 1
    with alliance.store.read_session() as s:
        shown = offers.show_rule(s, merchant_id=mid, rule_id=rule["rule_id"])
    assert (shown["fired"], shown["skipped"]) == (1, 1)


def issue_spend(alliance: Alliance, merchant: AdmittedMerchant, member: str, points: int,
                order_id: str, spend: int | None) -> None:
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=MerchantId(merchant.merchant_id), member=member,
                      points=points, order_id=order_id, spend=spend)


def reverse(alliance: Alliance, merchant: AdmittedMerchant, order_id: str, points: int) -> None:
    with alliance.store.session() as s:
        request_reverse(alliance, s, merchant_id=MerchantId(merchant.merchant_id),
                        order_id=order_id, points=points)


def statuses(alliance: Alliance, rule_id: int) -> dict[str, str]:
    """The rule's firings by order ref cause: status."""
    return {c: st for c, _, st in firings(alliance, rule_id)}


def redeem_coupon(alliance: Alliance, merchant: AdmittedMerchant, wallet: LocalAccount,
                  coupon_id: int, order_id: str) -> None:
    book = alliance.contracts.coupons
    assert book is not None
    deadline = chain_now(alliance) + 3600
    typed = redeem_coupon_typed_data(
        chain_id=alliance.gateway.chain_id, book=book.address,
        registry=alliance.contracts.deployment.registry, holder=wallet.address,
        coupon_id=coupon_id, acceptor=merchant.merchant_id, order_ref=order_ref(order_id),
        order_amount=3000, nonce=11, deadline=deadline)
    sig = "0x" + bytes(Account.sign_typed_data(wallet.key, full_message=typed).signature).hex()
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=merchant.merchant_id, coupon_id=str(coupon_id),
                       order_id=order_id, order_amount=3000, nonce=11, deadline=deadline,
                       signature=sig)


def coupon_firing(alliance: Alliance, rule_id: int, coupon_id: str) -> str:
    """The cause of the firing whose grant minted ``coupon_id`` (its place in its grant's
    member list is its coupon's place among the coupons that transaction minted)."""
    with alliance.store.read_session() as s:
        for f in s.scalars(select(OfferFiring).where(OfferFiring.rule_id == rule_id)).all():
            op = s.scalar(select(Operation).where(Operation.id == f.operation_id))
            assert op is not None and op.tx_hash is not None and f.grant_index is not None
            minted = coupon_repos.granted_in_tx(s, tx_hash=op.tx_hash,
                                                campaign_id=campaign_of(int(coupon_id)))
            if minted[f.grant_index] == int(coupon_id):
                return f.cause
    raise AssertionError(f"no firing granted {coupon_id}")


def test_spend_rule_fires_on_the_orders_spend_and_a_points_rule_keeps_its_points(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant)
    with alliance.store.session() as s:
        by_spend = offers.create_rule(alliance, s, merchant_id=mid, kind="purchase",
                                      campaign_id=cid, min_spend=200)
        by_points = offers.create_rule(alliance, s, merchant_id=mid, kind="purchase",
                                       campaign_id=cid, min_points=100)
    with pytest.raises(LedgerValidationError), alliance.store.session() as s:
        offers.create_rule(alliance, s, merchant_id=mid, kind="purchase", campaign_id=cid,
                           min_points=1, min_spend=1)
    member = Account.create().address
    # Many points for a small spend (a tier multiplier, a promotion): the spend decides.
    issue_spend(alliance, store_merchant, member, 1000, "sp-199", 199)
    issue_spend(alliance, store_merchant, member, 20, "sp-200", 200)
    issue_spend(alliance, store_merchant, member, 500, "sp-none", None)
    settle(alliance)
    ref = {o: f"order:0x{order_ref(o).hex()}" for o in ("sp-199", "sp-200", "sp-none")}
    assert list(statuses(alliance, by_spend["rule_id"])) == [ref["sp-200"]]
    assert list(statuses(alliance, by_points["rule_id"])) == [ref["sp-199"], ref["sp-none"]]
    assert len(held(alliance, member, cid)) == 3


def test_a_reversed_order_takes_back_its_unused_coupon_and_reports_a_used_one(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant)
    with alliance.store.session() as s:
        rule = offers.create_rule(alliance, s, merchant_id=mid, kind="purchase",
                                  campaign_id=cid, min_spend=200)
    wallet: LocalAccount = Account.create()
    member = wallet.address
    issue_spend(alliance, store_merchant, member, 100, "rv-unused", 300)
    issue_spend(alliance, store_merchant, member, 100, "rv-used", 300)
    issue_spend(alliance, store_merchant, member, 100, "rv-partial", 400)
    settle(alliance)
    coupons_before = {c["coupon_id"] for c in held(alliance, member, cid)}
    assert len(coupons_before) == 3
    ref = {o: f"order:0x{order_ref(o).hex()}" for o in ("rv-unused", "rv-used", "rv-partial")}
    with alliance.store.read_session() as s:
        fs = {f.cause: (f.coupon_id, f.grant_index) for f in s.scalars(select(OfferFiring).where(
            OfferFiring.rule_id == rule["rule_id"])).all()}
    # The member uses the "rv-used" order's coupon before that order is refunded.
    used = next(iter(sorted(coupons_before)))
    assert set(fs) == set(ref.values())
    # One grant for the three orders (one indexer round): each firing knows its place in it.
    assert sorted(fs.values(), key=lambda v: v[1]) == [(None, 0), (None, 1), (None, 2)]
    redeem_coupon(alliance, store_merchant, wallet, int(used), "till-77")
    settle(alliance)
    used_firing = coupon_firing(alliance, rule["rule_id"], used)
    # Reverse all three: the used one's coupon stays; a refund of a quarter of "rv-partial"
    # leaves 300 of its 400 spend, still >= 200: its coupon stays too, unreported.
    for order in ("rv-unused", "rv-used"):
        reverse(alliance, store_merchant, order, 100)
    reverse(alliance, store_merchant, "rv-partial", 25)
    for _ in range(3):
        settle(alliance)
    got = statuses(alliance, rule["rule_id"])
    assert got[ref["rv-partial"]] == "queued"
    assert got[used_firing] == "kept"
    other = ref["rv-unused"] if used_firing == ref["rv-used"] else ref["rv-used"]
    assert got[other] == "revoked"
    left = {c["coupon_id"]: c["status"] for c in held(alliance, member, cid)}
    assert left[used] == "used" and len(left) == 2  # the revoked coupon is burned
    with alliance.store.read_session() as s:
        shown = offers.show_rule(s, merchant_id=mid, rule_id=rule["rule_id"])
        stats = coupon_stats(s, merchant_id=mid, campaign_id=cid)
    assert (shown["fired"], shown["revoked"], shown["kept"]) == (3, 1, 1)
    assert shown["kept_coupons"] == [used]
    assert (stats["granted"], stats["revoked"], stats["redeemed"]) == (3, 1, 1)
    # The rest of "rv-partial" reversed: now under the rule, its coupon goes too.
    reverse(alliance, store_merchant, "rv-partial", 75)
    for _ in range(3):
        settle(alliance)
    assert statuses(alliance, rule["rule_id"])[ref["rv-partial"]] == "revoked"
    assert [c["coupon_id"] for c in held(alliance, member, cid)] == [used]


def test_a_refused_or_failed_grant_is_final_even_after_the_campaign_can_grant_again(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    """Decision: a rule grants when its cause happens or never. A campaign paused then meant
    "no grants now" (its resume does not grant for purchases made meanwhile), and a grant the
    chain refused (here the supply cap, taken by another rule's grant queued alongside) is
    ``failed``, never ``queued`` forever and never retried."""
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        request_create_campaign(alliance, s, merchant_id=mid, kind="fixed_off", value=100,
                                budget=10**9, supply_cap=1)
    settle(alliance)
    with alliance.store.read_session() as s:
        cid = max(c.campaign_id for c in coupon_repos.campaigns(s, issuer=mid))
    with alliance.store.session() as s:
        first = offers.create_rule(alliance, s, merchant_id=mid, kind="purchase",
                                   campaign_id=cid, min_points=10)
        second = offers.create_rule(alliance, s, merchant_id=mid, kind="purchase",
                                    campaign_id=cid, min_points=10)
    member = Account.create().address
    issue(alliance, store_merchant, member, 50, "cap-1")
    settle(alliance)
    cause = f"order:0x{order_ref('cap-1').hex()}"
    assert statuses(alliance, first["rule_id"]) == {cause: "queued"}
    assert statuses(alliance, second["rule_id"]) == {cause: "failed"}
    with alliance.store.read_session() as s:
        shown = offers.show_rule(s, merchant_id=mid, rule_id=second["rule_id"])
        f = s.scalar(select(OfferFiring).where(OfferFiring.rule_id == second["rule_id"]))
        assert f is not None and f.reason == "CouponSupplyCapExceeded"
    assert (shown["fired"], shown["failed"]) == (0, 1)
    # Re-reading every block (a restart) neither retries nor grants again.
    with alliance.store.session() as s:
        cursors.set_cursor(s, CURSOR, alliance.contracts.deployment.block - 1, "")
    settle(alliance)
    assert statuses(alliance, second["rule_id"]) == {cause: "failed"}
    assert len(held(alliance, member, cid)) == 1


def test_purchase_and_referral_rules_on_a_tier_locked_campaign_skip_members_below_the_tier(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    """A rule grants through the same tier gate as a grant by hand: a firing for a member
    below the campaign's tier is ``skipped`` with ``tier-too-low`` and grants nothing."""
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant)
    with alliance.store.session() as s:
        memberships.set_tiers(s, merchant_id=mid,
                              tiers=[memberships.TierDef(1, "silver", 1000, 365, 10_000)])
        memberships.lock_campaign(s, merchant_id=mid, campaign_id=cid, min_level=1)
    silver, plain, invitee = (Account.create().address for _ in range(3))
    issue(alliance, store_merchant, silver, 1500, "warm-up")
    settle(alliance)
    with alliance.store.session() as s:
        rule = offers.create_rule(alliance, s, merchant_id=mid, kind="purchase",
                                  campaign_id=cid, min_points=10)
        referral = offers.create_rule(alliance, s, merchant_id=mid, kind="referral",
                                      campaign_id=cid)
        code = offers.invite_code(alliance, s, merchant_id=mid, member=silver)["code"]
        offers.refer(alliance, s, merchant_id=mid, code=code, member=invitee)
    issue(alliance, store_merchant, silver, 50, "silver-buys")
    issue(alliance, store_merchant, plain, 50, "plain-buys")
    settle(alliance)
    st = statuses(alliance, rule["rule_id"])
    assert st == {f"order:0x{order_ref('silver-buys').hex()}": "queued",
                  f"order:0x{order_ref('plain-buys').hex()}": "skipped"}, st
    # The invitee's first purchase: the invitee is below silver, so the referral firing
    # (both members, together or not at all) is skipped; the purchase firing too.
    issue(alliance, store_merchant, invitee, 20, "invitee-first")
    settle(alliance)
    ((_, members, status),) = firings(alliance, referral["rule_id"])
    assert (members, status) == ([silver, invitee], "skipped")
    with alliance.store.read_session() as s:
        reasons = set(s.scalars(select(OfferFiring.reason).where(
            OfferFiring.status == "skipped")).all())
    assert reasons == {memberships.TIER_TOO_LOW}
    assert held(alliance, plain, cid) == [] and held(alliance, invitee, cid) == []
    assert len(held(alliance, silver, cid)) == 1


def test_a_reversal_a_reorg_undoes_is_taken_back_and_counts_once_when_it_lands_again(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None) -> None:
    """An order of 200 points fires a >= 100 rule; 60 are reversed (140 left: the coupon
    stays). A reorg of depth 1 drops the reversal's block: the offers projection takes back
    what it counted above the common ancestor (0 reversed). The outbox sends the reversal
    again and it lands in a new block: 60 counted, not 120 (which would leave 80 and revoke
    the coupon)."""
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant)
    with alliance.store.session() as s:
        rule = offers.create_rule(alliance, s, merchant_id=mid, kind="purchase",
                                  campaign_id=cid, min_points=100)
    member = Account.create().address
    issue(alliance, store_merchant, member, 200, "rg-1")
    settle(alliance)
    reverse(alliance, store_merchant, "rg-1", 60)
    settle(alliance)
    cause = f"order:0x{order_ref('rg-1').hex()}"

    def firing() -> tuple[str, int]:
        with alliance.store.read_session() as s:
            f = s.scalars(select(OfferFiring).where(
                OfferFiring.rule_id == rule["rule_id"], OfferFiring.cause == cause)).one()
            return f.status, f.reversed_points

    def counted() -> list[tuple[int, int]]:
        with alliance.store.read_session() as s:
            return [(r.points, r.block_number) for r in s.scalars(select(OfferReversal))]

    assert firing() == ("queued", 60)
    gw = alliance.gateway
    top = gw.block_number()
    assert counted() == [(60, top)]  # the reversal is the chain's last block
    gw.rpc("anvil_reorg", [1, []])
    runtime.indexer(alliance).catch_up()
    assert firing() == ("queued", 0) and counted() == []
    for _ in range(3):
        settle(alliance)
    assert firing() == ("queued", 60)
    assert [p for p, _ in counted()] == [60]
    assert len(held(alliance, member, cid)) == 1
