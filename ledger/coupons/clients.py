"""The typed client of the CouponBook."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..contracts.client import ContractClient
from ..errors import ChainError

# A coupon id packs campaign << 72 | granted_at << 32 | serial (see ICouponBook).
CAMPAIGN_SHIFT = 72
GRANTED_AT_SHIFT = 32


class CouponKind(IntEnum):
    """What a coupon gives (ICouponBook.Kind)."""

    FIXED_OFF = 1
    PERCENT_OFF = 2
    GIFT = 3


class Refusal(IntEnum):
    """Why ``validate`` says a coupon would not apply (ICouponBook.Refusal)."""

    NONE = 0
    USED = 1
    PAUSED = 2
    NOT_YET_VALID = 3
    EXPIRED = 4
    NOT_ACCEPTED = 5
    UNDER_MINIMUM_SPEND = 6
    BUDGET_EXHAUSTED = 7
    ISSUER_SUSPENDED = 8
    ACCEPTOR_SUSPENDED = 9
    ORDER_HAS_COUPON = 10


@dataclass(frozen=True)
class CampaignTerms:
    """A campaign's terms as its issuer sets them (ICouponBook.Terms)."""

    issuer: int
    kind: CouponKind
    value: int
    budget: int
    max_discount: int = 0
    min_spend: int = 0
    starts_at: int = 0
    ends_at: int = 0
    valid_days: int = 0
    supply_cap: int = 0
    per_member_cap: int = 0
    transferable: bool = True
    stackable: bool = False
    all_merchants: bool = False
    acceptors: tuple[int, ...] = ()

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.issuer, int(self.kind), self.value, self.max_discount, self.min_spend,
                self.starts_at, self.ends_at, self.valid_days, self.supply_cap,
                self.per_member_cap, self.budget, self.transferable, self.stackable,
                self.all_merchants, list(self.acceptors))


@dataclass(frozen=True)
class CampaignState:
    """A campaign as the CouponBook stores it."""

    issuer: int
    kind: CouponKind
    transferable: bool
    stackable: bool
    all_merchants: bool
    paused: bool
    starts_at: int
    ends_at: int
    valid_days: int
    supply_cap: int
    per_member_cap: int
    value: int
    max_discount: int
    min_spend: int
    granted: int
    budget: int
    budget_used: int


def campaign_of(coupon_id: int) -> int:
    """The campaign a coupon id belongs to."""
    return coupon_id >> CAMPAIGN_SHIFT


def granted_at_of(coupon_id: int) -> int:
    """When the coupon was granted (unix seconds), from its id."""
    return (coupon_id >> GRANTED_AT_SHIFT) & ((1 << 40) - 1)


def serial_of(coupon_id: int) -> int:
    return coupon_id & 0xFFFFFFFF


@dataclass(frozen=True)
class RedeemReads:
    """What a redemption request checks on chain, read in one round trip: the latest block's
    time, the coupon's holder (None: no such coupon, or the read failed), whether the nonce
    of ``nonce_of`` is used (None: not asked), and what ``validate`` says."""

    now: int
    holder: str | None
    nonce_of: str | None
    nonce_used: bool | None
    refusal: Refusal
    discount: int


class CouponBookClient(ContractClient):
    """The CouponBook: campaigns, coupons, vouchers."""

    def _call_params(self, fn: str, *args: Any) -> tuple[str, list[Any]]:
        return ("eth_call", [{"to": self.address, "data": "0x" + self.encode(fn, *args).hex()},
                             "latest"])

    def redeem_reads(self, *, coupon_id: int, acceptor: int, order_ref: bytes,
                     order_amount: int, nonce: int, holder_guess: str | None
                     ) -> RedeemReads | None:
        """The chain reads of a redemption request as one JSON-RPC batch (one round trip
        instead of four): latest block, ``ownerOf``, ``validate`` and, for ``holder_guess``
        (the read model's holder), its nonce bit. None if any read failed (the caller reads
        again one by one, which names the failure)."""
        calls = [("eth_getBlockByNumber", ["latest", False]),
                 self._call_params("ownerOf", coupon_id),
                 self._call_params("validate", coupon_id, acceptor, order_ref, order_amount)]
        if holder_guess is not None:
            calls.append(self._call_params("nonceBitmap", holder_guess, nonce >> 8))
        res = self.gateway.rpc_batch(calls)
        if any(isinstance(r, ChainError) or r is None for r in res):
            return None
        now = int(res[0]["timestamp"], 16)
        (owner,) = self.gateway.decode_output(self.abi, "ownerOf", bytes.fromhex(res[1][2:]))
        refusal, discount = self.gateway.decode_output(self.abi, "validate",
                                                       bytes.fromhex(res[2][2:]))
        used: bool | None = None
        if holder_guess is not None:
            (bits,) = self.gateway.decode_output(self.abi, "nonceBitmap",
                                                 bytes.fromhex(res[3][2:]))
            used = bool(int(bits) >> (nonce & 0xFF) & 1)
        return RedeemReads(now, str(owner), holder_guess, used, Refusal(int(refusal)),
                           int(discount))

    def campaign(self, campaign_id: int, *, block: str | int = "latest") -> CampaignState:
        raw = self.view1("campaign", campaign_id, block=block)
        (issuer, kind, transferable, stackable, all_m, paused, starts, ends, days, supply,
         per_member, value, max_discount, min_spend, granted, budget, used) = raw
        return CampaignState(int(issuer), CouponKind(int(kind)), bool(transferable),
                             bool(stackable), bool(all_m), bool(paused), int(starts), int(ends),
                             int(days), int(supply), int(per_member), int(value),
                             int(max_discount), int(min_spend), int(granted), int(budget),
                             int(used))

    def campaign_count(self) -> int:
        return int(self.view1("campaignCount"))

    def owner_of(self, coupon_id: int) -> str:
        return str(self.view1("ownerOf", coupon_id))

    def is_used(self, coupon_id: int) -> bool:
        return bool(self.view1("isUsed", coupon_id))

    def validate(self, *, coupon_id: int, acceptor: int, order_ref: bytes,
                 order_amount: int) -> tuple[Refusal, int]:
        refusal, discount = self.view("validate", coupon_id, acceptor, order_ref, order_amount)
        return Refusal(int(refusal)), int(discount)

    def redeem_digest(self, *, holder: str, coupon_id: int, acceptor: int, order_ref: bytes,
                      order_amount: int, nonce: int, deadline: int) -> bytes:
        return bytes(self.view1("redeemDigest", holder, (coupon_id, acceptor, order_ref,
                                                         order_amount, nonce, deadline)))

    def voucher_digest(self, *, campaign_id: int, voucher_id: int, expires_at: int) -> bytes:
        return bytes(self.view1("voucherDigest", (campaign_id, voucher_id, expires_at)))

    def voucher_state(self, campaign_id: int, voucher_id: int) -> int:
        return int(self.view1("voucherState", campaign_id, voucher_id))

    def redemption_of(self, coupon_id: int, *, acceptor: int,
                      order_ref: bytes) -> tuple[int, int, int, int]:
        """(acceptor, redeemed at, discount, order tag) of the coupon's redemption at
        ``acceptor`` for ``order_ref``; redeemed at 0: none."""
        acceptor, at, discount, tag = self.view1("redemptionOf", coupon_id, acceptor, order_ref)
        return int(acceptor), int(at), int(discount), int(tag)

    def order_state(self, acceptor: int, order_ref: bytes) -> int:
        """The order's slot (exclusive bit, coupon count, its first coupon's record)."""
        return int(self.view1("orderState", acceptor, order_ref))

    def last_redeemed_at(self, coupon_id: int, *, from_block: int) -> int | None:
        """The merchant that last redeemed the coupon (its ``CouponRedeemed`` logs), if any."""
        topic = "0x" + self.gateway.event_topic(self.abi, "CouponRedeemed").hex()
        logs = self.gateway.get_logs(address=self.address, from_block=from_block,
                                     to_block=self.gateway.block_number(),
                                     topics=[topic, "0x" + coupon_id.to_bytes(32, "big").hex()])
        found = [int(a["acceptor"]) for n, a, _ in self.decode_logs(logs)
                 if n == "CouponRedeemed"]
        return found[-1] if found else None
