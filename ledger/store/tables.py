"""The Core table of a mapped class, typed as a :class:`~sqlalchemy.Table`.

Bulk writes of the indexer go through Core statements on the table: the ORM's bulk insert
of a mapped class builds an insert command per row, which under load cost a third of a
follower round."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from .models import Base


def table_of(model: type[Base]) -> Table:
    """The table ``model`` is mapped to."""
    return cast(Table, model.__table__)
