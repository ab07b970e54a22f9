"""What the web console's JSON routes answer (``/console/api``)."""

from __future__ import annotations

from pydantic import BaseModel


class ConsoleFeatures(BaseModel):
    """Panels this build can show (webhooks: once the webhooks API is part of the service)."""

    webhooks: bool


class ConsoleSessionOut(BaseModel):
    """The signed-in key: a merchant's (``merchant``) or the operator's (``admin``)."""

    key_id: str
    role: str
    merchant_id: int | None
    merchant_name: str | None
    expires_at: int
    features: ConsoleFeatures


class DayFiguresOut(BaseModel):
    merchant_id: int
    name: str
    issued: int
    redeemed: int
    foreign_accepted: int
    issues: int
    redemptions: int


class FiguresOut(BaseModel):
    """Today's figures (points) of the merchants the session may see."""

    day_start: int
    as_of_block: int
    merchants: list[DayFiguresOut]


class PeriodRowOut(BaseModel):
    """One clearing period as the session sees it (a merchant: its own position)."""

    period: int
    closed_at: int | None
    merchant_id: int | None
    net: int
    foreign_accepted: int
    paid: int
    received: int
    outstanding: int
    total_owed: int
