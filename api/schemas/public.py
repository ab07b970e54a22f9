"""What the public routes answer: the alliance and its programs as a wallet signs for them,
and a member's nonces."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Eip712Field(BaseModel):
    name: str
    type: str


class PublicProgramOut(BaseModel):
    """A program: where to sign for it (its EIP-712 domain) and what a point is worth."""

    merchant_id: int
    merchant_name: str
    status: str
    program: str
    symbol: str
    rate: int = Field(description="settlement units per point")
    domain: dict[str, Any] = Field(description="the EIP-712 domain the program verifies "
                                   "(name, version, chainId, verifyingContract, salt)")


class PublicAllianceOut(BaseModel):
    chain_id: int
    registry: str
    settlement_unit: str
    max_deadline_ahead_s: int = Field(description="the latest deadline a signature may carry, "
                                      "in seconds after the chain's current time")
    programs: list[PublicProgramOut]
    types: dict[str, list[Eip712Field]]


class NoncesOut(BaseModel):
    merchant_id: int
    program: str
    member: str
    nonce: int | None = Field(description="the nonce asked about (?nonce=)")
    used: bool | None = Field(description="whether that nonce is spent or cancelled")
    suggested: list[int] = Field(description="unused nonces: one per payment signed at once")
