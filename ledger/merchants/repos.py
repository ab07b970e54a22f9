"""The store's merchants: who was admitted, with which account, program and signing key.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import LedgerNotFoundError
from ..store.models import Merchant

MerchantRow = Merchant


def add_merchant(session: Session, *, merchant_id: int, name: str, account: str,
                 program: str | None, signing_key: bytes) -> Merchant:
    """Record a merchant admitted on chain; ``signing_key`` is already encrypted."""
    row = Merchant(id=merchant_id, name=name, status="active", account_address=account,
                   program_address=program, signing_key_enc=signing_key)
    session.add(row)
    session.flush()
    return row


def get_merchant(session: Session, merchant_id: int) -> Merchant | None:
    return session.get(Merchant, merchant_id)


def list_merchants(session: Session) -> list[Merchant]:
    return list(session.scalars(select(Merchant).order_by(Merchant.id)))


def set_merchant_status(session: Session, merchant_id: int, status: str) -> None:
    row = session.get(Merchant, merchant_id)
    if row is None:
        raise LedgerNotFoundError(f"no merchant {merchant_id}")
    row.status = status


def set_merchant_program(session: Session, merchant_id: int, program: str) -> None:
    """Record the address of the merchant's point program once it is deployed."""
    row = session.get(Merchant, merchant_id)
    if row is None:
        raise LedgerNotFoundError(f"no merchant {merchant_id}")
    row.program_address = program
