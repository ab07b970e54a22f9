"""Scanning a product in the member app: verify its label, claim its points with the
member's own signature, and the member's claimed items with their recall state.

The item's label (a GS1 Digital Link URI with its secret) is what the page scans or the
member pastes. Verifying reads the items read model (and counts as a scan for clone
detection, as any verify does). Claiming is ``items.service.claim``: the brand relays the
member's EIP-712 ``Claim`` of that item; the brand's points are issued once per item under an
order id derived from the serial. The member's items are read from ``ledger/items`` read
models (the items capability adds ``GET /v1/items/mine`` for merchants in its own round)."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import limits
from ..alliance import Alliance
from ..errors import ItemCodeError, LedgerConfigError
from ..items import service as items
from ..items.codes import parse_code
from ..items.signing import claim_typed_data
from ..merchants.repos import get_merchant
from ..points import reads as point_reads
from ..store.models import ItemBatch, ItemProduct, ItemSerial, ItemState
from .payments import SIGNATURE_TTL_S, SignRequest


def verify(session: Session, *, code: str) -> dict[str, Any]:
    """Genuine, unknown or suspicious (with reasons, history, recall), and whether the item
    can be claimed now (sold, not claimed, the label's secret present)."""
    verdict = items.verify(session, code=code)
    out = asdict(verdict)
    has_secret = parse_code(code).secret is not None
    out["claimable"] = (verdict.verdict == "genuine" and verdict.status == "sold"
                        and not verdict.claimed and has_secret)
    prod = session.get(ItemProduct, int(verdict.gtin)) if verdict.gtin else None
    out["claim_points"] = prod.claim_points if prod is not None else 0
    brand = get_merchant(session, prod.brand_id) if prod is not None else None
    out["brand_name"] = brand.name if brand is not None else None
    return out


def quote_claim(alliance: Alliance, session: Session, *, member: str, code: str) -> SignRequest:
    """What the member signs to claim the item of ``code`` (its label, with the secret)."""
    c = parse_code(code)
    if c.secret is None:
        raise ItemCodeError("the code carries no label secret: scan the label inside the "
                            "package", code="invalid-secret")
    registry = alliance.contracts.items
    if registry is None:
        raise LedgerConfigError("this deployment has no item registry")
    prod = session.get(ItemProduct, c.gtin)
    address = limits.address(member)
    # Unordered nonces: a random one (52 bits: exact as a JavaScript number in the page).
    nonce = secrets.randbits(52)
    deadline = point_reads.chain_now(alliance) + SIGNATURE_TTL_S
    typed = claim_typed_data(chain_id=alliance.gateway.chain_id, items=registry.address,
                             registry=alliance.contracts.registry.address, member=address,
                             item_id=c.item_id, nonce=nonce, deadline=deadline)
    points = prod.claim_points if prod is not None else 0
    return SignRequest(typed, points, 0, nonce, deadline, items.claim_order_id(c.gtin, c.serial))


def claim(alliance: Alliance, *, member: str, code: str, nonce: int, deadline: int,
          signature: str) -> str:
    """Queue the member's signed claim (relayed by the brand); the operation's id."""
    return items.claim(alliance, code=code, member=limits.address(member), nonce=nonce,
                       deadline=deadline, signature=signature).id


def my_items(session: Session, *, member: str) -> list[dict[str, Any]]:
    """The items the member claimed, newest first, each with its product, brand and whether
    it (or its batch) is recalled."""
    rows = session.execute(
        select(ItemState, ItemSerial, ItemBatch)
        .join(ItemSerial, ItemSerial.item_id == ItemState.item_id)
        .join(ItemBatch, ItemBatch.id == ItemSerial.batch_id)
        .where(ItemState.claimed_by == limits.address(member))
        .order_by(ItemState.block_number.desc())).all()
    out: list[dict[str, Any]] = []
    for state, serial, batch in rows:
        prod = session.get(ItemProduct, batch.gtin)
        brand = get_merchant(session, prod.brand_id) if prod is not None else None
        out.append({"gtin": f"{batch.gtin:014d}", "serial": serial.serial,
                    "product": prod.name if prod is not None else None,
                    "brand_name": brand.name if brand is not None else None,
                    "claim_points": prod.claim_points if prod is not None else 0,
                    "status": state.status, "recalled": state.recalled or batch.recalled,
                    "recall_reason": (items.recall_reason(session, state.item_id, batch)
                                      if state.recalled or batch.recalled else None),
                    "flagged": state.flagged})
    return out
