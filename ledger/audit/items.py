"""The audit of the item registry: products, locations, batches, activations, custody state,
recalls, claims and clone flags rebuilt from the registry's logs, compared with its views.

Invariants: each item is activated once, by its product's brand; every custody event is
recorded by the merchant holding the item (receiving: by the one it was shipped to), in a
step its state allows (the EPCIS flow of the registry); no item is sold while it or its batch
is recalled; an item is claimed at most once, and only once sold; every write comes from the
account of the merchant it names (flags: the brand's or an operator's).

On chain an item is addressed by its key ``batchId << 32 | index``: the batch that proved it
is in the key itself, and its activation (the commissioning ``CustodyRecorded``) carries, in
``ref``, the item id (``gtin << 160 | serial``) its proof bound to the key. The audit keys items
by that key, checks the key names a serial of a registered batch of the item's GTIN by its
brand, and applies the batch recall rule to the sales in log order. Claims name the item id,
which the activation maps back to its key. The registry's ``item`` view gives one holder: the
custodian, or while in transit the merchant it was shipped to.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ..errors import ChainError
from .governance import OPERATOR_ROLE, GovernanceRule
from .model import Checks, Finding, Severity
from .source import Event, Kind

NAME = "items"
ITEM_RECALLED, ITEM_CLAIMED, ITEM_FLAGGED = 1, 2, 4

Position = tuple[int, int]


class Status(IntEnum):
    UNKNOWN = 0
    COMMISSIONED = 1
    IN_TRANSIT = 2
    IN_STOCK = 3
    SOLD = 4
    DESTROYED = 5


class Step(IntEnum):
    COMMISSIONING = 0
    SHIPPING = 1
    RECEIVING = 2
    RETAIL_SELLING = 3
    RETURNING = 4
    RECALLING = 5
    DESTROYING = 6


# What each step may follow, and what it leaves (None: unchanged).
_FROM_HELD = frozenset({Status.COMMISSIONED, Status.IN_STOCK})
ALLOWED = {Step.SHIPPING: (_FROM_HELD, Status.IN_TRANSIT),
           Step.RECEIVING: (frozenset({Status.IN_TRANSIT}), Status.IN_STOCK),
           Step.RETAIL_SELLING: (_FROM_HELD, Status.SOLD),
           Step.RETURNING: (frozenset({Status.SOLD}), Status.IN_STOCK),
           Step.DESTROYING: (_FROM_HELD, Status.DESTROYED)}


@dataclass
class ItemBook:
    status: Status = Status.UNKNOWN
    flags: int = 0
    custodian: int = 0
    destination: int = 0
    events: int = 0
    item_id: str | None = None
    recalled_at: Position | None = None
    sales: list[Position] = field(default_factory=list)

    @property
    def holder(self) -> int:
        """Who may act on it next, as the registry keeps it: in transit, its destination."""
        return self.destination if self.status == Status.IN_TRANSIT else self.custodian


@dataclass
class BatchBook:
    gtin: int
    root: str
    count: int
    brand: int
    recalled_at: Position | None = None


def gtin_of(item_id: str) -> int:
    return int(item_id, 16) >> 160


def item_key(batch_id: int, index: int) -> int:
    """The registry's key of the serial at ``index`` of batch ``batch_id``."""
    return batch_id << 32 | index


def split_key(key: int) -> tuple[int, int]:
    return key >> 32, key & 0xFFFFFFFF


class ItemsRule:
    """The alliance's item registry."""

    name = NAME
    events = frozenset((Kind.ITEMS, e) for e in (
        "ProductRegistered", "LocationRegistered", "BatchRegistered", "CustodyRecorded",
        "BatchRecalled", "ItemRecalled", "ItemClaimed", "ItemFlagged"))

    def __init__(self, governance: GovernanceRule, registry: str) -> None:
        self.governance = governance
        self.registry = registry
        self.products: dict[int, int] = {}
        self.locations: dict[str, int] = {}
        self.batches: dict[int, BatchBook] = {}
        self.items: dict[int, ItemBook] = {}
        self.keys: dict[str, int] = {}  # item id -> key, from activations
        self.findings: list[Finding] = []
        self.steps: Counter[str] = Counter()
        self.flags: list[dict[str, Any]] = []
        # Writes a merchant's account must have sent: tx -> (position, merchant, operator may).
        self.merchant_txs: dict[str, tuple[Position, int, bool]] = {}

    def apply(self, ev: Event) -> None:
        a = ev.args
        name = ev.name
        if name == "CustodyRecorded":
            self._custody(ev)
        elif name == "ProductRegistered":
            if a["gtin"] in self.products:
                self._violation("ProductRegisteredTwice", f"GTIN {a['gtin']} registered again",
                                ev)
            self.products[a["gtin"]] = a["brand"]
            self.merchant_txs.setdefault(ev.tx, (ev.position, a["brand"], False))
        elif name == "LocationRegistered":
            if a["location"] in self.locations:
                self._violation("LocationRegisteredTwice", f"location {a['location']} "
                                "registered again", ev)
            self.locations[a["location"]] = a["merchantId"]
            self.merchant_txs.setdefault(ev.tx, (ev.position, a["merchantId"], False))
        elif name == "BatchRegistered":
            brand = self.products.get(a["gtin"], 0)
            if not brand:
                self._violation("BatchOfUnknownProduct", f"batch {a['batchId']} of GTIN "
                                f"{a['gtin']}, which no brand registered", ev)
            self.batches[a["batchId"]] = BatchBook(a["gtin"], a["root"], a["count"], brand)
            self.merchant_txs.setdefault(ev.tx, (ev.position, brand, False))
        elif name == "BatchRecalled":
            b = self.batches.get(a["batchId"])
            if b is None:
                self._violation("RecallOfUnknownBatch", f"batch {a['batchId']} recalled, never "
                                "registered", ev)
                return
            if b.recalled_at is None:
                b.recalled_at = ev.position
            self.merchant_txs.setdefault(ev.tx, (ev.position, b.brand, False))
        elif name == "ItemRecalled":
            key = a["item"]
            it = self._item(key, ev)
            it.flags |= ITEM_RECALLED
            if it.recalled_at is None:
                it.recalled_at = ev.position
            self.merchant_txs.setdefault(ev.tx, (ev.position, self._brand_of(key), False))
        elif name == "ItemClaimed":
            item_id = a["itemId"]
            claimed = self.keys.get(item_id)
            if claimed is None:
                self._violation("ClaimOfUnsoldItem", f"item {item_id} claimed, never "
                                "activated", ev, item_id=item_id)
                return
            it = self.items[claimed]
            if it.flags & ITEM_CLAIMED:
                self._violation("ItemClaimedTwice", f"item {item_id} claimed again", ev,
                                item_id=item_id)
            if it.status != Status.SOLD:
                self._violation("ClaimOfUnsoldItem", f"item {item_id} claimed while "
                                f"{it.status.name.lower()}", ev, item_id=item_id)
            it.flags |= ITEM_CLAIMED
        elif name == "ItemFlagged":
            key = a["item"]
            it = self._item(key, ev)
            it.flags |= ITEM_FLAGGED
            self.flags.append({"item": key, "item_id": it.item_id, "reason": a["reason"],
                               "block": ev.block})
            self.merchant_txs.setdefault(ev.tx, (ev.position, self._brand_of(key), True))

    def _brand_of(self, key: int) -> int:
        b = self.batches.get(split_key(key)[0])
        return 0 if b is None else b.brand

    def _item(self, key: int, ev: Event) -> ItemBook:
        """The book of item ``key``; a key naming no serial of a registered batch (the
        registry refuses any act on it) is a violation, once."""
        it = self.items.get(key)
        if it is None:
            it = self.items[key] = ItemBook()
            batch_id, index = split_key(key)
            b = self.batches.get(batch_id)
            if b is None or index >= b.count:
                self._violation("ItemOfUnknownSerial", f"item key {key:#x} names no serial of "
                                "a registered batch", ev, item=key)
        return it

    def _name(self, key: int) -> str:
        it = self.items.get(key)
        return it.item_id if it is not None and it.item_id else f"key {key:#x}"

    def _custody(self, ev: Event) -> None:
        a = ev.args
        key, packed = a["item"], a["packed"]
        step, merchant = Step(packed & 0xFF), packed >> 80
        self.steps[step.name.lower()] += 1
        self.merchant_txs.setdefault(ev.tx, (ev.position, merchant, False))
        it = self._item(key, ev)
        it.events += 1
        if step == Step.COMMISSIONING:
            self._activation(ev, key, it, merchant)
            return
        name = self._name(key)
        here = self.locations.get(a["location"])
        if here != merchant:
            self._violation("CustodyAtForeignLocation", f"merchant {merchant} recorded "
                            f"{step.name.lower()} of {name} at a location of {here}", ev,
                            item_id=name)
        if step == Step.RECEIVING:
            if it.destination != merchant:
                self._violation("CustodyEventByNonCustodian", f"merchant {merchant} received "
                                f"{name}, shipped to {it.destination}", ev, item_id=name)
        elif it.holder != merchant:
            self._violation("CustodyEventByNonCustodian", f"merchant {merchant} recorded "
                            f"{step.name.lower()} of {name}, held by {it.holder}", ev,
                            item_id=name)
        if step == Step.RECALLING:
            return
        allowed, after = ALLOWED[step]
        if it.status not in allowed:
            self._violation("InvalidCustodyTransition", f"{step.name.lower()} of {name} "
                            f"while {it.status.name.lower()}", ev, item_id=name)
        if step == Step.RETAIL_SELLING:
            it.sales.append(ev.position)
            b = self.batches.get(split_key(key)[0])
            if it.recalled_at is not None:
                self._violation("SaleOfRecalledItem", f"item {name} sold after its recall "
                                f"at block {it.recalled_at[0]}", ev, item_id=name)
            elif b is not None and b.recalled_at is not None:
                self._violation("SaleOfRecalledItem", f"item {name} sold after its batch "
                                f"{split_key(key)[0]} was recalled at block "
                                f"{b.recalled_at[0]}", ev, item_id=name)
        if step == Step.SHIPPING:
            # ``ref`` of a shipping event: the destination location.
            it.destination = self.locations.get(a["ref"], 0)
        elif step == Step.RECEIVING:
            it.custodian, it.destination = merchant, 0
        it.status = after

    def _activation(self, ev: Event, key: int, it: ItemBook, merchant: int) -> None:
        """Commissioning: ``ref`` is the item id the proof bound to the key, of the key's
        batch's GTIN, activated once, by that product's brand at one of its locations."""
        a = ev.args
        item_id = a["ref"]
        here = self.locations.get(a["location"])
        if here != merchant:
            self._violation("CustodyAtForeignLocation", f"merchant {merchant} recorded "
                            f"commissioning of {item_id} at a location of {here}", ev,
                            item_id=item_id)
        if it.status != Status.UNKNOWN:
            self._violation("ItemActivatedTwice", f"item {item_id} activated again", ev,
                            item_id=item_id)
        elif item_id in self.keys and self.keys[item_id] != key:
            self._violation("ItemActivatedTwice", f"item {item_id} activated again under "
                            f"key {key:#x}", ev, item_id=item_id)
        batch_id = split_key(key)[0]
        b = self.batches.get(batch_id)
        if b is not None and b.gtin != gtin_of(item_id):
            self._violation("ItemOfForeignBatch", f"item {item_id} proved by batch "
                            f"{batch_id}, not one of its product's", ev, item_id=item_id)
        brand = self.products.get(gtin_of(item_id))
        if brand != merchant:
            self._violation("ActivationByNonBrand", f"item {item_id} activated by merchant "
                            f"{merchant}, its product's brand is {brand}", ev,
                            item_id=item_id)
        self.keys.setdefault(item_id, key)
        it.item_id = it.item_id or item_id
        it.status, it.custodian, it.destination = Status.COMMISSIONED, merchant, 0

    def _violation(self, code: str, message: str, ev: Event, **details: Any) -> None:
        self.findings.append(Finding(NAME, code, Severity.VIOLATION, message,
                                     contract=ev.address, block=ev.block, tx=ev.tx,
                                     details=details))

    # ------------------------------------------------------------------ check

    def check(self, checks: Checks) -> list[Finding]:
        out = list(self.findings)
        address = checks.addresses.items
        if address is None:
            return out
        out += self._check_views(checks, address)
        out += self._check_senders(checks, address)
        return out

    def _check_views(self, checks: Checks, address: str) -> list[Finding]:
        out: list[Finding] = []

        def mismatch(what: str, want: Any, got: Any) -> None:
            out.append(Finding(NAME, "ViewMismatch", Severity.VIOLATION,
                               f"{what}: the logs give {want}, the item registry says {got}",
                               contract=address, details={"view": what}))

        gtins = sorted(self.products)
        for g, got in zip(gtins, checks.views([(Kind.ITEMS, address, "productBrand", (g,))
                                               for g in gtins]), strict=True):
            if _one(got) != self.products[g]:
                mismatch(f"productBrand({g})", self.products[g], _one(got))
        locs = sorted(self.locations)
        for loc, got in zip(locs, checks.views([(Kind.ITEMS, address, "locationOwner",
                                                 (bytes.fromhex(loc[2:]),)) for loc in locs]),
                            strict=True):
            if _one(got) != self.locations[loc]:
                mismatch(f"locationOwner({loc})", self.locations[loc], _one(got))
        ids = sorted(self.batches)
        for bid, got in zip(ids, checks.views([(Kind.ITEMS, address, "batch", (bid,))
                                               for bid in ids]), strict=True):
            b = self.batches[bid]
            want = (b.root, b.gtin, b.brand, b.count, b.recalled_at is not None)
            have = _one(got)
            if isinstance(have, ChainError) or tuple(have) != want:
                mismatch(f"batch({bid})", want, have)
        keys = sorted(self.items)
        answers = checks.views([(Kind.ITEMS, address, "item", (k,)) for k in keys])
        recalls = checks.views([(Kind.ITEMS, address, "isRecalled", (k,)) for k in keys])
        for key, got, recalled in zip(keys, answers, recalls, strict=True):
            it = self.items[key]
            name = self._name(key)
            have = _one(got)
            want_item = (int(it.status), it.flags, it.holder)
            if isinstance(have, ChainError) or tuple(have[:3]) != want_item:
                mismatch(f"item({name}) (status, flags, holder)", want_item, have)
            kb = self.batches.get(split_key(key)[0])
            want_recalled = bool(it.flags & ITEM_RECALLED) or bool(
                kb is not None and kb.recalled_at is not None)
            if _one(recalled) != want_recalled:
                mismatch(f"isRecalled({name})", want_recalled, _one(recalled))
        return out

    def _check_senders(self, checks: Checks, address: str) -> list[Finding]:
        senders = checks.senders(sorted(self.merchant_txs))
        out = []
        for tx, (pos, merchant, operator_ok) in sorted(self.merchant_txs.items()):
            account = self.governance.account_of(merchant, pos)
            sender = senders.get(tx)
            if sender is not None and account is not None and sender == account.lower():
                continue
            if operator_ok and sender is not None and self.governance.holds(
                    self.registry, OPERATOR_ROLE, sender, pos):
                continue
            out.append(Finding(NAME, "WriteByNonMerchant", Severity.VIOLATION,
                               f"an item write of merchant {merchant} sent by {sender}, while "
                               f"it signed with {account}", contract=address, block=pos[0],
                               tx=tx))
        return out

    def section(self) -> dict[str, Any]:
        status = Counter(it.status.name.lower() for it in self.items.values()
                         if it.status != Status.UNKNOWN)
        by_brand: dict[int, dict[str, int]] = {}
        for gtin, brand in self.products.items():
            row = by_brand.setdefault(brand, {"brand": brand, "products": 0, "batches": 0,
                                              "items": 0, "sold": 0, "recalled": 0,
                                              "claimed": 0, "flagged": 0})
            row["products"] += 1
            row["batches"] += sum(1 for b in self.batches.values() if b.gtin == gtin)
            for it in self.items.values():
                if it.item_id is None or gtin_of(it.item_id) != gtin:
                    continue
                row["items"] += 1
                row["sold"] += it.status == Status.SOLD
                row["recalled"] += bool(it.flags & ITEM_RECALLED)
                row["claimed"] += bool(it.flags & ITEM_CLAIMED)
                row["flagged"] += bool(it.flags & ITEM_FLAGGED)
        return {"brands": [by_brand[b] for b in sorted(by_brand)],
                "status": dict(sorted(status.items())), "steps": dict(sorted(self.steps.items())),
                "recalled_batches": sorted(i for i, b in self.batches.items() if b.recalled_at),
                "flags": self.flags[:200]}


def _one(x: tuple[Any, ...] | ChainError) -> Any:
    if isinstance(x, ChainError):
        return x
    return x[0] if len(x) == 1 else x

