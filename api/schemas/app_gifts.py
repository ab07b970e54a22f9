"""Gifts in the member app: the catalogue as the member sees it, a gift's quote (what to
sign), the signed redemption and where it is."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .common import Nonce, Signature, UnixTime
from .members import SignRequestOut

RequestId = Annotated[str, Field(pattern=r"^app-[0-9a-f]{24}$",
                                 description="the quote's request id")]


class CatalogueGiftOut(BaseModel):
    gift_id: int
    merchant_id: int = Field(description="the shop whose points pay (and who hands it over)")
    merchant_name: str
    name: str
    points: int = Field(description="price in points of the shop's program")
    value: int | None = Field(description="the gift coupon's face value, settlement units")
    left: int
    per_member_limit: int = Field(description="0: no limit")
    taken: int = Field(description="how many of this gift the member had (failed ones not)")
    my_points: int = Field(description="the member's spendable points of the shop's program")
    available: str = Field(description="ok, out_of_stock, member_limit, "
                                       "insufficient_points or paused")


class CatalogueOut(BaseModel):
    gifts: list[CatalogueGiftOut]


class GiftQuoteOut(SignRequestOut):
    gift_id: int
    request_id: str


class GiftRedeemSigned(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: RequestId
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class MyGiftRedemptionOut(BaseModel):
    gift_id: int
    gift_name: str
    merchant_name: str
    request_id: str
    points: int
    status: str = Field(description="paying, granting, done or failed")
    error_code: str | None
    tx_hash: str | None
    created_at: int = Field(description="when the member asked for it, unix seconds")


class MyGiftRedemptionsOut(BaseModel):
    redemptions: list[MyGiftRedemptionOut]
