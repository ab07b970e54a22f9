"""The audit of the item registry: products, locations, batches, activations, custody state,
recalls, claims and clone flags rebuilt from the registry's logs, compared with its views.

Invariants: each item is activated once, by its product's brand; every custody event is
recorded by the merchant holding the item (receiving: by the one it was shipped to), in a
step its state allows (the EPCIS flow of the registry); no item is sold while it or its batch
is recalled; an item is claimed at most once, and only once sold; every write comes from the
account of the merchant it names (flags: the brand's or an operator's).

One thing the logs do not carry: which batch proved an item at its activation (the
``CustodyRecorded`` event names the item, not the batch). The audit takes it from the
registry's ``item`` view and checks it is a batch of the item's GTIN by the item's brand; the
batch recall rule is then applied to the sales in log order.
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
    recalled_at: Position | None = None
    sales: list[Position] = field(default_factory=list)


@dataclass
class BatchBook:
    gtin: int
    root: str
    count: int
    brand: int
    recalled_at: Position | None = None


def gtin_of(item_id: str) -> int:
    return int(item_id, 16) >> 160


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
        self.items: dict[str, ItemBook] = {}
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
            it = self.items.setdefault(a["itemId"], ItemBook())
            it.flags |= ITEM_RECALLED
            if it.recalled_at is None:
                it.recalled_at = ev.position
            self.merchant_txs.setdefault(
                ev.tx, (ev.position, self.products.get(gtin_of(a["itemId"]), 0), False))
        elif name == "ItemClaimed":
            it = self.items.setdefault(a["itemId"], ItemBook())
            if it.flags & ITEM_CLAIMED:
                self._violation("ItemClaimedTwice", f"item {a['itemId']} claimed again", ev,
                                item_id=a["itemId"])
            if it.status != Status.SOLD:
                self._violation("ClaimOfUnsoldItem", f"item {a['itemId']} claimed while "
                                f"{it.status.name.lower()}", ev, item_id=a["itemId"])
            it.flags |= ITEM_CLAIMED
        elif name == "ItemFlagged":
            it = self.items.setdefault(a["itemId"], ItemBook())
            it.flags |= ITEM_FLAGGED
            self.flags.append({"item_id": a["itemId"], "reason": a["reason"], "block": ev.block})
            self.merchant_txs.setdefault(
                ev.tx, (ev.position, self.products.get(gtin_of(a["itemId"]), 0), True))

    def _custody(self, ev: Event) -> None:
        a = ev.args
        item_id, packed = a["itemId"], a["packed"]
        step, merchant = Step(packed & 0xFF), packed >> 80
        self.steps[step.name.lower()] += 1
        self.merchant_txs.setdefault(ev.tx, (ev.position, merchant, False))
        it = self.items.setdefault(item_id, ItemBook())
        it.events += 1
        here = self.locations.get(a["location"])
        if here != merchant:
            self._violation("CustodyAtForeignLocation", f"merchant {merchant} recorded "
                            f"{step.name.lower()} of {item_id} at a location of {here}", ev,
                            item_id=item_id)
        if step == Step.COMMISSIONING:
            if it.status != Status.UNKNOWN:
                self._violation("ItemActivatedTwice", f"item {item_id} activated again", ev,
                                item_id=item_id)
            brand = self.products.get(gtin_of(item_id))
            if brand != merchant:
                self._violation("ActivationByNonBrand", f"item {item_id} activated by merchant "
                                f"{merchant}, its product's brand is {brand}", ev,
                                item_id=item_id)
            it.status, it.custodian, it.destination = Status.COMMISSIONED, merchant, 0
            return
        if step == Step.RECEIVING:
            if it.destination != merchant:
                self._violation("CustodyEventByNonCustodian", f"merchant {merchant} received "
                                f"{item_id}, shipped to {it.destination}", ev, item_id=item_id)
        elif it.custodian != merchant:
            self._violation("CustodyEventByNonCustodian", f"merchant {merchant} recorded "
                            f"{step.name.lower()} of {item_id}, held by {it.custodian}", ev,
                            item_id=item_id)
        if step == Step.RECALLING:
            return
        allowed, after = ALLOWED[step]
        if it.status not in allowed:
            self._violation("InvalidCustodyTransition", f"{step.name.lower()} of {item_id} "
                            f"while {it.status.name.lower()}", ev, item_id=item_id)
        if step == Step.RETAIL_SELLING:
            it.sales.append(ev.position)
            if it.recalled_at is not None:
                self._violation("SaleOfRecalledItem", f"item {item_id} sold after its recall "
                                f"at block {it.recalled_at[0]}", ev, item_id=item_id)
        if step == Step.SHIPPING:
            it.destination = self.locations.get(a["destination"], 0)
        elif step == Step.RECEIVING:
            it.custodian, it.destination = merchant, 0
        it.status = after

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
        items = sorted(self.items)
        answers = checks.views([(Kind.ITEMS, address, "item", (bytes.fromhex(i[2:]),))
                                for i in items])
        for item_id, got in zip(items, answers, strict=True):
            it = self.items[item_id]
            have = _one(got)
            want_item = (int(it.status), it.flags, it.custodian, it.destination)
            if isinstance(have, ChainError) or tuple(have[:4]) != want_item:
                mismatch(f"item({item_id}) (status, flags, custodian, destination)", want_item,
                         have)
                continue
            out += self._check_batch(address, item_id, it, int(have[4]))
        return out

    def _check_batch(self, address: str, item_id: str, it: ItemBook, batch_id: int
                     ) -> list[Finding]:
        """The batch the registry says proved an activated item: of its GTIN and brand, and
        no sale after that batch's recall."""
        if it.status == Status.UNKNOWN:
            return []
        b = self.batches.get(batch_id)
        if b is None or b.gtin != gtin_of(item_id) or b.brand != self.products.get(b.gtin):
            return [Finding(NAME, "ItemOfForeignBatch", Severity.VIOLATION,
                            f"item {item_id} proved by batch {batch_id}, not one of its "
                            "product's", contract=address, details={"item_id": item_id})]
        recalled = b.recalled_at
        return [Finding(NAME, "SaleOfRecalledItem", Severity.VIOLATION,
                        f"item {item_id} sold at block {sale[0]} after its batch {batch_id} "
                        f"was recalled at block {recalled[0]}", contract=address,
                        block=sale[0], details={"item_id": item_id})
                for sale in it.sales if recalled is not None and sale > recalled]

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
            for item_id, it in self.items.items():
                if gtin_of(item_id) != gtin or it.status == Status.UNKNOWN:
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

