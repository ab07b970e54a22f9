"""The operator's admin actions (through the timelock): admissions, payout addresses."""

from __future__ import annotations

from pydantic import BaseModel

from .common import Address, Strict
from .merchants import MerchantCreate


class MerchantAdmission(MerchantCreate):
    """Admit a merchant (program, rate and payout address in one admin action). ``payout``:
    where the clearing pays it (default: a new address the service keeps)."""

    payout: Address | None = None


class PayoutUpdate(Strict):
    payout: Address


class AdminActionOut(BaseModel):
    """An admin action scheduled in the timelock, executable from ``ready_at`` (unix time)."""

    id: str
    kind: str
    summary: str
    ready_at: int
