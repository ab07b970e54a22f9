"""The items tables: products, locations, batches and serials (written by the service), the
item read model and history (written by the projection), EPCIS documents and scans."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ..store.models import (
    ItemBatch,
    ItemEpcisDocument,
    ItemEvent,
    ItemLocation,
    ItemProduct,
    ItemRecall,
    ItemRecallNotice,
    ItemScan,
    ItemSerial,
    ItemState,
)

__all__ = ["ItemBatch", "ItemEpcisDocument", "ItemEvent", "ItemLocation", "ItemProduct",
           "ItemRecall", "ItemRecallNotice", "ItemScan", "ItemSerial", "ItemState"]


def product(session: Session, gtin: int) -> ItemProduct | None:
    return session.get(ItemProduct, gtin)


def location(session: Session, location_hex: str) -> ItemLocation | None:
    return session.get(ItemLocation, location_hex)


def serial(session: Session, item_id_hex: str) -> ItemSerial | None:
    return session.get(ItemSerial, item_id_hex)


def existing_serials(session: Session, item_ids: Sequence[str]) -> set[str]:
    """Which of these item ids are registered already (asked in chunks)."""
    out: set[str] = set()
    for start in range(0, len(item_ids), 900):
        chunk = list(item_ids[start:start + 900])
        out.update(session.scalars(select(ItemSerial.item_id)
                                   .where(ItemSerial.item_id.in_(chunk))))
    return out


def batch(session: Session, batch_id: int) -> ItemBatch | None:
    return session.get(ItemBatch, batch_id)


def batch_by_root(session: Session, root_hex: str) -> ItemBatch | None:
    return session.scalar(select(ItemBatch).where(ItemBatch.root == root_hex))


def batch_by_chain_id(session: Session, chain_batch_id: int) -> ItemBatch | None:
    return session.scalar(select(ItemBatch).where(ItemBatch.chain_batch_id == chain_batch_id))


def insert_serials(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 5_000):
        session.execute(insert(ItemSerial), list(rows[start:start + 5_000]))


def batch_serials(session: Session, batch_id: int) -> list[ItemSerial]:
    """A batch's serials in their order in the batch (their on-chain indexes)."""
    return list(session.scalars(select(ItemSerial).where(ItemSerial.batch_id == batch_id)
                                .order_by(ItemSerial.batch_index, ItemSerial.serial)))


def batch_leaves(session: Session, batch_id: int) -> list[tuple[str, int, str]]:
    """(item_id, index, secret_hash) of every serial of a batch."""
    rows = session.execute(select(ItemSerial.item_id, ItemSerial.batch_index,
                                  ItemSerial.secret_hash)
                           .where(ItemSerial.batch_id == batch_id))
    return [(r[0], int(r[1] or 0), r[2]) for r in rows]


def serial_at(session: Session, batch_id: int, index: int) -> ItemSerial | None:
    """The serial at ``index`` of the store's batch ``batch_id``."""
    return session.scalar(select(ItemSerial).where(ItemSerial.batch_id == batch_id,
                                                   ItemSerial.batch_index == index))


def state(session: Session, item_id_hex: str) -> ItemState | None:
    return session.get(ItemState, item_id_hex)


def history(session: Session, item_id_hex: str) -> list[ItemEvent]:
    return list(session.scalars(select(ItemEvent).where(ItemEvent.item_id == item_id_hex)
                                .order_by(ItemEvent.block_number, ItemEvent.log_index)))


def epcis_documents(session: Session, hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = session.scalars(select(ItemEpcisDocument)
                           .where(ItemEpcisDocument.event_hash.in_(list(hashes))))
    return {r.event_hash: dict(r.document) for r in rows}


def recent_scans(session: Session, item_id_hex: str, since: int) -> list[ItemScan]:
    return list(session.scalars(select(ItemScan).where(ItemScan.item_id == item_id_hex,
                                                       ItemScan.at >= since)
                                .order_by(ItemScan.at, ItemScan.id)))


def count_scans(session: Session, item_id_hex: str, since: int) -> int:
    return int(session.scalar(select(func.count()).select_from(ItemScan).where(
        ItemScan.item_id == item_id_hex, ItemScan.at >= since)) or 0)


def event_at(session: Session, tx_hash: str, log_index: int) -> bool:
    return session.scalar(select(ItemEvent.id).where(ItemEvent.tx_hash == tx_hash,
                                                     ItemEvent.log_index == log_index)) is not None


def delete_after(session: Session, after_block: int) -> list[str]:
    """Drop the events (and per-item recall rows) of blocks after ``after_block`` (a reorg);
    give the items they touched, whose states the projection folds again from what is left."""
    touched = set(session.scalars(select(ItemEvent.item_id).where(
        ItemEvent.block_number > after_block).distinct()))
    touched.update(session.scalars(select(ItemRecall.item_id).where(
        ItemRecall.block_number > after_block).distinct()))
    session.execute(delete(ItemEvent).where(ItemEvent.block_number > after_block))
    session.execute(delete(ItemRecall).where(ItemRecall.block_number > after_block))
    return sorted(touched)


def states_of_batch(session: Session, chain_batch_id: int) -> list[ItemState]:
    """The indexed states of a chain batch's activated items."""
    return list(session.scalars(select(ItemState).where(
        ItemState.chain_batch_id == chain_batch_id)))


def latest_recall(session: Session, item_id_hex: str) -> ItemRecallNotice | None:
    """The notice of the latest recall that reached the item (batch or item recall)."""
    row = session.scalar(select(ItemRecall).where(ItemRecall.item_id == item_id_hex)
                         .order_by(ItemRecall.block_number.desc(), ItemRecall.id.desc())
                         .limit(1))
    return None if row is None else session.get(ItemRecallNotice, row.event_hash)


def claimed_by(session: Session, holder: str) -> list[ItemState]:
    """The items a wallet claimed (the claimer's address as the chain logged it)."""
    return list(session.scalars(select(ItemState).where(ItemState.claimed_by == holder)
                                .order_by(ItemState.block_number.desc())))


def batch_recall_notice(session: Session, chain_batch_id: int) -> ItemRecallNotice | None:
    """The notice of a chain batch's latest recall (from its ``batch_recalled`` event)."""
    h = session.scalar(select(ItemEvent.event_hash).where(
        ItemEvent.item_id == f"batch:{chain_batch_id}", ItemEvent.kind == "batch_recalled")
        .order_by(ItemEvent.block_number.desc(), ItemEvent.log_index.desc()).limit(1))
    return None if h is None else session.get(ItemRecallNotice, h)


def claim_event(session: Session, item_id_hex: str) -> ItemEvent | None:
    """The item's (first) ``claimed`` event."""
    return session.scalar(select(ItemEvent).where(ItemEvent.item_id == item_id_hex,
                                                  ItemEvent.kind == "claimed")
                          .order_by(ItemEvent.block_number, ItemEvent.log_index).limit(1))
