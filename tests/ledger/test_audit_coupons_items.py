"""The audit of the coupon book and the item registry: the demo's coupons and items audit
clean from the chain alone; every invariant the contracts enforce is still caught if a log
ever said otherwise; a coupon act the clearing books without a coupon is a finding."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from typer.testing import CliRunner

from ledger import runtime
from ledger.alliance import Alliance
from ledger.audit.coupons import CouponsRule
from ledger.audit.engine import AuditReport, run_audit
from ledger.audit.governance import GovernanceRule
from ledger.audit.items import ItemsRule, Step, item_key
from ledger.audit.report import render_html
from ledger.audit.source import ZERO_ADDRESS, Event, Kind
from ledger.cli import app
from ledger.contracts.compiler import Artifact
from ledger.coupons.demo import seed_demo_coupons
from ledger.coupons.service import (
    member_coupons,
    request_grant,
    request_revoke,
    request_rollback,
)
from ledger.demo import seed_demo
from ledger.items import service as items_service
from ledger.items.demo import FACTORY as DEMO_FACTORY
from ledger.items.demo import SHOP as DEMO_SHOP
from ledger.merchants.service import AdmittedMerchant
from tests.conftest import ARTIFACT_CACHE

BOOK, ITEMS, CLEARING = "0x" + "c0" * 20, "0x" + "1e" * 20, "0x" + "c3" * 20
REGISTRY = "0x" + "99" * 20
MEMBER, OTHER = "0x" + "0d" * 20, "0x" + "0e" * 20
REF = "0x" + "01" * 32
GTIN = 9506000134352
ITEM = "0x" + format(GTIN << 160 | 7, "064x")
KEY = item_key(1, 7)  # the registry's key of ITEM: serial 7 of batch 1
ZERO32 = "0x" + "00" * 32
FACTORY, SHOP = "0x" + "fa" * 32, "0x" + "5b" * 32
_log = iter(range(1, 10**6))
# The command compiles (its own Settings()) unless pointed at the session's artifact cache.
CACHED = {"ALLIANCE_ARTIFACTS_DIR": str(ARTIFACT_CACHE)}


def ev(name: str, kind: str, address: str, /, block: int = 10, tx: str | None = None,
       **args: Any) -> Event:
    n = next(_log)
    return Event(name, kind, address, args, block, n, tx or "0x" + format(n, "064x"))


def _gov() -> GovernanceRule:
    gov = GovernanceRule()
    for mid in (1, 2, 3):
        gov.apply(ev("MerchantAdmitted", Kind.REGISTRY, REGISTRY, block=1, merchantId=mid,
                     account="0x" + f"{mid:02x}" * 20, recordHash=REF))
    return gov


def _terms(*, issuer: int = 1, kind: int = 1, value: int = 500, supply_cap: int = 0,
           per_member_cap: int = 0, budget: int = 1000, acceptors: tuple[int, ...] = (2,)
           ) -> tuple[Any, ...]:
    return (issuer, kind, value, 0, 0, 0, 0, 0, supply_cap, per_member_cap, budget, False,
            False, False, list(acceptors))


def _coupons(**terms: Any) -> CouponsRule:
    rule = CouponsRule(_gov())
    rule.apply(ev("CampaignCreated", Kind.COUPONS, BOOK, campaignId=1, issuer=1,
                  terms=_terms(**terms)))
    return rule


def _grant(rule: CouponsRule, serial: int, to: str = MEMBER) -> int:
    coupon = 1 << 72 | serial
    rule.apply(ev("Transfer", Kind.COUPONS, BOOK, **{"from": ZERO_ADDRESS, "to": to,
                                                   "tokenId": coupon}))
    return coupon


def _redeem(rule: CouponsRule, coupon: int, *, acceptor: int = 2, discount: int = 500,
            order: int = 2000, tx: str | None = None, ref: str = REF) -> None:
    rule.apply(ev("CouponRedeemed", Kind.COUPONS, BOOK, tx=tx, couponId=coupon,
                  acceptor=acceptor, holder=MEMBER, orderRef=ref, orderAmount=order,
                  discount=discount))


def codes(rule: CouponsRule | ItemsRule) -> list[str]:
    return [f.code for f in rule.findings]


# ---------------------------------------------------------------------- coupons, made-up logs


def test_a_coupon_redeemed_twice_without_a_rollback_is_a_violation() -> None:
    rule = _coupons()
    coupon = _grant(rule, 1)
    _redeem(rule, coupon, discount=100)
    rule.apply(ev("CouponRedemptionRolledBack", Kind.COUPONS, BOOK, couponId=coupon,
                  acceptor=2, orderRef=REF, discount=100))
    _redeem(rule, coupon, discount=100)
    assert codes(rule) == []
    _redeem(rule, coupon, discount=100)
    assert codes(rule) == ["CouponUsedTwice"]


def test_budget_used_beyond_the_budget_is_a_violation() -> None:
    rule = _coupons(budget=900)
    _redeem(rule, _grant(rule, 1), discount=500)
    _redeem(rule, _grant(rule, 2), discount=500)
    assert codes(rule) == ["BudgetExceeded"]


def test_a_rollback_of_no_live_redemption_or_for_another_amount_is_a_violation() -> None:
    rule = _coupons()
    coupon = _grant(rule, 1)
    rule.apply(ev("CouponRedemptionRolledBack", Kind.COUPONS, BOOK, couponId=coupon,
                  acceptor=2, orderRef=REF, discount=100))
    _redeem(rule, coupon, discount=100)
    rule.apply(ev("CouponRedemptionRolledBack", Kind.COUPONS, BOOK, couponId=coupon,
                  acceptor=2, orderRef=REF, discount=150))
    assert codes(rule) == ["RollbackOfNoRedemption", "RollbackOfNoRedemption"]


def test_caps_acceptors_and_a_discount_above_the_order_are_violations() -> None:
    rule = _coupons(supply_cap=2, per_member_cap=1, acceptors=(2,))
    first = _grant(rule, 1)
    _grant(rule, 2, to=OTHER)
    _grant(rule, 3, to=MEMBER)
    _redeem(rule, first, acceptor=3, discount=10)
    _redeem(rule, _grant(rule, 4, to="0x" + "0f" * 20), discount=600, order=400)
    assert codes(rule) == ["SupplyCapExceeded", "MemberCapExceeded",
                           "CouponUsedAtNonAcceptor", "SupplyCapExceeded",
                           "DiscountExceedsOrder"]


def test_coupon_acts_are_matched_with_the_clearing_in_their_transaction() -> None:
    rule = _coupons()
    tx_a, tx_b, tx_c = ("0x" + c * 64 for c in "abc")
    # Cleared as the book's event calls for: issuer 1 owes acceptor 2 the discount.
    _redeem(rule, _grant(rule, 1), discount=300, tx=tx_a)
    rule.apply(ev("Cleared", Kind.CLEARING, CLEARING, tx=tx_a, period=1, debtor=1, creditor=2,
                  kind=4, points=300, rate=1, value=300))
    # Not cleared at all.
    _redeem(rule, _grant(rule, 2), discount=200, tx=tx_b, ref="0x" + "02" * 32)
    # Booked by the clearing with no coupon behind it.
    rule.apply(ev("Cleared", Kind.CLEARING, CLEARING, tx=tx_c, period=1, debtor=1, creditor=3,
                  kind=4, points=50, rate=1, value=50))
    # A redemption at the issuer itself moves nothing.
    _redeem(rule, _grant(rule, 3), acceptor=1, discount=100, ref="0x" + "03" * 32)
    assert [f.code for f in rule.match_acts(CLEARING)] == ["CouponActNotCleared",
                                                          "CouponActWithoutCoupon"]


def _burn(rule: CouponsRule, coupon: int, *, holder: str = MEMBER, revoke: bool = True,
          revoked_from: str | None = None) -> None:
    tx = "0x" + format(next(_log), "064x")
    rule.apply(ev("Transfer", Kind.COUPONS, BOOK, tx=tx, **{
        "from": holder, "to": ZERO_ADDRESS, "tokenId": coupon}))
    if revoke:
        rule.apply(ev("CouponRevoked", Kind.COUPONS, BOOK, tx=tx, couponId=coupon,
                      holder=revoked_from or holder))


def test_a_revoked_coupon_is_neither_live_nor_used_and_a_revoke_of_a_used_one_is_a_finding(
        ) -> None:
    rule = _coupons()
    kept, taken, used = _grant(rule, 1), _grant(rule, 2), _grant(rule, 3)
    _burn(rule, taken)
    assert codes(rule) == [] and rule.burns_without_revoke() == []
    (campaign,) = rule.section()["campaigns"]
    assert (campaign["granted"], campaign["used"], campaign["revoked"], campaign["live"]) == (
        3, 0, 1, 2)
    # A used coupon revoked: the book refuses it (CouponAlreadyUsed); the audit names it.
    _redeem(rule, used, discount=100)
    _burn(rule, used)
    # Burned with no revoke, revoked from someone else, a revoked coupon used.
    _burn(rule, kept, revoke=False)
    assert [f.code for f in rule.burns_without_revoke()] == ["BurnWithoutRevoke"]
    other = _grant(rule, 4)
    _burn(rule, other, revoked_from=OTHER)
    _redeem(rule, taken, discount=100, ref="0x" + "09" * 32)
    assert codes(rule) == ["UsedCouponRevoked", "RevokeOfUnheldCoupon", "RevokedCouponUsed"]


# ---------------------------------------------------------------------- items, made-up logs


def _items() -> ItemsRule:
    rule = ItemsRule(_gov(), REGISTRY)
    rule.apply(ev("ProductRegistered", Kind.ITEMS, ITEMS, gtin=GTIN, brand=1))
    rule.apply(ev("LocationRegistered", Kind.ITEMS, ITEMS, location=FACTORY, merchantId=1))
    rule.apply(ev("LocationRegistered", Kind.ITEMS, ITEMS, location=SHOP, merchantId=2))
    rule.apply(ev("BatchRegistered", Kind.ITEMS, ITEMS, batchId=1, gtin=GTIN, root=REF,
                  count=20))
    return rule


def _custody(rule: ItemsRule, step: Step, merchant: int, location: str,
             destination: str = ZERO32, item: str = ITEM, key: int = KEY) -> None:
    """A ``CustodyRecorded`` log as the registry writes it: the item's key, and in ``ref``
    the destination (shipping) or the item id the proof bound (commissioning)."""
    ref = item if step == Step.COMMISSIONING else destination
    rule.apply(ev("CustodyRecorded", Kind.ITEMS, ITEMS, item=key, location=location,
                  eventHash=REF, ref=ref,
                  packed=int(step) | 1_700_000_000 << 16 | merchant << 80))


def _sold(rule: ItemsRule) -> None:
    _custody(rule, Step.COMMISSIONING, 1, FACTORY)
    _custody(rule, Step.SHIPPING, 1, FACTORY, SHOP)
    _custody(rule, Step.RECEIVING, 2, SHOP)
    _custody(rule, Step.RETAIL_SELLING, 2, SHOP)


def test_the_epcis_flow_of_an_item_rebuilds_without_findings() -> None:
    rule = _items()
    _sold(rule)
    rule.apply(ev("ItemClaimed", Kind.ITEMS, ITEMS, itemId=ITEM, member=MEMBER))
    assert codes(rule) == []
    it = rule.items[KEY]
    assert (it.status.name, it.custodian, it.holder, it.flags, it.item_id) == (
        "SOLD", 2, 2, 2, ITEM)


def test_an_item_in_transit_is_held_by_the_merchant_it_was_shipped_to() -> None:
    """The registry's holder while in transit is the destination: only it may act next."""
    rule = _items()
    _custody(rule, Step.COMMISSIONING, 1, FACTORY)
    _custody(rule, Step.SHIPPING, 1, FACTORY, SHOP)
    it = rule.items[KEY]
    assert (it.status.name, it.custodian, it.holder) == ("IN_TRANSIT", 1, 2)
    rule.apply(ev("ItemRecalled", Kind.ITEMS, ITEMS, item=KEY, eventHash=REF))
    _custody(rule, Step.RECALLING, 2, SHOP)  # the destination logs it off: allowed
    assert codes(rule) == []
    _custody(rule, Step.RECALLING, 1, FACTORY)  # the shipper no longer holds it
    assert codes(rule) == ["CustodyEventByNonCustodian"]


def test_a_second_claim_or_a_claim_of_an_unsold_item_is_a_violation() -> None:
    rule = _items()
    _custody(rule, Step.COMMISSIONING, 1, FACTORY)
    rule.apply(ev("ItemClaimed", Kind.ITEMS, ITEMS, itemId=ITEM, member=MEMBER))
    rule.apply(ev("ItemClaimed", Kind.ITEMS, ITEMS, itemId=ITEM, member=MEMBER))
    assert codes(rule) == ["ClaimOfUnsoldItem", "ItemClaimedTwice", "ClaimOfUnsoldItem"]


def test_a_sale_of_a_recalled_item_is_a_violation() -> None:
    rule = _items()
    _custody(rule, Step.COMMISSIONING, 1, FACTORY)
    rule.apply(ev("ItemRecalled", Kind.ITEMS, ITEMS, item=KEY, eventHash=REF))
    _custody(rule, Step.RETAIL_SELLING, 1, FACTORY)
    assert codes(rule) == ["SaleOfRecalledItem"]


def test_a_sale_after_its_batch_was_recalled_is_a_violation() -> None:
    rule = _items()
    _custody(rule, Step.COMMISSIONING, 1, FACTORY)
    rule.apply(ev("BatchRecalled", Kind.ITEMS, ITEMS, batchId=1, eventHash=REF))
    _custody(rule, Step.RETAIL_SELLING, 1, FACTORY)
    # The batch of an item is in its key: the logs alone show the sale came after the recall.
    assert codes(rule) == ["SaleOfRecalledItem"]


def test_an_item_of_another_products_batch_or_of_no_serial_is_a_violation() -> None:
    rule = _items()
    other = "0x" + format(4006381333931 << 160 | 7, "064x")
    _custody(rule, Step.COMMISSIONING, 1, FACTORY, item=other)
    rule2 = _items()
    _custody(rule2, Step.COMMISSIONING, 1, FACTORY, key=item_key(1, 20))  # batch of 20
    rule2.apply(ev("ItemFlagged", Kind.ITEMS, ITEMS, item=item_key(9, 0), reason=1))
    assert codes(rule) == ["ItemOfForeignBatch", "ActivationByNonBrand"]
    assert codes(rule2) == ["ItemOfUnknownSerial", "ItemOfUnknownSerial"]


def test_custody_events_from_a_merchant_not_holding_the_item_are_violations() -> None:
    rule = _items()
    _custody(rule, Step.COMMISSIONING, 2, SHOP)
    rule2 = _items()
    _custody(rule2, Step.COMMISSIONING, 1, FACTORY)
    _custody(rule2, Step.RETAIL_SELLING, 2, SHOP)
    _custody(rule2, Step.RECEIVING, 2, SHOP)
    assert codes(rule) == ["ActivationByNonBrand"]
    assert codes(rule2) == ["CustodyEventByNonCustodian", "CustodyEventByNonCustodian",
                            "InvalidCustodyTransition"]


# ---------------------------------------------------------------------- on a real chain


def _audit(alliance: Alliance, artifacts: dict[str, Artifact]) -> AuditReport:
    items = alliance.contracts.items
    assert items is not None
    return run_audit(alliance.gateway, artifacts, registry=alliance.contracts.registry.address,
                     from_block=0, items=items.address)


def test_the_demo_coupons_and_items_audit_clean_and_show_in_the_reports(
        alliance: Alliance, artifacts: dict[str, Artifact]) -> None:
    seed_demo(alliance)
    report = _audit(alliance, artifacts)
    assert [f.as_dict() for f in report.findings] == []
    doc = report.as_dict()
    coupons = doc["sections"]["coupons"]
    assert coupons["campaigns"] and coupons["campaigns"][0]["used"] == 1
    assert coupons["campaigns"][0]["budget_used"] > 0
    items = doc["sections"]["items"]
    assert items["status"].get("sold") == 5 and items["brands"][0]["items"] == 5
    assert {"CampaignCreated", "CouponRedeemed", "CustodyRecorded",
            "BatchRegistered"} <= set(doc["event_counts"])
    html = render_html(report)
    assert "Coupons" in html and "Items" in html


def test_a_coupon_act_booked_without_a_coupon_is_a_violation(
        alliance: Alliance, artifacts: dict[str, Artifact]) -> None:
    """What a bug in the coupon book (or a key standing in for it) could do: the clearing
    accepts the act, the audit names it."""
    seed_demo(alliance)
    book = alliance.contracts.deployment.coupon_book
    clearing = alliance.contracts.clearing
    _send_as(alliance, book, clearing.address,
             clearing.encode("recordCouponRedemption", 1, 2, 777))
    report = _audit(alliance, artifacts)
    assert [f.code for f in report.violations] == ["CouponActWithoutCoupon"]


def _send_as(alliance: Alliance, sender: str, to: str, data: bytes) -> None:
    gw = alliance.gateway
    gw.rpc("anvil_setBalance", [sender, hex(10**18)])
    gw.rpc("anvil_impersonateAccount", [sender])
    try:
        tx = gw.rpc("eth_sendTransaction", [{"from": sender, "to": to, "data": "0x" + data.hex()}])
        receipt = gw.receipt(tx)
        deadline = time.monotonic() + 10
        while receipt is None and time.monotonic() < deadline:
            time.sleep(0.05)
            receipt = gw.receipt(tx)
        assert receipt is not None and receipt["status"] == 1
    finally:
        gw.rpc("anvil_stopImpersonatingAccount", [sender])



def test_the_audit_command_audits_the_items_it_is_pointed_at(
        alliance: Alliance, tmp_path: Path) -> None:
    seed_demo(alliance)
    items = alliance.contracts.items
    assert items is not None
    args = ["audit", "--rpc-url", alliance.gateway.url,
            "--registry", alliance.contracts.registry.address, "--items", items.address,
            "--json", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html")]
    done = CliRunner().invoke(app, args, env=CACHED)
    assert done.exit_code == 0, done.output
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["contracts"]["items"] == items.address.lower()
    assert doc["sections"]["items"]["status"]["sold"] == 5
    # Named wrong (no contract there), the audit cannot run: exit 2.
    wrong = CliRunner().invoke(app, [*args[:5], "--items", "0x" + "42" * 20, *args[7:]],
                               env=CACHED)
    assert wrong.exit_code == 2


def test_a_coupon_used_elsewhere_and_rolled_back_audits_clean(
        alliance: Alliance, artifacts: dict[str, Artifact], store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    """The rollback path the demo does not take: the coupon is free again, its budget given
    back, the clearing's act reversed; the audit has nothing to say."""
    wallet = Account.create()
    seed_demo_coupons(alliance, runtime.outbox_worker(alliance),
                      store=store_merchant.merchant_id, cafe=cafe_merchant.merchant_id,
                      member_ids=[], wallet_key=bytes(wallet.key))
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        (held,) = member_coupons(alliance, s, holder=wallet.address)
    with alliance.store.session() as s:
        request_rollback(alliance, s, merchant_id=cafe_merchant.merchant_id,
                         coupon_id=held["coupon_id"], order_id="demo-CAFE-coupon-1")
    runtime.outbox_worker(alliance).drain()
    report = _audit(alliance, artifacts)
    assert [f.as_dict() for f in report.findings] == []
    (campaign,) = report.as_dict()["sections"]["coupons"]["campaigns"]
    assert (campaign["redeemed"], campaign["rolled_back"], campaign["used"],
            campaign["budget_used"]) == (1, 1, 0, 0)


def test_a_coupon_revoked_by_its_issuer_audits_clean_as_neither_live_nor_used(
        alliance: Alliance, artifacts: dict[str, Artifact], store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    wallet, member = Account.create(), Account.create()
    cid = seed_demo_coupons(alliance, runtime.outbox_worker(alliance),
                            store=store_merchant.merchant_id, cafe=cafe_merchant.merchant_id,
                            member_ids=[], wallet_key=bytes(wallet.key))
    with alliance.store.session() as s:
        request_grant(alliance, s, merchant_id=store_merchant.merchant_id, campaign_id=cid,
                      members=[member.address])
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        (held,) = member_coupons(alliance, s, holder=member.address)
    with alliance.store.session() as s:
        request_revoke(alliance, s, merchant_id=store_merchant.merchant_id,
                       coupon_id=held["coupon_id"])
    runtime.outbox_worker(alliance).drain()
    report = _audit(alliance, artifacts)
    assert [f.as_dict() for f in report.findings] == []
    (campaign,) = report.as_dict()["sections"]["coupons"]["campaigns"]
    assert campaign["revoked"] == 1
    assert campaign["live"] == campaign["granted"] - campaign["used"] - 1
    assert "CouponRevoked" in report.as_dict()["event_counts"]


def test_recalls_of_a_batch_and_of_single_items_audit_clean(
        alliance: Alliance, artifacts: dict[str, Artifact]) -> None:
    """The recall paths the demo does not take (a whole batch with sold items in it, and an
    item never activated): flags and batch state match, and no sale came after a recall."""
    creds = seed_demo(alliance)
    demo_items = creds["items"]
    assert isinstance(demo_items, dict)
    brand = int(str(creds["merchants"][0]["merchant_id"]))  # type: ignore[index]
    with alliance.store.session() as s:
        items_service.recall(alliance, s, merchant_id=brand,
                             batch_ids=[int(demo_items["batch_id"])],
                             codes=[str(demo_items["unsold_labels"][0])])
    runtime.outbox_worker(alliance).drain()
    report = _audit(alliance, artifacts)
    assert [f.as_dict() for f in report.findings] == []
    section = report.as_dict()["sections"]["items"]
    assert len(section["recalled_batches"]) == 1 and section["brands"][0]["sold"] == 5


def test_an_item_in_transit_and_recalled_audits_clean_with_its_destination_as_holder(
        alliance: Alliance, artifacts: dict[str, Artifact]) -> None:
    """The registry keeps one holder per item: while in transit, the merchant it was shipped
    to. The audit's replay agrees with ``item()`` and ``isRecalled()`` on such an item."""
    creds = seed_demo(alliance)
    demo_items = creds["items"]
    assert isinstance(demo_items, dict)
    brand = int(str(creds["merchants"][0]["merchant_id"]))  # type: ignore[index]
    label = str(demo_items["unsold_labels"][0])
    for step, loc, dest in (("commissioning", DEMO_FACTORY, None),
                            ("shipping", DEMO_FACTORY, DEMO_SHOP)):
        with alliance.store.session() as s:
            items_service.record_events(alliance, s, merchant_id=brand, lines=[
                items_service.EventLine(label, step, loc, dest)])
        runtime.outbox_worker(alliance).drain()
        runtime.indexer(alliance).catch_up()
    with alliance.store.session() as s:
        items_service.recall(alliance, s, merchant_id=brand, codes=[label])
    runtime.outbox_worker(alliance).drain()
    report = _audit(alliance, artifacts)
    assert [f.as_dict() for f in report.findings] == []
    assert report.as_dict()["sections"]["items"]["status"].get("in_transit") == 1
