"""What the API and the CLI call for items: register products, locations and batches, record
custody events, recall, claim (scan to earn), verify a scanned code, history, labels.

Writes queue outbox operations (the chain decides; the indexer's projection builds the read
model); reads — verify above all — touch only the store, never the chain. Bad input is refused
before anything is queued wherever the store can tell (bad GTIN, unknown product or serial,
a location of another merchant, a wrong label secret, a step the indexed state cannot take, a
replayed claim); what only the chain can judge fails the operation with the contract's error.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import segno
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from sqlalchemy.orm import Session

from .. import governance
from ..alliance import Alliance
from ..errors import (
    ItemCodeError,
    LedgerConflictError,
    LedgerNotFoundError,
    LedgerPermissionError,
    LedgerSignatureError,
    LedgerValidationError,
)
from ..merchants.service import require_merchant
from ..outbox import repos as outbox
from ..outbox.views import OperationView, operation_view
from ..signing import MAX_DEADLINE_AHEAD_S
from ..store.db import Store
from . import epcis, kinds, repos
from . import scans as scans_
from .clients import (
    BRAND_ROLE,
    DEFAULT_DISPOSITION,
    BizStep,
    CustodyEvent,
    Disposition,
    ItemStatus,
    item_key,
    location_id,
)
from .codes import (
    ItemCode,
    check_serial,
    item_id,
    parse_code,
    parse_gtin,
    secret_hash,
    secret_word,
    split_item_id,
)
from .kinds import ClaimPayload, EventPayload, FlagPayload, RecallPayload, RegistrationPayload
from .merkle import StandardMerkleTree, leaf_hash
from .signing import claim_typed_data

MAX_BATCH_SERIALS = 100_000
MAX_EVENTS_PER_REQUEST = 256
# Clone detection: more scans of one code in a day than a genuine item plausibly sees, and
# two scans farther apart than an airliner covers in the time between.
MAX_SCANS_PER_DAY = 20
MAX_SPEED_KMH = 900.0
# Reasons of on-chain flags (ItemFlagged.reason).
REASON_CLAIMED_TWICE, REASON_IMPOSSIBLE_TRAVEL, REASON_TOO_MANY_SCANS = 1, 2, 3
REASONS = {REASON_CLAIMED_TWICE: "claimed-twice", REASON_IMPOSSIBLE_TRAVEL: "impossible-travel",
           REASON_TOO_MANY_SCANS: "too-many-scans"}

MESSAGES: dict[str, dict[str, str]] = {
    "genuine": {"en": "Genuine: this code was registered by its brand.",
                "zh-CN": "正品：此编码由品牌方登记。"},
    "unknown": {"en": "Unknown: no brand of the alliance registered this code.",
                "zh-CN": "未知：联盟中没有品牌登记过此编码。"},
    "not-activated": {"en": "Suspicious: this code was never put into circulation.",
                      "zh-CN": "可疑：此编码从未投入流通。"},
    "secret-mismatch": {"en": "Suspicious: the label's secret does not match this code.",
                        "zh-CN": "可疑：标签密钥与此编码不符。"},
    "flagged": {"en": "Suspicious: this code was flagged as a possible copy.",
                "zh-CN": "可疑：此编码已被标记为可能的仿冒品。"},
    "claimed-twice": {"en": "Suspicious: this item was claimed before; the label may be copied.",
                      "zh-CN": "可疑：此商品已被认领过，标签可能被复制。"},
    "impossible-travel": {"en": "Suspicious: this code was scanned too far away too soon.",
                          "zh-CN": "可疑：此编码在短时间内于相距过远的地点被扫描。"},
    "too-many-scans": {"en": "Suspicious: this code was scanned more often than plausible.",
                       "zh-CN": "可疑：此编码的扫描次数异常。"},
    "recalled": {"en": "Recalled: do not use; contact the brand.",
                 "zh-CN": "已召回：请停止使用并联系品牌方。"},
}


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _now() -> int:
    return int(time.time())


# ---------------------------------------------------------------------- registration


def grant_brand(alliance: Alliance, *, merchant_id: int) -> governance.AdminAction:
    """Schedule the admin action that gives a merchant's account the BRAND_ROLE (timelock);
    on a dev chain with no delay it is executed at once."""
    with alliance.store.read_session() as s:
        merchant = require_merchant(s, merchant_id)
        account = merchant.account_address
    registry = alliance.contracts.registry
    action = governance.schedule(alliance, kind="grant-brand", target=registry.address,
                                 data=registry.encode("grantRole", BRAND_ROLE, account),
                                 summary=f"merchant {merchant_id} becomes a brand",
                                 details={"merchant_id": merchant_id})
    if alliance.contracts.timelock.min_delay() == 0:
        governance.execute(alliance, action)
        governance.finish(alliance, action)
    return action


def register_product(alliance: Alliance, session: Session, *, merchant_id: int, gtin: str,
                     name: str, claim_points: int = 0) -> OperationView:
    """Register a product of the calling brand (the chain checks the brand role)."""
    g = parse_gtin(gtin)
    merchant = require_merchant(session, merchant_id)
    existing = repos.product(session, g)
    if existing is not None:
        raise LedgerConflictError(f"GTIN {g:014d} is registered already", code="product-taken")
    if not 0 <= claim_points < 2**31:
        raise LedgerValidationError("claim_points out of range", field="claim_points")
    session.add(repos.ItemProduct(gtin=g, brand_id=merchant.id, name=name[:128],
                                  claim_points=claim_points))
    op = outbox.enqueue(session, kind=kinds.REGISTER,
                        payload=RegistrationPayload("product", merchant.id, g),
                        merchant_id=merchant.id, signer=merchant.account_address)
    return operation_view(op)


def register_locations(alliance: Alliance, session: Session, *, merchant_id: int,
                       labels: Sequence[str]) -> OperationView:
    """Register the merchant's locations (GLN URIs or store ids); on chain each is its
    keccak256. A location of another merchant is refused."""
    if not 1 <= len(labels) <= 256:
        raise LedgerValidationError("1 to 256 locations", field="locations")
    merchant = require_merchant(session, merchant_id)
    ids: list[bytes] = []
    for label in labels:
        lid = location_id(label)
        row = repos.location(session, _hex(lid))
        if row is not None and row.merchant_id != merchant.id:
            raise LedgerPermissionError(f"location {label} belongs to another merchant")
        if row is None:
            session.add(repos.ItemLocation(location=_hex(lid), merchant_id=merchant.id,
                                           label=label[:128]))
        ids.append(lid)
    op = outbox.enqueue(session, kind=kinds.REGISTER,
                        payload=RegistrationPayload("locations", merchant.id,
                                                    locations=tuple(ids)),
                        merchant_id=merchant.id, signer=merchant.account_address)
    return operation_view(op)


def _label_secret(seed: bytes, serial: str) -> str:
    """A label's secret, derived from the batch's seed (so labels can be printed again
    without the store ever holding a secret in the clear)."""
    raw = hmac.new(seed, serial.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class BatchView:
    batch_id: int
    gtin: str
    count: int
    root: str
    operation: OperationView


def register_batch(alliance: Alliance, session: Session, *, merchant_id: int, gtin: str,
                   serials: Sequence[str] | None = None, count: int | None = None,
                   prefix: str = "") -> BatchView:
    """Register a production batch: given serials, or ``count`` serials ``<prefix><n>``.
    One Merkle root goes on chain; the serials and their leaves stay in the store."""
    g = parse_gtin(gtin)
    merchant = require_merchant(session, merchant_id)
    prod = repos.product(session, g)
    if prod is None:
        raise ItemCodeError(f"GTIN {g:014d} is not a registered product", code="unknown-gtin",
                            field="gtin")
    if prod.brand_id != merchant.id:
        raise LedgerPermissionError("the product belongs to another brand")
    if serials is None:
        if count is None or not 1 <= count <= MAX_BATCH_SERIALS:
            raise LedgerValidationError(f"count must be 1 to {MAX_BATCH_SERIALS}",
                                        field="count")
        width = len(str(count))
        serials = [f"{prefix}{i:0{width}d}" for i in range(1, count + 1)]
    if not 1 <= len(serials) <= MAX_BATCH_SERIALS or len(set(serials)) != len(serials):
        raise LedgerValidationError(f"1 to {MAX_BATCH_SERIALS} distinct serials",
                                    field="serials")
    for s in serials:
        check_serial(s)
    seed = os.urandom(32)
    rows: list[dict[str, Any]] = []
    leaves: list[bytes] = []
    ids = [_hex(item_id(g, s)) for s in serials]
    taken = repos.existing_serials(session, ids)
    if taken:
        raise LedgerConflictError(f"{len(taken)} serials of {g:014d} are registered already "
                                  f"(e.g. {sorted(taken)[0]})", code="serial-taken")
    for index, s in enumerate(serials):
        iid = item_id(g, s)
        sh = secret_hash(_label_secret(seed, s))
        rows.append({"item_id": _hex(iid), "serial": s, "secret_hash": _hex(sh),
                     "batch_index": index})
        leaves.append(leaf_hash(iid, index, sh))
    root = StandardMerkleTree(leaves).root
    batch = repos.ItemBatch(brand_id=merchant.id, gtin=g, count=len(serials), root=_hex(root),
                            seed=alliance.master_key.encrypt(seed), recalled=False)
    session.add(batch)
    session.flush()
    for r in rows:
        r["batch_id"] = batch.id
    repos.insert_serials(session, rows)
    op = outbox.enqueue(session, kind=kinds.REGISTER,
                        payload=RegistrationPayload("batch", merchant.id, g, root, len(serials)),
                        merchant_id=merchant.id, signer=merchant.account_address)
    return BatchView(batch.id, f"{g:014d}", len(serials), _hex(root), operation_view(op))


_TREES: dict[tuple[int, str], StandardMerkleTree] = {}


def batch_tree(session: Session, batch: repos.ItemBatch) -> StandardMerkleTree:
    """The batch's Merkle tree, rebuilt from the store once per process."""
    key = (batch.id, batch.root)
    tree = _TREES.get(key)
    if tree is None:
        tree = StandardMerkleTree([leaf_hash(bytes.fromhex(i[2:]), k, bytes.fromhex(h[2:]))
                                   for i, k, h in repos.batch_leaves(session, batch.id)])
        if _hex(tree.root) != batch.root:
            raise LedgerValidationError("the batch's serials do not make its root")
        if len(_TREES) > 16:
            _TREES.clear()
        _TREES[key] = tree
    return tree


def proof_of(session: Session, serial_row: repos.ItemSerial) -> tuple[repos.ItemBatch, list[bytes]]:
    batch = repos.batch(session, serial_row.batch_id)
    if batch is None:
        raise LedgerNotFoundError("batch of the serial is missing")
    tree = batch_tree(session, batch)
    leaf = leaf_hash(bytes.fromhex(serial_row.item_id[2:]), _index(serial_row),
                     bytes.fromhex(serial_row.secret_hash[2:]))
    return batch, tree.proof(leaf)


def _index(serial_row: repos.ItemSerial) -> int:
    if serial_row.batch_index is None:
        raise LedgerValidationError("the serial has no position in its batch (registered "
                                    "before item keys; register its batch again)")
    return serial_row.batch_index


def chain_key(session: Session, serial_row: repos.ItemSerial,
              batch: repos.ItemBatch | None = None) -> int:
    """The serial's on-chain item key (its batch must be registered on chain)."""
    batch = batch if batch is not None else repos.batch(session, serial_row.batch_id)
    if batch is None or batch.chain_batch_id is None:
        raise LedgerConflictError("the batch is not registered on chain yet",
                                  code="batch-not-registered")
    return item_key(batch.chain_batch_id, _index(serial_row))


# ---------------------------------------------------------------------- labels


def batch_labels(alliance: Alliance, session: Session, *, merchant_id: int, batch_id: int,
                 resolver: str | None = None) -> list[ItemCode]:
    """Every label of a batch (with its secret): only for the batch's brand."""
    batch = repos.batch(session, batch_id)
    if batch is None or batch.brand_id != merchant_id:
        raise LedgerNotFoundError(f"no batch {batch_id} of this brand")
    seed = alliance.master_key.decrypt(batch.seed)
    return [ItemCode(batch.gtin, s.serial, _label_secret(seed, s.serial))
            for s in repos.batch_serials(session, batch_id)]


def labels_csv(codes: Sequence[ItemCode], resolver: str) -> str:
    """The printer's CSV: GTIN, serial, the Digital Link URI the QR code carries."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["gtin", "serial", "uri"])
    for c in codes:
        w.writerow([f"{c.gtin:014d}", c.serial, c.uri(resolver)])
    return out.getvalue()


def label_image(code: ItemCode, resolver: str, *, kind: str = "png") -> bytes:
    """One label's QR code (error correction M) as PNG or SVG."""
    qr = segno.make_qr(code.uri(resolver), error="m")
    buf = io.BytesIO()
    qr.save(buf, kind=kind, scale=4 if kind == "png" else 1, border=2)
    return buf.getvalue()


# ---------------------------------------------------------------------- custody events


@dataclass(frozen=True)
class EventLine:
    """One custody event as a merchant reports it."""

    code: str
    biz_step: str
    location: str
    destination: str | None = None
    disposition: str | None = None
    event_time: int | None = None


# What the indexed status must be for a step (the chain has the last word).
ALLOWED_FROM = {
    BizStep.SHIPPING: {ItemStatus.COMMISSIONED, ItemStatus.IN_STOCK},
    BizStep.RECEIVING: {ItemStatus.IN_TRANSIT},
    BizStep.RETAIL_SELLING: {ItemStatus.COMMISSIONED, ItemStatus.IN_STOCK},
    BizStep.RETURNING: {ItemStatus.SOLD},
    BizStep.DESTROYING: {ItemStatus.COMMISSIONED, ItemStatus.IN_STOCK},
    BizStep.RECALLING: set(ItemStatus) - {ItemStatus.UNKNOWN},
}


def _step(name: str) -> BizStep:
    try:
        return BizStep[name.upper()]
    except KeyError as exc:
        raise LedgerValidationError(f"unknown bizStep {name!r}", field="biz_step") from exc


def _disposition(name: str | None, step: BizStep) -> Disposition:
    if name is None:
        return DEFAULT_DISPOSITION[step]
    try:
        return Disposition[name.upper()]
    except KeyError as exc:
        raise LedgerValidationError(f"unknown disposition {name!r}",
                                    field="disposition") from exc


def record_events(alliance: Alliance, session: Session, *, merchant_id: int,
                  lines: Sequence[EventLine]) -> list[OperationView]:
    """Queue custody events (commissioning activates the item with its proof). Each is
    checked against the store first; all are refused if one is bad (index says which)."""
    if not 1 <= len(lines) <= MAX_EVENTS_PER_REQUEST:
        raise LedgerValidationError(f"1 to {MAX_EVENTS_PER_REQUEST} events", field="events")
    merchant = require_merchant(session, merchant_id)
    checked: list[_CheckedEvent] = []
    memo = _Memo(session)
    for i, line in enumerate(lines):
        try:
            checked.append(_check_event(session, merchant.id, line, memo))
        except (LedgerValidationError, LedgerPermissionError, LedgerConflictError,
                LedgerNotFoundError) as exc:
            if len(lines) == 1:
                raise
            exc.details["index"] = i
            exc.message = f"events[{i}]: {exc.message}"
            raise
    digests = epcis.event_hashes([c.doc for c in checked])  # one JSON-LD expansion
    queued = [_event_payload(session, c, d, memo) for c, d in zip(checked, digests,
                                                                  strict=True)]
    views = []
    for kind, payload in queued:
        op = outbox.enqueue(session, kind=kind, payload=payload, merchant_id=merchant.id,
                            signer=merchant.account_address)
        views.append(operation_view(op))
    return views


@dataclass(frozen=True)
class _CheckedEvent:
    """An event line the store let through, with its EPCIS document (hash still to come)."""

    code: ItemCode
    step: BizStep
    disposition: Disposition
    when: int
    location: bytes
    destination: bytes
    serial_row: repos.ItemSerial
    doc: dict[str, Any]


class _Memo:
    """Products, locations and batches looked up once per request (the identity map holds
    rows weakly, so a 200-event request asked the store for each again: ~40% of its time)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.products: dict[int, repos.ItemProduct | None] = {}
        self.locations: dict[str, repos.ItemLocation | None] = {}
        self.batches: dict[int, repos.ItemBatch | None] = {}

    def product(self, gtin: int) -> repos.ItemProduct | None:
        if gtin not in self.products:
            self.products[gtin] = repos.product(self.session, gtin)
        return self.products[gtin]

    def location(self, location_hex: str) -> repos.ItemLocation | None:
        if location_hex not in self.locations:
            self.locations[location_hex] = repos.location(self.session, location_hex)
        return self.locations[location_hex]

    def batch(self, batch_id: int) -> repos.ItemBatch | None:
        if batch_id not in self.batches:
            self.batches[batch_id] = repos.batch(self.session, batch_id)
        return self.batches[batch_id]


def _check_event(session: Session, merchant_id: int, line: EventLine,
                 memo: _Memo | None = None) -> _CheckedEvent:
    memo = memo or _Memo(session)
    code = parse_code(line.code)
    step = _step(line.biz_step)
    disp = _disposition(line.disposition, step)
    if memo.product(code.gtin) is None:
        raise ItemCodeError(f"GTIN {code.gtin:014d} is not a registered product",
                            code="unknown-gtin")
    serial_row = repos.serial(session, _hex(code.item_id))
    if serial_row is None:
        raise LedgerNotFoundError(f"serial {code.serial} of {code.gtin:014d} is not registered")
    loc = location_id(line.location)
    loc_row = memo.location(_hex(loc))
    if loc_row is None or loc_row.merchant_id != merchant_id:
        raise LedgerPermissionError(f"location {line.location} is not one of yours")
    dest = b"\0" * 32
    if step == BizStep.SHIPPING:
        if not line.destination:
            raise LedgerValidationError("shipping needs a destination", field="destination")
        dest = location_id(line.destination)
        if memo.location(_hex(dest)) is None:
            raise LedgerNotFoundError(f"destination {line.destination} is not registered")
    elif line.destination:
        raise LedgerValidationError("only shipping names a destination", field="destination")
    state = repos.state(session, _hex(code.item_id))
    if step == BizStep.COMMISSIONING:
        if state is not None:
            raise LedgerConflictError("the item was commissioned already",
                                      code="ItemAlreadyActivated")
    else:
        status = ItemStatus(state.status) if state is not None else ItemStatus.UNKNOWN
        if status not in ALLOWED_FROM[step]:
            raise LedgerConflictError(f"{step.cbv} cannot follow {status.value}",
                                      code="ItemInvalidTransition")
        if step == BizStep.RECEIVING and state is not None and state.destination != merchant_id:
            raise LedgerConflictError("the item was not shipped to you",
                                      code="ItemNotShippedToYou")
        if step != BizStep.RECEIVING and state is not None and state.custodian != merchant_id:
            raise LedgerPermissionError("you do not hold this item")
        batch = memo.batch(serial_row.batch_id)
        recalled = state is not None and (state.recalled or (batch is not None
                                                             and batch.recalled))
        if step == BizStep.RETAIL_SELLING and recalled:
            raise LedgerConflictError("the item is recalled", code="ItemUnderRecall")
    when = line.event_time if line.event_time is not None else _now()
    doc = epcis.object_event(code=code, biz_step=step, disposition=disp, event_time=when,
                             location=line.location, destination=line.destination)
    return _CheckedEvent(code, step, disp, when, loc, dest, serial_row, doc)


def _event_payload(session: Session, c: _CheckedEvent, digest: bytes, memo: _Memo
                   ) -> tuple[kinds.RecordEventsKind, EventPayload]:
    code, step, serial_row = c.code, c.step, c.serial_row
    if session.get(repos.ItemEpcisDocument, _hex(digest)) is None:
        session.add(repos.ItemEpcisDocument(event_hash=_hex(digest), item_id=_hex(code.item_id),
                                            document=c.doc))
    event = CustodyEvent(chain_key(session, serial_row, memo.batch(serial_row.batch_id)),
                         digest, c.location, step, c.when,
                         c.disposition, c.destination)
    if step == BizStep.COMMISSIONING:
        _, proof = proof_of(session, serial_row)
        return kinds.ACTIVATE, EventPayload(event, code.item_id,
                                            bytes.fromhex(serial_row.secret_hash[2:]),
                                            tuple(proof))
    return kinds.RECORD_EVENTS, EventPayload(event)


# ---------------------------------------------------------------------- recall


def recall(alliance: Alliance, session: Session, *, merchant_id: int,
           batch_ids: Sequence[int] = (), codes: Sequence[str] = (), reason: str = "",
           reason_zh: str | None = None) -> OperationView:
    """Recall whole batches and single items of the calling brand, in one transaction. The
    reason (English, and Chinese if given) is kept off chain under the hash the chain's
    recall events carry; verify, the scan page and the member's items show it."""
    if not 1 <= len(batch_ids) + len(codes) <= 256:
        raise LedgerValidationError("1 to 256 batches and items", field="batch_ids")
    merchant = require_merchant(session, merchant_id)
    chain_ids: list[int] = []
    for b in batch_ids:
        batch = repos.batch(session, b)
        if batch is None or batch.brand_id != merchant.id:
            raise LedgerNotFoundError(f"no batch {b} of this brand")
        if batch.chain_batch_id is None:
            raise LedgerConflictError("the batch is not registered on chain yet",
                                      code="batch-not-registered")
        chain_ids.append(batch.chain_batch_id)
    keys: list[int] = []
    for c in codes:
        code = parse_code(c)
        prod = repos.product(session, code.gtin)
        if prod is None or prod.brand_id != merchant.id:
            raise LedgerNotFoundError(f"no product {code.gtin:014d} of this brand")
        serial_row = repos.serial(session, _hex(code.item_id))
        if serial_row is None:
            raise LedgerNotFoundError(f"serial {code.serial} of {code.gtin:014d} is not "
                                      "registered")
        keys.append(chain_key(session, serial_row))
    notice = {"brand": merchant.id, "batches": sorted(chain_ids), "items": sorted(keys),
              "reason": reason, "reason_zh": reason_zh, "at": _now(),
              "nonce": os.urandom(8).hex()}
    digest = hashlib.sha256(json.dumps(notice, sort_keys=True).encode()).digest()
    session.add(repos.ItemRecallNotice(event_hash=_hex(digest), brand_id=merchant.id,
                                       reason=reason[:500],
                                       reason_zh=reason_zh[:500] if reason_zh else None))
    op = outbox.enqueue(session, kind=kinds.RECALL,
                        payload=RecallPayload(tuple(chain_ids), tuple(keys), digest),
                        merchant_id=merchant.id, signer=merchant.account_address)
    return operation_view(op)


# ---------------------------------------------------------------------- claim


class _ClaimedBefore(Exception):
    def __init__(self, brand_id: int, item_id: bytes) -> None:
        self.brand_id, self.item_id = brand_id, item_id


def claim(alliance: Alliance, *, code: str, member: str, nonce: int, deadline: int,
          signature: str) -> OperationView:
    """Queue the buyer's claim of a sold item (relayed by the brand). On the chain's
    ``ItemClaimed`` the projection issues the product's points once (order ``item:<gtin>:
    <serial>``, so it can never pay twice). A claim of an item claimed before is refused
    (409 ``ItemAlreadyClaimed``) and flags the item on chain as a possible clone."""
    try:
        with alliance.store.session() as s:
            return _claim(alliance, s, code=code, member=member, nonce=nonce,
                          deadline=deadline, signature=signature)
    except _ClaimedBefore as again:
        with alliance.store.session() as s:
            _flag_once(s, again.brand_id, again.item_id, REASON_CLAIMED_TWICE)
        raise LedgerConflictError("the item was claimed already",
                                  code="ItemAlreadyClaimed") from None


def _claim(alliance: Alliance, session: Session, *, code: str, member: str, nonce: int,
           deadline: int, signature: str) -> OperationView:
    c = parse_code(code)
    if c.secret is None:
        raise ItemCodeError("the code carries no label secret (?s=)", code="invalid-secret")
    serial_row = repos.serial(session, _hex(c.item_id))
    prod = repos.product(session, c.gtin)
    if serial_row is None or prod is None:
        raise LedgerNotFoundError("unknown code")
    if _hex(secret_hash(c.secret)) != serial_row.secret_hash:
        raise ItemCodeError("the label secret does not match", code="wrong-secret")
    state = repos.state(session, _hex(c.item_id))
    if state is not None and state.claimed_by is not None:
        raise _ClaimedBefore(prod.brand_id, c.item_id)
    if state is None or state.status != ItemStatus.SOLD:
        raise LedgerConflictError("only a sold item can be claimed", code="ItemNotSold")
    items = alliance.contracts.items
    if items is None:
        raise LedgerNotFoundError("no ItemRegistry in this deployment")
    try:
        sig = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError as exc:
        raise LedgerSignatureError("signature must be hex") from exc
    typed = claim_typed_data(chain_id=alliance.gateway.chain_id, items=items.address,
                             registry=alliance.contracts.registry.address, member=member,
                             item_id=c.item_id, nonce=nonce, deadline=deadline)
    try:
        signer = Account.recover_message(encode_typed_data(full_message=typed), signature=sig)
    except Exception as exc:  # noqa: BLE001 - any malformed signature is the caller's
        raise LedgerSignatureError("not a valid signature") from exc
    if signer.lower() != member.lower():
        raise LedgerSignatureError("the claim is not signed by the member")
    # The contract judges the deadline by its block's time, not this machine's clock.
    now = int(alliance.gateway.block("latest")["timestamp"])
    if deadline < now:
        raise LedgerSignatureError(f"the claim's deadline {deadline} has passed (chain time "
                                   f"{now})", code="deadline-passed", field="deadline")
    if deadline > now + MAX_DEADLINE_AHEAD_S:
        raise LedgerSignatureError(f"the claim's deadline is more than {MAX_DEADLINE_AHEAD_S}"
                                   " s ahead", code="deadline-too-far", field="deadline")
    if items.nonce_used(signer, nonce):
        raise LedgerSignatureError(f"nonce {nonce} of {signer} is already used",
                                   code="nonce-used", field="nonce")
    _, proof = proof_of(session, serial_row)
    brand = require_merchant(session, prod.brand_id)
    op = outbox.enqueue(session, kind=kinds.CLAIM,
                        payload=ClaimPayload(chain_key(session, serial_row), c.item_id,
                                             secret_word(c.secret), tuple(proof),
                                             signer, nonce, deadline, sig),
                        merchant_id=brand.id, signer=brand.account_address)
    return operation_view(op)


def claim_order_id(gtin: int, serial: str) -> str:
    """The order id scan-to-earn issues under: one per item, forever."""
    return f"item:{gtin:014d}:{serial}"


def _flag_once(session: Session, brand_id: int, iid: bytes, reason: int) -> None:
    state = repos.state(session, _hex(iid))
    if state is not None and state.flagged:
        return
    serial_row = repos.serial(session, _hex(iid))
    if serial_row is None:
        return
    brand = require_merchant(session, brand_id)
    outbox.enqueue(session, kind=kinds.FLAG,
                   payload=FlagPayload(chain_key(session, serial_row), reason),
                   merchant_id=brand.id, signer=brand.account_address)


# ---------------------------------------------------------------------- verify


@dataclass
class Verdict:
    """What a scan of a code tells the public."""

    verdict: str  # genuine | unknown | suspicious
    reasons: list[str] = field(default_factory=list)
    gtin: str | None = None
    serial: str | None = None
    product: str | None = None
    status: str | None = None
    recalled: bool = False
    recall_reason: dict[str, str] | None = None
    claimed: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    message: dict[str, str] = field(default_factory=dict)


def _km(a: tuple[int, int], b: tuple[int, int]) -> float:
    lat1, lon1, lat2, lon2 = (math.radians(v / 1e6) for v in (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def scan_buffer(store: Store) -> scans_.ScanBuffer:
    """The store's buffer of public scans (see ``ledger.items.scans``)."""
    return scans_.buffer_for(store, write_flag)


def write_flag(session: Session, f: scans_.FlagRequest) -> None:
    _flag_once(session, f.brand_id, f.item_id, f.reason)


def verify(session: Session, *, code: str, lat: float | None = None, lon: float | None = None,
           now: int | None = None, scans: scans_.ScanBuffer | None = None) -> Verdict:
    """Genuine (with history), unknown, or suspicious with reasons: from the read model only.
    The scan is recorded for clone detection; a clone signal on an item flags it on chain
    (once, through its brand). With ``scans`` (the public endpoints), the scan and the flag go
    to that buffer, written in batches, and ``session`` is only read; without, both are
    written in ``session``."""
    c = parse_code(code)
    at = now if now is not None else _now()
    prod = repos.product(session, c.gtin)
    serial_row = repos.serial(session, _hex(c.item_id))
    if prod is None or serial_row is None:
        return _finish(Verdict("unknown", gtin=f"{c.gtin:014d}", serial=c.serial))
    v = Verdict("genuine", gtin=f"{c.gtin:014d}", serial=c.serial, product=prod.name)
    iid = _hex(c.item_id)
    if c.secret is not None and _hex(secret_hash(c.secret)) != serial_row.secret_hash:
        v.reasons.append("secret-mismatch")
    state = repos.state(session, iid)
    batch = repos.batch(session, serial_row.batch_id)
    if state is None:
        v.reasons.append("not-activated")
        v.status = ItemStatus.UNKNOWN.value
    else:
        v.status = state.status
        v.claimed = state.claimed_by is not None
        v.recalled = bool(state.recalled or (batch is not None and batch.recalled))
        if state.flagged:
            v.reasons.append("flagged")
        v.history = [history_entry(e) for e in repos.history(session, iid)]
    if batch is not None and batch.recalled:
        v.recalled = True
    if v.recalled:
        v.recall_reason = recall_reason(session, iid, batch)
    point = None
    if lat is not None and lon is not None:
        point = (round(lat * 1e6), round(lon * 1e6))
    signal = None
    since = at - 86400
    seen: list[repos.ItemScan | scans_.Scan] = list(repos.recent_scans(session, iid, since))
    if scans is not None:  # asked after the store query (see ledger.items.scans)
        seen += scans.recent(iid, since, {s.id for s in seen if s.id is not None})
        seen.sort(key=lambda s: s.at)
    if len(seen) + 1 > MAX_SCANS_PER_DAY:
        signal = REASON_TOO_MANY_SCANS
    if point is not None:
        for s in reversed(seen):
            if s.lat_e6 is None or s.lon_e6 is None:
                continue
            hours = max(at - s.at, 1) / 3600
            if _km((s.lat_e6, s.lon_e6), point) / hours > MAX_SPEED_KMH:
                signal = REASON_IMPOSSIBLE_TRAVEL
            break
    lat_e6, lon_e6 = point if point is not None else (None, None)
    flag = None
    if signal is not None:
        v.reasons.append(REASONS[signal])
        if state is not None:
            flag = scans_.FlagRequest(prod.brand_id, c.item_id, signal)
    if scans is not None:
        scans.add(scans_.Scan(iid, at, lat_e6, lon_e6), flag)
    else:
        session.add(repos.ItemScan(item_id=iid, at=at, lat_e6=lat_e6, lon_e6=lon_e6))
        if flag is not None:
            write_flag(session, flag)
    return _finish(v)


def _finish(v: Verdict) -> Verdict:
    if v.verdict != "unknown" and v.reasons:
        v.verdict = "suspicious"
    key = v.reasons[0] if v.reasons else v.verdict
    v.message = dict(MESSAGES[key])
    if v.recalled:
        reason = v.recall_reason or {}
        v.message = {lang: f"{text} {MESSAGES['recalled'][lang]}"
                     + (f" {RECALL_REASON_LABEL[lang]}{reason[lang]}" if reason.get(lang) else "")
                     for lang, text in v.message.items()}
    return v


RECALL_REASON_LABEL = {"en": "Reason: ", "zh-CN": "原因："}


def recall_reason(session: Session, iid: str, batch: repos.ItemBatch | None
                  ) -> dict[str, str] | None:
    """The brand's reason of the latest recall that reached the item (item or batch recall),
    in English and Chinese (the English text when no Chinese was given)."""
    notice = repos.latest_recall(session, iid)
    if notice is None and batch is not None and batch.chain_batch_id is not None:
        notice = repos.batch_recall_notice(session, batch.chain_batch_id)
    if notice is None or not notice.reason:
        return None
    return {"en": notice.reason, "zh-CN": notice.reason_zh or notice.reason}


def history_entry(e: repos.ItemEvent) -> dict[str, Any]:
    return {"kind": e.kind, "merchant_id": e.merchant_id, "location": e.location,
            "destination": e.destination, "disposition": e.disposition,
            "event_time": e.event_time, "event_hash": e.event_hash, "member": e.member,
            "reason": REASONS.get(e.reason or 0) if e.reason is not None else None,
            "tx_hash": e.tx_hash, "block_number": e.block_number, "at": e.block_time}


def item_history(session: Session, *, code: str) -> list[dict[str, Any]]:
    c = parse_code(code)
    if repos.serial(session, _hex(c.item_id)) is None:
        raise LedgerNotFoundError("unknown code")
    return [history_entry(e) for e in repos.history(session, _hex(c.item_id))]


def member_items(alliance: Alliance, session: Session, *, holder: str) -> list[dict[str, Any]]:
    """The items a wallet claimed (scan to earn), newest first, with their recall state: what
    the member app shows a signed-in member. From the read model only."""
    try:
        address = to_checksum_address(holder)
    except ValueError as exc:
        raise LedgerValidationError("not an address", field="holder") from exc
    out: list[dict[str, Any]] = []
    for state in repos.claimed_by(session, address):
        gtin, serial = split_item_id(bytes.fromhex(state.item_id[2:]))
        prod = repos.product(session, gtin)
        serial_row = repos.serial(session, state.item_id)
        batch = repos.batch(session, serial_row.batch_id) if serial_row is not None else None
        recalled = bool(state.recalled or (batch is not None and batch.recalled))
        claimed = repos.claim_event(session, state.item_id)
        out.append({"gtin": f"{gtin:014d}", "serial": serial,
                    "product": prod.name if prod is not None else None,
                    "claimed_at": claimed.block_time if claimed is not None else None,
                    "status": state.status, "recalled": recalled,
                    "recall_reason": (recall_reason(session, state.item_id, batch)
                                      if recalled else None)})
    return out


def epcis_export(session: Session, *, code: str) -> dict[str, Any]:
    """The item's custody history as one EPCIS 2.0 JSON-LD document (the events whose hashes
    the chain carries, in chain order)."""
    c = parse_code(code)
    events = repos.history(session, _hex(c.item_id))
    hashes = [e.event_hash for e in events if e.event_hash and e.kind not in
              {"claimed", "flagged", "recalled", "batch_recalled"}]
    docs = repos.epcis_documents(session, hashes)
    return epcis.document([docs[h] for h in hashes if h in docs], created=_now())
