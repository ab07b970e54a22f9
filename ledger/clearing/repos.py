"""The clearing read model: cleared acts and their lines, as the indexer found them on chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ..store.models import ClearedAct, ClearedLine
from ..store.tables import insert_new


@dataclass(frozen=True)
class ActRecord:
    """One ``Cleared`` act and the lines of its transaction that make it up, each a statement
    line without the side it is seen from (in log order)."""

    kind: str
    debtor: int
    creditor: int
    value: int
    lines: list[dict[str, Any]] = field(default_factory=list)


def insert_acts(session: Session, acts: Sequence[dict[str, Any]],
                lines: Sequence[dict[str, Any]]) -> int:
    """Insert acts and lines not seen before (a re-run adds nothing); give acts added.
    One cached statement each (``insert_new``: the multi-row VALUES this built per chunk was
    compiled anew for every chunk the indexer read, ~18% of an indexer round under 200-line
    redemption batches, holding the store's one writer); the lines, whose count no one reads,
    without RETURNING on either database."""
    added = insert_new(session, ClearedAct, acts, ("tx_hash", "log_index"))
    insert_new(session, ClearedLine, lines, ("tx_hash", "act_log_index", "log_index"),
               count=False)
    return added


def delete_after(session: Session, block: int) -> None:
    session.execute(delete(ClearedLine).where(ClearedLine.block_number > block))
    session.execute(delete(ClearedAct).where(ClearedAct.block_number > block))


def period_acts(session: Session, *, period: int,
                involving: int | None = None) -> list[ActRecord]:
    """The acts cleared in ``period`` (only those ``involving`` a merchant, if given), in
    chain order."""
    q = select(ClearedAct).where(ClearedAct.period == period)
    if involving is not None:
        q = q.where(or_(ClearedAct.debtor == involving, ClearedAct.creditor == involving))
    acts = list(session.scalars(q.order_by(ClearedAct.block_number, ClearedAct.log_index)))
    if not acts:
        return []
    out: dict[tuple[str, int], ActRecord] = {
        (a.tx_hash, a.log_index): ActRecord(a.kind, a.debtor, a.creditor, a.value)
        for a in acts}
    lines = session.scalars(select(ClearedLine).where(
        ClearedLine.tx_hash.in_({a.tx_hash for a in acts})).order_by(ClearedLine.log_index))
    for ln in lines:
        act = out.get((ln.tx_hash, ln.act_log_index))
        if act is None:
            continue
        act.lines.append({
            "kind": ln.kind, "tx_hash": ln.tx_hash, "block_number": ln.block_number,
            "log_index": ln.log_index, "points_of": ln.points_of,
            "accepted_by": ln.accepted_by, "order_ref": ln.order_ref, "points": ln.points,
            "rate": ln.rate, "value": ln.value})
    return list(out.values())
