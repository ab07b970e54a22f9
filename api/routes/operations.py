"""Operations: the progress of what a merchant queued."""

from __future__ import annotations

from fastapi import APIRouter

from ledger.outbox import views as operations

from ..deps import AllianceDep, AnyPrincipalDep
from ..schemas.common import OperationIdPath, OperationOut
from .points import operation_out

router = APIRouter(prefix="/v1/operations", tags=["operations"])


@router.get("/{operation_id}", response_model=OperationOut)
def get_operation(operation_id: OperationIdPath, alliance: AllianceDep, who: AnyPrincipalDep
                  ) -> OperationOut:
    """queued, submitted, confirmed (with tx hash and block) or failed (with the reason).
    A merchant sees only its own operations."""
    view = operations.get_operation(alliance, operation_id=operation_id,
                                merchant_id=None if who.role == "admin" else who.merchant_id)
    return OperationOut.model_validate(operation_out(view))
