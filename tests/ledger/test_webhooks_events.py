"""Which merchant gets which webhook event: the demo (issues, a redemption of store points
at the cafe, a conversion into cinema points, a coupon used across merchants, items), then a
period closed and its statements anchored, each merchant subscribed to everything."""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

from sqlalchemy import select

from ledger.alliance import Alliance
from ledger.clearing import service as clearing
from ledger.clearing.statements import anchor_statements
from ledger.demo import seed_demo
from ledger.indexer import repos as cursors
from ledger.items import service as items_service
from ledger.items.codes import parse_code
from ledger.merchants import repos as merchant_repos
from ledger.runtime import indexer, outbox_worker
from ledger.store.models import WebhookEvent
from ledger.types import MerchantId
from ledger.webhooks import repos
from ledger.webhooks.events import event_id


class Row(NamedTuple):
    id: str
    merchant_id: int
    type: str
    payload: dict[str, Any]
    tx_hash: str
    block_number: int
    log_index: int


def test_each_merchant_gets_the_events_that_concern_it_once_with_stable_ids(
        alliance: Alliance) -> None:
    seed_demo(alliance)
    with alliance.store.read_session() as s:
        merchants = {m.name: MerchantId(m.id) for m in merchant_repos.list_merchants(s)}
    # Registered straight in the store (the URL check resolves names: none resolve offline);
    # nothing is delivered here.
    with alliance.store.session() as s:
        for mid in merchants.values():
            s.add(repos.WebhookEndpoint(
                id=f"wh_{mid:016x}", merchant_id=mid, url="https://hooks.example/a",
                events=["*"], status="active", secret_enc=b"", secret_fingerprint="",
                failures=0))
        # The demo ran the indexer already: the webhook projection reads again from the
        # deployment block (as a store that gains the projection does).
        cursors.set_cursor(s, "webhooks", alliance.contracts.deployment.block - 1, "")
    period = alliance.contracts.clearing.current_period()
    clearing.close_period(alliance)
    anchor_statements(alliance, period=period)
    follower = indexer(alliance)
    follower.catch_up()
    assert follower.catch_up() == 0  # nothing written twice
    with alliance.store.read_session() as s:
        rows = [Row(r.id, r.merchant_id, r.type, dict(r.payload), r.tx_hash, r.block_number,
                    r.log_index)
                for r in s.scalars(select(WebhookEvent).order_by(WebhookEvent.seq))]
    by = {mid: Counter(r.type for r in rows if r.merchant_id == mid)
          for mid in merchants.values()}
    # The demo: store points spent at the cafe, converted into cinema points, a coupon used.
    accepted = [m for m, c in by.items() if c["points.foreign_accepted"]]
    converted = [m for m, c in by.items() if c["points.converted_in"]]
    assert len(accepted) == 1 and by[accepted[0]]["points.foreign_accepted"] == 1, by
    assert len(converted) == 1 and by[converted[0]]["points.converted_in"] == 1, by
    assert accepted != converted
    assert all(c["points.issued"] >= 1 for c in by.values()), by
    assert sum(c["coupons.redeemed"] for c in by.values()) >= 1, by
    for mid in merchants.values():
        assert by[mid]["clearing.period_closed"] == 1
        assert by[mid]["clearing.statement_ready"] == 1
    closes = [r for r in rows if r.type == "clearing.period_closed"]
    assert sum(int(r.payload["net"]) for r in closes) == 0  # positions sum to zero
    assert int(next(r for r in closes if r.merchant_id == accepted[0]).payload["net"]) != 0
    # Ids are stable and in chain order.
    for r in rows:
        assert r.id == event_id(tx_hash=r.tx_hash, log_index=r.log_index,
                                merchant_id=r.merchant_id, type_=r.type)
    order = [(r.block_number, r.log_index) for r in rows]
    assert order == sorted(order)


def test_a_recall_of_an_item_goes_to_the_merchant_holding_it_with_its_id_gtin_and_serial(
        alliance: Alliance) -> None:
    """The registry names a recalled item by its key (batch << 32 | index): the event still
    carries the item's id, GTIN and serial (from the items read model) and reaches the
    merchant holding it (the shop that sold it) as well as its brand."""
    creds = seed_demo(alliance)
    brand = int(str(creds["merchants"][0]["merchant_id"]))  # type: ignore[index]
    shop = int(str(creds["merchants"][2]["merchant_id"]))  # type: ignore[index]
    demo_items = creds["items"]
    assert isinstance(demo_items, dict)
    label = str(demo_items["sold_labels"][0])
    code = parse_code(label)
    with alliance.store.session() as s:
        for mid in (brand, shop):
            s.add(repos.WebhookEndpoint(
                id=f"wh_{mid:016x}", merchant_id=mid, url="https://hooks.example/a",
                events=["items.recalled"], status="active", secret_enc=b"",
                secret_fingerprint="", failures=0))
    with alliance.store.session() as s:
        items_service.recall(alliance, s, merchant_id=brand, codes=[label])
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        rows = [(r.merchant_id, dict(r.payload)) for r in s.scalars(select(WebhookEvent).where(
            WebhookEvent.type == "items.recalled").order_by(WebhookEvent.seq))]
    assert brand != shop
    assert sorted(m for m, _ in rows) == sorted([brand, shop])
    item_id = "0x" + code.item_id.hex()
    for _, body in rows:
        assert (body["item_id"], body["gtin"], body["serial"]) == (
            item_id, code.gtin, code.serial)
        assert str(body["event_hash"]).startswith("0x")
