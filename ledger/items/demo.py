"""The demo brand: the department store registers a tea set and a batch of 20 labelled
items, ships five to the cafe, which sells them; their labels (with secrets) go into the demo
credentials so demo members can scan, verify and claim them (scan to earn 10 store points)."""

from __future__ import annotations

from ..alliance import Alliance
from ..runtime import indexer, outbox_worker
from . import service as items

GTIN = "09506000134352"
FACTORY, SHOP = "urn:epc:id:sgln:9506000.13435.0", "store:cafe:1"


def _settle(alliance: Alliance) -> None:
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()


def seed_items_demo(alliance: Alliance, *, brand_id: int, shop_id: int) -> dict[str, object]:
    """Register the demo brand's batch and sell five of its items; give their labels."""
    items.grant_brand(alliance, merchant_id=brand_id)
    with alliance.store.session() as s:
        items.register_product(alliance, s, merchant_id=brand_id, gtin=GTIN,
                               name="Jade tea set / 青玉茶具", claim_points=10)
        items.register_locations(alliance, s, merchant_id=brand_id, labels=[FACTORY])
        items.register_locations(alliance, s, merchant_id=shop_id, labels=[SHOP])
    _settle(alliance)
    with alliance.store.session() as s:
        batch = items.register_batch(alliance, s, merchant_id=brand_id, gtin=GTIN, count=20,
                                     prefix="JT")
    _settle(alliance)
    with alliance.store.session() as s:
        labels = items.batch_labels(alliance, s, merchant_id=brand_id,
                                    batch_id=batch.batch_id)
    sold = [c.uri() for c in labels[:5]]
    for who, step, loc, dest in ((brand_id, "commissioning", FACTORY, None),
                                 (brand_id, "shipping", FACTORY, SHOP),
                                 (shop_id, "receiving", SHOP, None),
                                 (shop_id, "retail_selling", SHOP, None)):
        with alliance.store.session() as s:
            items.record_events(alliance, s, merchant_id=who, lines=[
                items.EventLine(code, step, loc, dest) for code in sold])
        _settle(alliance)
    return {"batch_id": batch.batch_id, "gtin": GTIN, "sold_labels": sold,
            "unsold_labels": [c.uri() for c in labels[5:8]]}
