"""Bodies of the points requests: issue, reverse, redeem, convert, refunds, cancellations."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from ledger import limits

from .common import (
    Address,
    MemberId,
    MerchantId,
    Nonce,
    OrderId,
    Points,
    RedeemPoints,
    Signature,
    Strict,
    UnixTime,
)

# An order's amount in minor units (offers2): the coupon book's order amounts are uint64 too.
Spend = Annotated[int, Field(strict=True, ge=0, le=limits.MAX_SPEND, examples=[12000])]

class IssueRequest(Strict):
    """Issue points for one of the merchant's orders, to a wallet or an alliance member id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        # Exactly one of member (a wallet) and member_id (null counts as absent).
        "oneOf": [{"required": ["member"], "properties": {"member": {"type": "string"}}},
                  {"required": ["member_id"],
                   "properties": {"member_id": {"type": "string"}}}],
        "examples": [
        {"member_id": "member-0001", "points": 120, "order_id": "POS-20261124-0001",
         "spend": 12000},
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "points": 50,
         "order_id": "WEB-778", "release_at": 1764604800}]})

    member: Address | None = Field(default=None, description="the member's wallet (or "
                                   "``member_id``, not both)")
    member_id: MemberId | None = Field(default=None, description="the alliance member id (or "
                                       "``member``, not both); never put on chain")
    points: Points
    order_id: OrderId
    release_at: UnixTime | None = Field(
        default=None, description="keep the points pending (refund window) until this time")
    spend: Spend | None = Field(
        default=None, description="what the order was worth, in minor units of the "
        "settlement currency (e.g. fen): kept off chain, for purchase offers defined in spend")


class IssueBatchRequest(Strict):
    """Many issue lines in one operation: they land in one transaction, all or none."""

    items: Annotated[list[IssueRequest], Field(min_length=1,
                                               max_length=limits.MAX_BATCH_ITEMS)]


class ReverseRequest(Strict):
    """Take back points an order issued (a refund)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"order_id": "POS-20261124-0001", "points": 60}]})

    order_id: OrderId
    points: Points


class RedeemRequest(Strict):
    """Relay a member's signed redemption (EIP-712 ``Redeem``; see README). With
    ``program_merchant_id`` the member spends another merchant's points here; the value
    clears between the two merchants in the same transaction."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "points": 30,
         "order_id": "CAFE-0001", "nonce": 0, "deadline": 1764000600,
         "signature": "0x" + "ab" * 65, "program_merchant_id": 1}]})

    member: Address
    points: RedeemPoints
    order_id: OrderId
    nonce: Nonce
    deadline: UnixTime
    signature: Signature
    program_merchant_id: MerchantId | None = Field(
        default=None, description="whose points (default: yours)")


class RedeemBatchRequest(Strict):
    """Many signed redemptions relayed at once: one operation per program they spend."""

    items: Annotated[list[RedeemRequest], Field(min_length=1,
                                                max_length=limits.MAX_BATCH_ITEMS)]


class ConvertRequest(Strict):
    """Relay a member's signed conversion (EIP-712 ``Convert``) of another merchant's points
    into yours: you take on the liability, that merchant owes you the value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "from_merchant_id": 1,
         "points": 100, "min_out": 40, "order_id": "CONV-0001", "nonce": 1,
         "deadline": 1764000600, "signature": "0x" + "ab" * 65}]})

    member: Address
    from_merchant_id: MerchantId
    points: RedeemPoints
    min_out: Annotated[int, Field(strict=True, ge=0, le=limits.MAX_POINTS)]
    order_id: OrderId
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class CancelSignaturesRequest(Strict):
    """Relay a member's signed ``CancelNonces`` (EIP-712; see README): nonces
    ``word_pos * 256 + b`` for each bit ``b`` set in ``mask`` can never be used, so signatures
    carrying them can never land. In ``program_merchant_id``'s program (default: yours)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "word_pos": 0,
         "mask": "0x6", "deadline": 1764000600, "signature": "0x" + "ab" * 65}]})

    member: Address
    word_pos: Annotated[int, Field(strict=True, ge=0, lt=limits.MAX_WORD_POS + 1)]
    mask: Annotated[str, Field(pattern=limits.MASK_PATTERN,
                               description="bits of the nonces to cancel, as 0x-hex")]
    deadline: UnixTime
    signature: Signature
    program_merchant_id: MerchantId | None = Field(
        default=None, description="whose program the nonces belong to (default: yours)")


class RefundRedemptionRequest(Strict):
    """Give back points a redemption took for one of your orders (within the refund window);
    a cleared redemption's value moves back."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"order_id": "CAFE-0001", "points": 10, "program_merchant_id": 1}]})

    order_id: OrderId
    points: RedeemPoints
    program_merchant_id: MerchantId | None = None
