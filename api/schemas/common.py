"""Shared field types, path and query parameters, and the operation a mutation answers with.

Every path and query parameter is bounded here, so nothing unbounded reaches the database
(SQLite integers are 64-bit) or the ABI encoder. tests/api check the OpenAPI document: an
integer parameter without both bounds fails the suite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ledger import limits, types

ADDRESS = limits.ADDRESS_PATTERN
ADDRESS_EXAMPLE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

# ---------------------------------------------------------------------- body fields

Points = Annotated[int, Field(strict=True, ge=1, le=limits.MAX_POINTS, examples=[120])]
RedeemPoints = Annotated[int, Field(strict=True, ge=1, le=limits.MAX_REDEEM_POINTS,
                                    examples=[30])]
Address = Annotated[str, Field(pattern=ADDRESS, examples=[ADDRESS_EXAMPLE])]
OrderId = Annotated[str, Field(pattern=limits.ORDER_ID_PATTERN,
                               examples=["POS-20261124-0001"])]
# Printable text only: no control characters (they end up in logs and in exports).
MemberId = Annotated[str, Field(min_length=1, max_length=limits.MAX_MEMBER_ID_LENGTH,
                                pattern=limits.MEMBER_ID_PATTERN, examples=["member-0001"])]
UnixTime = Annotated[int, Field(strict=True, ge=0, le=limits.MAX_UNIX_TIME,
                                examples=[1764000000])]
# Bounds past 2^53 are given exclusive, as a power of two: JSON Schema numbers are doubles,
# and 2^64 - 1 would round up to 2^64 (a client generating "the maximum" would be refused).
Nonce = Annotated[int, Field(strict=True, ge=0, lt=limits.MAX_NONCE + 1)]
Signature = Annotated[str, Field(pattern=limits.SIGNATURE_PATTERN)]
MerchantId = Annotated[types.MerchantId, Field(strict=True, ge=1, le=limits.MAX_ID, examples=[2])]
Amount = Annotated[int, Field(strict=True, ge=1, le=limits.MAX_VALUE, examples=[12_000])]

# ---------------------------------------------------------------------- path and query

MAX_ID = limits.MAX_ID
AddressPath = Annotated[str, Path(pattern=ADDRESS, examples=[ADDRESS_EXAMPLE])]
MerchantIdPath = Annotated[types.MerchantId, Path(ge=1, le=limits.MAX_ID, examples=[2])]
PeriodPath = Annotated[int, Path(ge=1, le=limits.MAX_ID, examples=[1])]
PeriodQuery = Annotated[int | None, Query(ge=1, le=limits.MAX_ID)]
Cursor = Annotated[int | None, Query(ge=0, le=limits.MAX_CURSOR,
                                     description="``next_cursor`` of the previous page")]
OperationIdPath = Annotated[str, Path(min_length=1, max_length=64,
                                      pattern=r"^[A-Za-z0-9_-]{1,64}$")]
NonceQuery = Annotated[int | None, Query(ge=0, le=limits.MAX_NONCE)]
HistoryLimit = Annotated[int, Query(ge=1, le=limits.MAX_HISTORY_LIMIT)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- operations


class OperationOut(BaseModel):
    """An operation's progress: queued → submitted → confirmed, or failed with a reason."""

    id: str
    kind: str
    status: str
    merchant_id: int
    items: int
    tx_hash: str | None
    block_number: int | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime


class OperationsOut(BaseModel):
    operations: list[OperationOut]
