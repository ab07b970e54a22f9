"""A member's balances and history, as a merchant or the operator reads them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class LotOut(BaseModel):
    period: int
    points: int
    expires_at: int | None = Field(description="unix time the lot expires (null: never)")


class ReleaseOut(BaseModel):
    order_ref: str | None
    points: int
    release_at: int = Field(description="unix time the pending points become spendable")


class ProgramBalanceOut(BaseModel):
    """``balance`` (ERC-20 ``balanceOf``, what the Transfer logs say) = ``spendable`` +
    ``pending`` + ``expired`` (expired, not swept yet)."""

    merchant_id: int
    merchant_name: str
    program: str
    symbol: str
    balance: int
    spendable: int
    pending: int
    expired: int
    releases: list[ReleaseOut]
    lots: list[LotOut]
    next_nonce: int = Field(description="an unused signature nonce (nonces are unordered)")


class BalancesOut(BaseModel):
    member: str
    programs: list[ProgramBalanceOut]
    as_of_block: int = Field(description="the block every program's views were read at")


class HistoryOut(BaseModel):
    member: str
    events: list[dict[str, Any]]
    next_cursor: int | None
    as_of_block: int | None = Field(
        default=None, description="the block the indexed history reflects (None: not yet "
                                  "indexed)")
