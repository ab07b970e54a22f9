"""The member's membership cards and tiers, as the member app shows them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TierStepOut(BaseModel):
    level: int
    name: str
    min_points: int
    window_days: int
    multiplier_bps: int
    reached: bool


class MyCardOut(BaseModel):
    token_id: str
    tier: int
    tier_name: str | None
    expires_at: int
    status: str = Field(description="valid or expired, at the chain's time")


class StandingOut(BaseModel):
    merchant_id: int = Field(description="0: the alliance-wide tiers")
    merchant_name: str | None
    card: MyCardOut | None
    level: int = Field(description="the tier reached; 0: none yet")
    tier_name: str | None
    multiplier_bps: int
    points_in_window: int | None = Field(
        description="points earned over the tiers' window (null: the tiers count different "
                    "windows)")
    next_needed: int | None = Field(description="points the next tier still needs")
    tiers: list[TierStepOut]


class MyStandingOut(BaseModel):
    scopes: list[StandingOut]
