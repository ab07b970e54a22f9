"""Operations as their merchant sees them: what was asked, where it is, what the chain said."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..alliance import Alliance
from ..errors import LedgerNotFoundError, LedgerPermissionError
from ..store.models import OperationStatus
from . import repos as outbox_repos


@dataclass(frozen=True)
class OperationView:
    """An outbox operation as a merchant sees it."""

    id: str
    kind: str
    status: OperationStatus
    merchant_id: int
    items: int
    tx_hash: str | None
    block_number: int | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime



def get_operation(alliance: Alliance, *, operation_id: str, merchant_id: int | None
                  ) -> OperationView:
    """An operation's status; a merchant may only see its own (``None``: the operator)."""
    with alliance.store.read_session() as s:
        op = outbox_repos.get_operation(s, operation_id)
        if op is None:
            raise LedgerNotFoundError(f"no operation {operation_id}")
        if merchant_id is not None and op.merchant_id != merchant_id:
            raise LedgerPermissionError("that operation belongs to another merchant")
        return operation_view(op)


def operation_view(op: outbox_repos.OperationRow) -> OperationView:
    payload = op.payload or {}
    items = len(payload.get("items", [])) if "items" in payload else 1
    return OperationView(id=op.id, kind=op.kind, status=OperationStatus(op.status),
                         merchant_id=op.merchant_id,
                         items=items, tx_hash=op.tx_hash, block_number=op.block_number,
                         error_code=op.error_code, error_message=op.error_message,
                         created_at=op.created_at, updated_at=op.updated_at)
