"""The ItemRegistry's operation kinds, sent by the brand's or the merchant's key through the
outbox (see :mod:`ledger.outbox.kinds`): register a product, locations or a batch, activate
items, record custody events, recall, claim and flag.

Custody events of one merchant share a batch key, so events queued by many requests travel in
one ``recordEvents`` transaction (up to the contract's 256); the other kinds go alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..deployment import Contracts
from ..errors import LedgerConfigError, LedgerValidationError
from ..outbox.kinds import Call, OperationKind, hex_bytes, parse_hex
from .clients import BizStep, CustodyEvent, Disposition, ItemRegistryClient

# Gas bounds, above what the contract tests and the benchmark measure (a custody event
# ~7.5k warm / ~12k cold item slot, an activation ~45k with a 17-level proof, a claim ~70k).
GAS_BASE = 60_000
GAS_PER_EVENT = 20_000
GAS_PER_ACTIVATION = 80_000
GAS_REGISTER = 150_000
GAS_CLAIM = 150_000
GAS_RECALL_PER_ENTRY = 40_000
MAX_EVENTS_PER_TX = 256


def _items(contracts: Contracts) -> ItemRegistryClient:
    if contracts.items is None:
        raise LedgerConfigError("this deployment has no ItemRegistry; deploy again")
    return contracts.items


def _int(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise LedgerValidationError(f"{field} must be a non-negative integer", field=field)
    return value


def _words(values: Any, field: str) -> tuple[bytes, ...]:
    return tuple(parse_hex(v, field, size=32) for v in values)


@dataclass(frozen=True)
class EventPayload:
    """One custody event (``record_events``, ``activate``); activation lines also carry the
    item id, the secret hash and the Merkle proof binding them to the event's item key."""

    event: CustodyEvent
    item_id: bytes = b""
    secret_hash: bytes = b""
    proof: tuple[bytes, ...] = ()

    def to_json(self) -> dict[str, Any]:
        e = self.event
        return {"item": e.item, "item_id": hex_bytes(self.item_id),
                "event_hash": hex_bytes(e.event_hash),
                "location": hex_bytes(e.location), "destination": hex_bytes(e.destination),
                "biz_step": int(e.biz_step), "disposition": int(e.disposition),
                "event_time": e.event_time, "secret_hash": hex_bytes(self.secret_hash),
                "proof": [hex_bytes(p) for p in self.proof]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventPayload:
        ev = CustodyEvent(_int(data["item"], "item"),
                          parse_hex(data["event_hash"], "event_hash", size=32),
                          parse_hex(data["location"], "location", size=32),
                          BizStep(int(data["biz_step"])), _int(data["event_time"], "event_time"),
                          Disposition(int(data["disposition"])),
                          parse_hex(data["destination"], "destination", size=32))
        return cls(ev, parse_hex(data["item_id"], "item_id"),
                   parse_hex(data["secret_hash"], "secret_hash"), _words(data["proof"], "proof"))


class RecordEventsKind(OperationKind[EventPayload]):
    """Custody events of one merchant, many per transaction."""

    payload_type = EventPayload

    def batch_key(self, payload: EventPayload, home: str | None) -> Hashable | None:
        return ("items", self.name)

    def gas_bound(self, payloads: Sequence[EventPayload]) -> int:
        per = GAS_PER_ACTIVATION if self.name == "item_activate" else GAS_PER_EVENT
        return GAS_BASE + per * len(payloads)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[EventPayload]) -> Call:
        items = _items(contracts)
        events = [p.event.as_tuple() for p in payloads]
        if self.name == "item_activate":
            data = items.encode("activate", events, [p.item_id for p in payloads],
                                [p.secret_hash for p in payloads],
                                [list(p.proof) for p in payloads])
        else:
            data = items.encode("recordEvents", events)
        return Call(items.address, data)


@dataclass(frozen=True)
class RegistrationPayload:
    """``item_register``: a product, locations or a batch (``what`` says which)."""

    what: str
    merchant_id: int = 0
    gtin: int = 0
    root: bytes = b""
    count: int = 0
    locations: tuple[bytes, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "merchant_id": self.merchant_id, "gtin": self.gtin,
                "root": hex_bytes(self.root), "count": self.count,
                "locations": [hex_bytes(x) for x in self.locations]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegistrationPayload:
        return cls(str(data["what"]), _int(data["merchant_id"], "merchant_id"),
                   _int(data["gtin"], "gtin"), parse_hex(data["root"], "root"),
                   _int(data["count"], "count"), _words(data["locations"], "locations"))


class RegisterKind(OperationKind[RegistrationPayload]):
    payload_type = RegistrationPayload

    def gas_bound(self, payloads: Sequence[RegistrationPayload]) -> int:
        return GAS_REGISTER + sum(30_000 * len(p.locations) for p in payloads)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RegistrationPayload]) -> Call:
        items = _items(contracts)
        (p,) = payloads
        if p.what == "product":
            data = items.encode("registerProduct", p.merchant_id, p.gtin)
        elif p.what == "locations":
            data = items.encode("registerLocations", p.merchant_id, list(p.locations))
        else:
            data = items.encode("registerBatch", p.gtin, p.root, p.count)
        return Call(items.address, data)


@dataclass(frozen=True)
class RecallPayload:
    """``item_recall``: whole batches (chain ids) and single items (keys), one transaction."""

    batch_ids: tuple[int, ...]
    items: tuple[int, ...]
    event_hash: bytes

    def to_json(self) -> dict[str, Any]:
        return {"batch_ids": list(self.batch_ids), "items": list(self.items),
                "event_hash": hex_bytes(self.event_hash)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecallPayload:
        return cls(tuple(_int(b, "batch_ids") for b in data["batch_ids"]),
                   tuple(_int(k, "items") for k in data["items"]),
                   parse_hex(data["event_hash"], "event_hash", size=32))


class RecallKind(OperationKind[RecallPayload]):
    payload_type = RecallPayload

    def gas_bound(self, payloads: Sequence[RecallPayload]) -> int:
        return GAS_BASE + sum(GAS_RECALL_PER_ENTRY * (len(p.batch_ids) + len(p.items))
                              for p in payloads)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RecallPayload]) -> Call:
        items = _items(contracts)
        (p,) = payloads
        return Call(items.address, items.encode("recall", list(p.batch_ids), list(p.items),
                                                p.event_hash))


@dataclass(frozen=True)
class ClaimPayload:
    """``item_claim``: a buyer's signed claim with the label's secret and the proof."""

    item: int
    item_id: bytes
    secret: bytes
    proof: tuple[bytes, ...]
    member: str
    nonce: int
    deadline: int
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"item": self.item, "item_id": hex_bytes(self.item_id),
                "secret": hex_bytes(self.secret),
                "proof": [hex_bytes(p) for p in self.proof], "member": self.member,
                "nonce": self.nonce, "deadline": self.deadline,
                "signature": hex_bytes(self.signature)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClaimPayload:
        return cls(_int(data["item"], "item"), parse_hex(data["item_id"], "item_id", size=32),
                   parse_hex(data["secret"], "secret", size=32), _words(data["proof"], "proof"),
                   str(data["member"]), _int(data["nonce"], "nonce"),
                   _int(data["deadline"], "deadline"), parse_hex(data["signature"], "signature"))


class ClaimKind(OperationKind[ClaimPayload]):
    payload_type = ClaimPayload

    def gas_bound(self, payloads: Sequence[ClaimPayload]) -> int:
        return GAS_CLAIM

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[ClaimPayload]) -> Call:
        items = _items(contracts)
        (p,) = payloads
        return Call(items.address, items.encode("claim", p.item, p.item_id, p.secret,
                                                list(p.proof),
                                                p.member, p.nonce, p.deadline, p.signature))


@dataclass(frozen=True)
class FlagPayload:
    """``item_flag``: a suspected clone (its key), flagged on chain by the item's brand."""

    item: int
    reason: int

    def to_json(self) -> dict[str, Any]:
        return {"item": self.item, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlagPayload:
        return cls(_int(data["item"], "item"), _int(data["reason"], "reason"))


class FlagKind(OperationKind[FlagPayload]):
    payload_type = FlagPayload

    def gas_bound(self, payloads: Sequence[FlagPayload]) -> int:
        return GAS_BASE + 40_000

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[FlagPayload]) -> Call:
        items = _items(contracts)
        (p,) = payloads
        return Call(items.address, items.encode("flag", p.item, p.reason))


REGISTER = RegisterKind("item_register")
ACTIVATE = RecordEventsKind("item_activate")
RECORD_EVENTS = RecordEventsKind("item_record_events")
RECALL = RecallKind("item_recall")
CLAIM = ClaimKind("item_claim")
FLAG = FlagKind("item_flag")
KINDS = (REGISTER, ACTIVATE, RECORD_EVENTS, RECALL, CLAIM, FLAG)
