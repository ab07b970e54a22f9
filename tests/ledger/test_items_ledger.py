"""Items through the service on anvil + SQLite: registration, custody events through the
outbox, the read model the indexer builds, verify without the chain, clone signals, and
scan-to-earn paying once."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema_rs
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.alliance import Alliance
from ledger.errors import (
    ItemCodeError,
    LedgerConflictError,
    LedgerNotFoundError,
    LedgerPermissionError,
)
from ledger.items import repos, scans
from ledger.items import service as items
from ledger.items.codes import ItemCode
from ledger.items.signing import claim_typed_data
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox import repos as outbox_repos
from ledger.outbox.views import get_operation
from ledger.points.reads import balances
from ledger.runtime import indexer, outbox_worker

GTIN = "09506000134352"
EPCIS_SCHEMA = Path(__file__).parent / "fixtures" / "items" / "EPCIS-JSON-Schema.json"


def schema_errors(doc: object) -> list[str]:
    """What GS1's published EPCIS 2.0 JSON schema finds wrong in ``doc``."""
    validator = jsonschema_rs.validator_for(json.loads(EPCIS_SCHEMA.read_text()))
    return [str(e) for e in validator.iter_errors(doc)]
FACTORY, SHOP, CAFE_SHOP = "urn:epc:id:sgln:9506000.13435.0", "store:gpds:1", "store:cafe:1"


@dataclass
class Setup:
    alliance: Alliance
    brand: AdmittedMerchant
    shop: AdmittedMerchant
    labels: list[ItemCode]
    batch_id: int

    def settle(self) -> None:
        outbox_worker(self.alliance).drain()
        indexer(self.alliance).catch_up()

    def events(self, merchant: AdmittedMerchant, *lines: items.EventLine) -> list[str]:
        with self.alliance.store.session() as s:
            views = items.record_events(self.alliance, s, merchant_id=merchant.merchant_id,
                                        lines=list(lines))
        return [v.id for v in views]

    def verify(self, code: ItemCode, **kw: object) -> items.Verdict:
        with self.alliance.store.session() as s:
            return items.verify(s, code=code.uri(), **kw)  # type: ignore[arg-type]

    def sell(self, code: ItemCode) -> None:
        uri = code.uri()
        self.events(self.brand, items.EventLine(uri, "commissioning", FACTORY))
        self.settle()
        self.events(self.brand, items.EventLine(uri, "shipping", FACTORY, destination=SHOP))
        self.settle()
        self.events(self.shop, items.EventLine(uri, "receiving", SHOP))
        self.settle()
        self.events(self.shop, items.EventLine(uri, "retail_selling", SHOP))
        self.settle()

    def claim(self, code: ItemCode, member: LocalAccount, nonce: int = 1) -> str:
        deadline = int(self.alliance.gateway.block("latest")["timestamp"]) + 3600
        assert self.alliance.contracts.items is not None
        typed = claim_typed_data(chain_id=self.alliance.gateway.chain_id,
                                 items=self.alliance.contracts.items.address,
                                 registry=self.alliance.contracts.registry.address,
                                 member=member.address, item_id=code.item_id, nonce=nonce,
                                 deadline=deadline)
        sig = Account.sign_typed_data(member.key, full_message=typed).signature.hex()
        return items.claim(self.alliance, code=code.uri(), member=member.address,
                           nonce=nonce, deadline=deadline, signature=sig).id

    def queued(self) -> int:
        with self.alliance.store.read_session() as s:
            return outbox_repos.count_operations(s)


@pytest.fixture
def setup(alliance: Alliance, store_merchant: AdmittedMerchant,
          cafe_merchant: AdmittedMerchant) -> Setup:
    brand, shop = store_merchant, cafe_merchant
    items.grant_brand(alliance, merchant_id=brand.merchant_id)
    with alliance.store.session() as s:
        items.register_product(alliance, s, merchant_id=brand.merchant_id, gtin=GTIN,
                               name="Jade tea set", claim_points=10)
        items.register_locations(alliance, s, merchant_id=brand.merchant_id, labels=[FACTORY])
        items.register_locations(alliance, s, merchant_id=shop.merchant_id, labels=[SHOP])
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        b = items.register_batch(alliance, s, merchant_id=brand.merchant_id, gtin=GTIN,
                                 count=5, prefix="JT")
    st = Setup(alliance, brand, shop, [], b.batch_id)
    st.settle()
    with alliance.store.session() as s:
        st.labels = items.batch_labels(alliance, s, merchant_id=brand.merchant_id,
                                       batch_id=b.batch_id)
        batch = repos.batch(s, b.batch_id)
        assert batch is not None and batch.chain_batch_id is not None
    return st


def test_a_sold_item_verifies_genuine_with_its_history_from_the_read_model(setup: Setup
                                                                           ) -> None:
    code = setup.labels[0]
    setup.sell(code)
    v = setup.verify(code)
    assert v.verdict == "genuine", v
    assert [h["kind"] for h in v.history] == ["commissioning", "shipping", "receiving",
                                              "retail_selling"]
    assert v.status == "sold" and "正品" in v.message["zh-CN"]


def test_scan_to_earn_pays_the_brands_points_once(setup: Setup) -> None:
    code, buyer = setup.labels[1], Account.create()
    setup.sell(code)
    op = setup.claim(code, buyer)
    setup.settle()  # the claim lands; the projection queues the issue
    setup.settle()  # the issue lands
    assert get_operation(setup.alliance, operation_id=op, merchant_id=None).status == "confirmed"
    (bal,) = balances(setup.alliance, member=buyer.address,
                      merchant_id=setup.brand.merchant_id)
    assert bal.balance == 10
    # A second claim of the same label: refused before anything is queued for the chain,
    # and the item is flagged as a possible clone.
    with pytest.raises(LedgerConflictError) as exc:
        setup.claim(code, Account.create())
    assert exc.value.code == "ItemAlreadyClaimed"
    setup.settle()
    (bal,) = balances(setup.alliance, member=buyer.address,
                      merchant_id=setup.brand.merchant_id)
    assert bal.balance == 10
    v = setup.verify(code)
    assert v.verdict == "suspicious" and "flagged" in v.reasons


def test_a_claim_with_a_wrong_secret_is_refused_and_nothing_is_queued(setup: Setup) -> None:
    code = setup.labels[2]
    setup.sell(code)
    before = setup.queued()
    forged = ItemCode(code.gtin, code.serial, setup.labels[3].secret)
    with pytest.raises(ItemCodeError) as exc:
        setup.claim(forged, Account.create())
    assert exc.value.code == "wrong-secret"
    assert setup.queued() == before


def test_bad_input_is_refused_before_anything_is_queued(setup: Setup) -> None:
    code = setup.labels[0]
    before = setup.queued()
    bad_digit = code.uri().replace("/01/09506000134352/", "/01/09506000134353/")
    with pytest.raises(ItemCodeError) as e1:
        setup.events(setup.brand, items.EventLine(bad_digit, "commissioning", FACTORY))
    assert e1.value.code == "invalid-gtin"
    unknown = ItemCode(4006381333931, "X1").uri()
    with pytest.raises(ItemCodeError) as e2:
        setup.events(setup.brand, items.EventLine(unknown, "commissioning", FACTORY))
    assert e2.value.code == "unknown-gtin"
    with pytest.raises(LedgerPermissionError):  # the shop's location, recorded by the brand
        setup.events(setup.brand, items.EventLine(code.uri(), "commissioning", SHOP))
    with pytest.raises(LedgerConflictError) as e3:  # receiving what was never shipped
        setup.events(setup.shop, items.EventLine(code.uri(), "receiving", SHOP))
    assert e3.value.code == "ItemInvalidTransition"
    with pytest.raises(LedgerNotFoundError):
        setup.events(setup.brand, items.EventLine(ItemCode(9506000134352, "NOPE").uri(),
                                                  "commissioning", FACTORY))
    assert setup.queued() == before


def test_an_out_of_order_event_the_store_did_not_see_fails_on_chain_by_name(setup: Setup
                                                                           ) -> None:
    """The store lags the chain: a step it lets through is still refused by the contract,
    and the operation reports the contract's error."""
    code = setup.labels[0]
    setup.events(setup.brand, items.EventLine(code.uri(), "commissioning", FACTORY))
    setup.settle()
    (op,) = setup.events(setup.brand, items.EventLine(code.uri(), "shipping", FACTORY,
                                                      destination=SHOP))
    # before it lands, the store still says "commissioned": a sale passes the store's check
    (sale,) = setup.events(setup.brand, items.EventLine(code.uri(), "retail_selling", FACTORY))
    setup.settle()
    views = [get_operation(setup.alliance, operation_id=i, merchant_id=None) for i in (op, sale)]
    assert views[0].status == "confirmed"
    assert views[1].status == "failed" and views[1].error_code == "ItemInvalidTransition"


def test_a_code_scanned_too_far_away_too_soon_is_suspicious_and_flagged(setup: Setup) -> None:
    code = setup.labels[4]
    setup.events(setup.brand, items.EventLine(code.uri(), "commissioning", FACTORY))
    setup.settle()
    assert setup.verify(code, lat=31.23, lon=121.47, now=1_800_000_000).verdict == "genuine"
    v = setup.verify(code, lat=39.90, lon=116.40, now=1_800_000_600)  # Beijing 10 min later
    assert v.verdict == "suspicious" and v.reasons == ["impossible-travel"]
    setup.settle()
    with setup.alliance.store.read_session() as s:
        state = repos.state(s, "0x" + code.item_id.hex())
        assert state is not None and state.flagged


def test_clone_signals_hold_for_scans_not_yet_written_and_flag_once_written(setup: Setup
                                                                           ) -> None:
    """The public verify buffers its scan rows (ledger.items.scans): a scan waiting in the
    buffer still counts for the next verify, and the flag goes out with the scans."""
    code, other = setup.labels[4], setup.labels[3]
    for c in (code, other):
        setup.events(setup.brand, items.EventLine(c.uri(), "commissioning", FACTORY))
    setup.settle()
    buf = scans.ScanBuffer(setup.alliance.store, items.write_flag, max_delay_s=3600)

    def verify(c: ItemCode, **kw: object) -> items.Verdict:
        with setup.alliance.store.read_session() as s:
            return items.verify(s, code=c.uri(), scans=buf, **kw)  # type: ignore[arg-type]

    assert verify(code, lat=31.23, lon=121.47, now=1_800_000_000).verdict == "genuine"
    v = verify(code, lat=39.90, lon=116.40, now=1_800_000_600)  # Beijing 10 min later
    assert v.verdict == "suspicious" and v.reasons == ["impossible-travel"]
    for i in range(items.MAX_SCANS_PER_DAY):
        assert verify(other, now=1_800_000_000 + i).verdict == "genuine"
    v = verify(other, now=1_800_000_100)
    assert v.verdict == "suspicious" and v.reasons == ["too-many-scans"]
    with setup.alliance.store.read_session() as s:
        assert repos.count_scans(s, "0x" + code.item_id.hex(), 0) == 0  # nothing written yet
    buf.close()  # a clean shutdown writes them, and queues the flags
    setup.settle()
    with setup.alliance.store.read_session() as s:
        assert repos.count_scans(s, "0x" + code.item_id.hex(), 0) == 2
        assert repos.count_scans(s, "0x" + other.item_id.hex(), 0) == (
            items.MAX_SCANS_PER_DAY + 1)
        for c in (code, other):
            state = repos.state(s, "0x" + c.item_id.hex())
            assert state is not None and state.flagged
    # written, they count from the store as before
    assert verify(code, lat=39.90, lon=116.40, now=1_800_000_700).verdict == "suspicious"
    buf.close()


def test_an_unknown_code_is_unknown(setup: Setup) -> None:
    v = setup.verify(ItemCode(9506000134352, "NOT-OURS"))
    assert v.verdict == "unknown" and v.message["en"].startswith("Unknown")


def test_recall_of_the_batch_stops_sales_and_shows_in_verify(setup: Setup) -> None:
    code = setup.labels[3]
    setup.events(setup.brand, items.EventLine(code.uri(), "commissioning", FACTORY))
    setup.settle()
    with setup.alliance.store.session() as s:
        items.recall(setup.alliance, s, merchant_id=setup.brand.merchant_id,
                     batch_ids=[setup.batch_id])
    setup.settle()
    v = setup.verify(code)
    assert v.recalled and "召回" in v.message["zh-CN"]
    with pytest.raises(LedgerConflictError) as exc:
        setup.events(setup.brand, items.EventLine(code.uri(), "retail_selling", FACTORY))
    assert exc.value.code == "ItemUnderRecall"


def test_the_epcis_export_holds_the_events_whose_hashes_are_on_chain(setup: Setup) -> None:
    from ledger.items import epcis

    code = setup.labels[0]
    setup.sell(code)
    with setup.alliance.store.read_session() as s:
        doc = items.epcis_export(s, code=code.uri())
        hist = items.item_history(s, code=code.uri())
    events = doc["epcisBody"]["eventList"]
    assert [e["bizStep"] for e in events] == ["commissioning", "shipping", "receiving",
                                              "retail_selling"]
    assert schema_errors(doc) == []
    assert ["0x" + epcis.event_hash(e).hex() for e in events] == [h["event_hash"]
                                                                 for h in hist]


def test_the_demo_brand_has_sold_items_that_verify_genuine(alliance: Alliance,
                                                           store_merchant: AdmittedMerchant,
                                                           cafe_merchant: AdmittedMerchant
                                                           ) -> None:
    from ledger.items.demo import seed_items_demo

    out = seed_items_demo(alliance, brand_id=store_merchant.merchant_id,
                          shop_id=cafe_merchant.merchant_id)
    sold = out["sold_labels"]
    assert isinstance(sold, list) and len(sold) == 5
    with alliance.store.session() as s:
        v = items.verify(s, code=sold[0])
    assert v.verdict == "genuine" and v.status == "sold"


def test_a_deployment_recorded_before_items_gets_its_item_registry(settings: object) -> None:
    import json

    from ledger.deployment import deployment_path
    from ledger.settings import Settings

    assert isinstance(settings, Settings)
    first = Alliance.open(settings)
    first.close()
    path = deployment_path(settings)
    old = json.loads(path.read_text())
    del old["items"]
    path.write_text(json.dumps(old))
    again = Alliance.open(settings)
    try:
        assert again.contracts.items is not None
        assert len(again.gateway.code(again.contracts.items.address)) > 0
        assert json.loads(path.read_text())["items"] == again.contracts.items.address
    finally:
        again.close()


def test_a_recall_reaches_each_item_its_holder_and_its_claimer_with_the_reason(setup: Setup
                                                                             ) -> None:
    """A batch recall lands in the read model per item: verify and the member's items say
    recalled with the brand's reason in English and Chinese, and one recall row per item
    names the merchant holding it then (what a webhook to merchants derives from)."""
    from sqlalchemy import select

    sold, stocked, buyer = setup.labels[2], setup.labels[3], Account.create()
    setup.sell(sold)
    setup.claim(sold, buyer)
    setup.events(setup.brand, items.EventLine(stocked.uri(), "commissioning", FACTORY))
    setup.settle()
    setup.events(setup.brand, items.EventLine(stocked.uri(), "shipping", FACTORY,
                                              destination=SHOP))
    setup.settle()
    with setup.alliance.store.session() as s:
        items.recall(setup.alliance, s, merchant_id=setup.brand.merchant_id,
                     batch_ids=[setup.batch_id], reason="Glaze may contain lead",
                     reason_zh="釉料可能含铅")
    setup.settle()
    v = setup.verify(sold)
    assert v.recalled and v.recall_reason == {"en": "Glaze may contain lead",
                                              "zh-CN": "釉料可能含铅"}
    assert "釉料可能含铅" in v.message["zh-CN"] and "Glaze may contain lead" in v.message["en"]
    with setup.alliance.store.read_session() as s:
        mine = items.member_items(setup.alliance, s, holder=buyer.address.lower())
        by_serial = {r.item_id: (r.merchant_id, r.status, r.claimed_by)
                     for r in s.scalars(select(repos.ItemRecall))}
    assert [(m["serial"], m["product"], m["status"], m["recalled"]) for m in mine] == [
        (sold.serial, "Jade tea set", "sold", True)]
    assert mine[0]["recall_reason"]["zh-CN"] == "釉料可能含铅" and mine[0]["claimed_at"]
    assert by_serial == {
        "0x" + sold.item_id.hex(): (setup.shop.merchant_id, "sold", buyer.address),
        "0x" + stocked.item_id.hex(): (setup.shop.merchant_id, "in_transit", None)}


def test_a_recall_of_one_serial_is_shown_for_that_serial_only(setup: Setup) -> None:
    one, other = setup.labels[0], setup.labels[1]
    for code in (one, other):
        setup.events(setup.brand, items.EventLine(code.uri(), "commissioning", FACTORY))
    setup.settle()
    with setup.alliance.store.session() as s:
        items.recall(setup.alliance, s, merchant_id=setup.brand.merchant_id,
                     codes=[one.uri()], reason="Cracked lid")
    setup.settle()
    v = setup.verify(one)
    assert v.recalled and v.recall_reason == {"en": "Cracked lid", "zh-CN": "Cracked lid"}
    assert "已召回" in v.message["zh-CN"]
    assert not setup.verify(other).recalled
    with pytest.raises(LedgerConflictError) as exc:
        setup.events(setup.brand, items.EventLine(one.uri(), "retail_selling", FACTORY))
    assert exc.value.code == "ItemUnderRecall"


def test_a_claim_deadline_is_judged_by_chain_time_not_the_wall_clock(setup: Setup) -> None:
    """The chain's clock runs two days ahead of this machine: a deadline one hour ahead of
    the wall clock has passed for the contract, so it is refused before anything is queued
    (it used to be checked against the wall clock and failed on chain)."""
    from ledger.errors import LedgerSignatureError

    code, buyer = setup.labels[1], Account.create()
    setup.sell(code)
    setup.alliance.gateway.rpc("evm_increaseTime", [2 * 86400])
    setup.alliance.gateway.rpc("evm_mine", [])
    assert setup.alliance.contracts.items is not None
    before = setup.queued()
    for deadline, why in ((int(time.time()) + 3600, "deadline-passed"),
                          (chain_now(setup) + 8 * 86400, "deadline-too-far")):
        typed = claim_typed_data(chain_id=setup.alliance.gateway.chain_id,
                                 items=setup.alliance.contracts.items.address,
                                 registry=setup.alliance.contracts.registry.address,
                                 member=buyer.address, item_id=code.item_id, nonce=1,
                                 deadline=deadline)
        sig = Account.sign_typed_data(buyer.key, full_message=typed).signature.hex()
        with pytest.raises(LedgerSignatureError) as exc:
            items.claim(setup.alliance, code=code.uri(), member=buyer.address, nonce=1,
                        deadline=deadline, signature=sig)
        assert exc.value.code == why
    assert setup.queued() == before


def test_a_used_claim_nonce_is_refused_before_anything_is_queued(setup: Setup) -> None:
    from ledger.errors import LedgerSignatureError

    first, second, buyer = setup.labels[0], setup.labels[1], Account.create()
    setup.sell(first)
    setup.sell(second)
    setup.claim(first, buyer, nonce=7)
    setup.settle()
    before = setup.queued()
    with pytest.raises(LedgerSignatureError) as exc:
        setup.claim(second, buyer, nonce=7)
    assert exc.value.code == "nonce-used"
    assert setup.queued() == before


def chain_now(setup: Setup) -> int:
    return int(setup.alliance.gateway.block("latest")["timestamp"])
