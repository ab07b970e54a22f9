"""The indexer's cursors: the last block (and its hash) each follower has read.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..store.models import IndexerCursor


def get_cursor(session: Session, name: str) -> tuple[int, str] | None:
    row = session.get(IndexerCursor, name)
    return None if row is None else (row.last_block, row.last_block_hash)


def set_cursor(session: Session, name: str, block: int, block_hash: str) -> None:
    row = session.get(IndexerCursor, name)
    if row is None:
        session.add(IndexerCursor(name=name, last_block=block, last_block_hash=block_hash))
    else:
        row.last_block, row.last_block_hash = block, block_hash
