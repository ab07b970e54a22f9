"""A merchant as the API shows it, and the bodies that admit one or change its rate."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from ledger import limits

from .common import Strict

Rate = Annotated[int, Field(strict=True, ge=1, le=limits.MAX_RATE,
                            description="settlement units per point", examples=[5])]


class MerchantCreate(Strict):
    """Admit a merchant: its program is created and its credentials returned once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Starlight Cinema", "symbol": "STAR", "rate": 5}]})

    name: Annotated[str, Field(min_length=1, max_length=limits.MAX_NAME_LENGTH)]
    symbol: Annotated[str, Field(pattern=limits.SYMBOL_PATTERN)]
    rate: Rate
    expiry_periods: Annotated[int, Field(strict=True, ge=0,
                                         le=limits.MAX_EXPIRY_PERIODS)] = 0
    period_days: Annotated[int, Field(strict=True, ge=1, le=limits.MAX_PERIOD_DAYS)] = 30
    max_pending_days: Annotated[int, Field(strict=True, ge=0,
                                           le=limits.MAX_PENDING_DAYS)] = 30


class RateUpdate(Strict):
    rate: Rate


class MerchantOut(BaseModel):
    merchant_id: int
    name: str
    status: str
    account: str
    program: str | None
    rate: int
    payout: str | None = None


class MerchantCreated(MerchantOut):
    key_id: str
    secret: str = Field(description="shown once; store it now")
