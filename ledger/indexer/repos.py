"""The indexer's cursors: the last block (and its hash) each follower has read; and the
blocks it read up to, with their hashes, to find where a reorganised chain forked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..store.models import IndexedBlock, IndexerCursor, Merchant
from ..store.tables import insert_for, table_of


def get_cursor(session: Session, name: str) -> tuple[int, str] | None:
    row = session.get(IndexerCursor, name)
    return None if row is None else (row.last_block, row.last_block_hash)


def get_cursors(session: Session, names: Iterable[str]) -> dict[str, tuple[int, str] | None]:
    """The cursors of ``names`` in one query (None: nothing read yet)."""
    wanted = list(names)
    found = {str(n): (int(b), str(h)) for n, b, h in session.execute(
        select(IndexerCursor.name, IndexerCursor.last_block, IndexerCursor.last_block_hash)
        .where(IndexerCursor.name.in_(wanted)))}
    return {n: found.get(n) for n in wanted}


def set_cursors(session: Session, names: Iterable[str], block: int, block_hash: str) -> None:
    """Move the cursors of ``names`` to ``block`` in one statement (an upsert: the follower
    moves every projection's cursor once per chunk of blocks)."""
    rows = [{"name": n, "last_block": block, "last_block_hash": block_hash} for n in names]
    if not rows:
        return
    insert_fn = insert_for(session)
    stmt = insert_fn(table_of(IndexerCursor))
    session.flush()
    session.connection().execute(stmt.on_conflict_do_update(
        index_elements=["name"], set_={"last_block": stmt.excluded.last_block,
                                       "last_block_hash": stmt.excluded.last_block_hash}),
        rows)


def set_cursor(session: Session, name: str, block: int, block_hash: str) -> None:
    row = session.get(IndexerCursor, name)
    if row is None:
        session.add(IndexerCursor(name=name, last_block=block, last_block_hash=block_hash))
    else:
        row.last_block, row.last_block_hash = block, block_hash


# note_block forgets the blocks below its window only when the block it notes is a multiple
# of this: a DELETE each round cost as much as the note itself (at most this many more blocks
# than ``keep`` stay noted; the rewind only looks at the newest few hundred).
FORGET_EVERY = 256


def note_block(session: Session, number: int, block_hash: str, *, keep: int) -> None:
    """Note a block read up to and its hash (one cached upsert on the table: the ORM's merge
    read the row first, every round); forget those more than ``keep`` blocks below, every
    :data:`FORGET_EVERY` blocks."""
    stmt = insert_for(session)(table_of(IndexedBlock))
    session.flush()
    session.connection().execute(stmt.on_conflict_do_update(
        index_elements=["number"], set_={"hash": stmt.excluded.hash}),
        {"number": number, "hash": block_hash})
    if number % FORGET_EVERY == 0:
        session.execute(delete(IndexedBlock).where(IndexedBlock.number < number - keep))


def noted_blocks(session: Session, *, at_most: int, limit: int) -> list[tuple[int, str]]:
    """The highest ``limit`` blocks noted at or below ``at_most``, highest first."""
    return [(int(n), str(h)) for n, h in session.execute(
        select(IndexedBlock.number, IndexedBlock.hash).where(IndexedBlock.number <= at_most)
        .order_by(IndexedBlock.number.desc()).limit(limit))]


def forget_blocks_after(session: Session, number: int) -> None:
    """Forget the blocks noted above ``number`` (a chain that forked there replaced them)."""
    session.execute(delete(IndexedBlock).where(IndexedBlock.number > number))


def round_merchants(session: Session) -> list[Merchant]:
    """The admitted merchants, read once per transaction of ``session``: a round's
    projections each asked for them (four ``follows`` and three ``apply`` a round, seven
    queries where two do). Projections only read them; a new transaction reads them again."""
    txn = session.get_transaction()
    found = session.info.get(_MERCHANTS)
    if found is not None and txn is not None and found[0] is txn:
        return cast(list[Merchant], found[1])
    rows = list(session.scalars(select(Merchant).order_by(Merchant.id)))
    txn = session.get_transaction()  # the query began it, if none was open
    session.info[_MERCHANTS] = (txn, rows)
    return rows


_MERCHANTS = "indexer.round_merchants"
