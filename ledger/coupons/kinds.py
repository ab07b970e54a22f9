"""The coupon book's operation kinds: campaign create / pause / resume, grant (one or a
batch, one ``grantBatch`` call), redeem, rollback, voucher claim and cancel. Each is sent
alone, to the coupon book, by the merchant whose account the contract requires (the issuer,
or for redeem and rollback the acceptor); see :mod:`ledger.outbox.kinds`."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from ..deployment import Contracts
from ..errors import LedgerConfigError, LedgerValidationError
from ..outbox.kinds import (
    AddressField,
    AnyBytes,
    Call,
    JsonPayload,
    Many,
    OperationKind,
    Uint,
    Uint256,
    hex_bytes,
    parse_hex,
)
from .clients import CampaignTerms, CouponBookClient, CouponKind

# Gas bounds, above what each call was measured to take (scripts/bench_coupons.py: a grant
# in a batch ~48k a coupon, a redemption 135-200k; a campaign with a few acceptors ~150k).
GAS_CREATE_CAMPAIGN = 400_000
GAS_PER_ACCEPTOR = 25_000
GAS_PAUSE = 80_000
GAS_GRANT_BASE = 80_000
# A coupon of a batch grant costs 47,695 gas (scripts/bench_coupons.py: owner and balance
# slots, Transfer); a campaign with a per-member cap writes the member's count slot too. The
# bound is the transaction's gas limit: at 75k a coupon a batch of 1,000 asked for 75M, past
# anvil's 60M block, and never landed.
GAS_PER_GRANT = 52_000
GAS_PER_GRANT_CAPPED = 75_000
GAS_REDEEM = 320_000
# A batch of redemptions (``redeemBatch``): the array headers over the lines' own bounds.
GAS_REDEEM_BATCH_BASE = 40_000
GAS_ROLLBACK = 200_000
GAS_CLAIM_VOUCHER = 250_000
GAS_CANCEL_VOUCHER = 80_000
# A revoke (a burn: owner and balance slots, the registry's account check) measured ~40k.
GAS_REVOKE = 90_000
# moveCoupons, measured on anvil: 86,211 gas for one coupon (signature, the relayer's registry
# check, the wallet's new balance slot), 158,728 for nine (~9.1k a further coupon: owner slot,
# approval, Transfer). A per-member-capped campaign adds the wallet's count slot (~22k) once.
GAS_MOVE_COUPONS_BASE = 120_000
GAS_PER_MOVED_COUPON = 40_000
# The coupons one claim's move carries (a custodial account holds few; the contract takes 2000).
MAX_MOVED_COUPONS = 200


def book(contracts: Contracts) -> CouponBookClient:
    """The deployment's coupon book (a deployment recorded before coupons has none)."""
    if contracts.coupons is None:
        raise LedgerConfigError("this deployment has no coupon book; deploy anew to use coupons")
    return contracts.coupons


def _uint(value: Any, field: str, bits: int = 256) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise LedgerValidationError(f"{field} must be an integer of 0 to 2^{bits} - 1",
                                    field=field)
    return value


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise LedgerValidationError(f"{field} must be an address", field=field)
    return value


# ---------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class CreateCampaignPayload:
    """A campaign's terms (see :class:`~ledger.coupons.clients.CampaignTerms`)."""

    terms: CampaignTerms

    def to_json(self) -> dict[str, Any]:
        t = self.terms
        return {"issuer": t.issuer, "kind": int(t.kind), "value": t.value, "budget": t.budget,
                "max_discount": t.max_discount, "min_spend": t.min_spend,
                "starts_at": t.starts_at, "ends_at": t.ends_at, "valid_days": t.valid_days,
                "supply_cap": t.supply_cap, "per_member_cap": t.per_member_cap,
                "transferable": t.transferable, "stackable": t.stackable,
                "all_merchants": t.all_merchants, "acceptors": list(t.acceptors)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CreateCampaignPayload:
        d = dict(data)
        d["kind"] = CouponKind(d["kind"])
        d["acceptors"] = tuple(d["acceptors"])
        return cls(CampaignTerms(**d))


@dataclass(frozen=True)
class PausePayload:
    campaign_id: int
    paused: bool

    def __post_init__(self) -> None:
        _uint(self.campaign_id, "campaign_id", 64)

    def to_json(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "paused": self.paused}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PausePayload:
        return cls(data["campaign_id"], bool(data["paused"]))


@dataclass(frozen=True)
class GrantPayload:
    """Coupons of one campaign, one to each member, in one ``grantBatch`` call."""

    campaign_id: int
    members: tuple[str, ...]
    # Whether the campaign counts grants per member (a slot more a coupon); payloads stored
    # before this field take the higher bound.
    member_capped: bool = True

    def __post_init__(self) -> None:
        _uint(self.campaign_id, "campaign_id", 64)
        if not self.members:
            raise LedgerValidationError("a grant needs at least one member", field="members")
        for m in self.members:
            _address(m, "members")

    def to_json(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "items": list(self.members),
                "member_capped": self.member_capped}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GrantPayload:
        return cls(data["campaign_id"], tuple(data["items"]),
                   bool(data.get("member_capped", True)))

    @property
    def gas(self) -> int:
        """The gas bound of this grant's transaction."""
        per = GAS_PER_GRANT_CAPPED if self.member_capped else GAS_PER_GRANT
        return GAS_GRANT_BASE + per * len(self.members)


@dataclass(frozen=True)
class RedeemPayload:
    """A holder's signed redemption, relayed by the acceptor."""

    coupon_id: int
    acceptor: int
    order_id: str
    order_ref: bytes
    order_amount: int
    nonce: int
    deadline: int
    signature: bytes

    def __post_init__(self) -> None:
        _uint(self.coupon_id, "coupon_id")
        _uint(self.order_amount, "order_amount", 64)
        _uint(self.nonce, "nonce")
        _uint(self.deadline, "deadline", 64)

    def to_json(self) -> dict[str, Any]:
        return {"coupon_id": str(self.coupon_id), "acceptor": self.acceptor,
                "order_id": self.order_id, "order_ref": hex_bytes(self.order_ref),
                "order_amount": self.order_amount, "nonce": str(self.nonce),
                "deadline": self.deadline, "signature": hex_bytes(self.signature)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RedeemPayload:
        return cls(int(data["coupon_id"]), data["acceptor"], data["order_id"],
                   parse_hex(data["order_ref"], "order_ref", size=32), data["order_amount"],
                   int(data["nonce"]), data["deadline"],
                   parse_hex(data["signature"], "signature"))


@dataclass(frozen=True)
class RollbackPayload:
    coupon_id: int
    order_id: str
    order_ref: bytes

    def to_json(self) -> dict[str, Any]:
        return {"coupon_id": str(self.coupon_id), "order_id": self.order_id,
                "order_ref": hex_bytes(self.order_ref)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RollbackPayload:
        return cls(int(data["coupon_id"]), data["order_id"],
                   parse_hex(data["order_ref"], "order_ref", size=32))


@dataclass(frozen=True)
class ClaimVoucherPayload:
    campaign_id: int
    voucher_id: int
    expires_at: int
    to: str
    signature: bytes

    def __post_init__(self) -> None:
        _address(self.to, "to")

    def to_json(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "voucher_id": str(self.voucher_id),
                "expires_at": self.expires_at, "to": self.to,
                "signature": hex_bytes(self.signature)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClaimVoucherPayload:
        return cls(data["campaign_id"], int(data["voucher_id"]), data["expires_at"],
                   data["to"], parse_hex(data["signature"], "signature"))


@dataclass(frozen=True)
class CancelVoucherPayload:
    campaign_id: int
    voucher_id: int

    def to_json(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "voucher_id": str(self.voucher_id)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CancelVoucherPayload:
        return cls(data["campaign_id"], int(data["voucher_id"]))


@dataclass(frozen=True)
class RevokePayload:
    """An unused coupon its issuer takes back (``revokeUnused``: a burn)."""

    coupon_id: int

    def __post_init__(self) -> None:
        _uint(self.coupon_id, "coupon_id")

    def to_json(self) -> dict[str, Any]:
        return {"coupon_id": str(self.coupon_id)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RevokePayload:
        return cls(int(data["coupon_id"]))


@dataclass(frozen=True)
class MoveCouponsPayload(JsonPayload):
    """``coupon_move``: the coupons ``coupon_ids`` of the custodial ``account`` move to the
    member's ``wallet`` (issue 12's claim), authorised by the custodial key's signature
    (EIP-712 ``CouponMove``), relayed by the merchant that issued the link code."""

    account: AddressField
    wallet: AddressField
    coupon_ids: Annotated[tuple[int, ...], Many(Uint(as_hex=True), least=1,
                                                empty="a coupon move names a coupon")]
    deadline: Uint256
    signature: AnyBytes


# ---------------------------------------------------------------------- kinds


class CreateCampaignKind(OperationKind[CreateCampaignPayload]):
    payload_type = CreateCampaignPayload

    def gas_bound(self, payloads: Sequence[CreateCampaignPayload]) -> int:
        return GAS_CREATE_CAMPAIGN + GAS_PER_ACCEPTOR * len(payloads[0].terms.acceptors)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[CreateCampaignPayload]) -> Call:
        (p,) = payloads
        b = book(contracts)
        return Call(b.address, b.encode("createCampaign", p.terms.as_tuple()))


class PauseKind(OperationKind[PausePayload]):
    payload_type = PausePayload

    def gas_bound(self, payloads: Sequence[PausePayload]) -> int:
        return GAS_PAUSE

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[PausePayload]) -> Call:
        (p,) = payloads
        b = book(contracts)
        return Call(b.address, b.encode("setCampaignPaused", p.campaign_id, p.paused))


class GrantKind(OperationKind[GrantPayload]):
    payload_type = GrantPayload

    def lines(self, payload: GrantPayload) -> int:
        return len(payload.members)

    def gas_bound(self, payloads: Sequence[GrantPayload]) -> int:
        (p,) = payloads
        return p.gas

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[GrantPayload]) -> Call:
        (p,) = payloads
        b = book(contracts)
        return Call(b.address, b.encode("grantBatch", p.campaign_id, list(p.members)))


class RedeemKind(OperationKind[RedeemPayload]):
    """Redemptions relayed by one merchant share a transaction (``redeemBatch``): one
    transaction's base a batch instead of one a coupon. A line that reverts reverts its batch;
    the worker then bisects the batch so only that line's operation fails."""

    payload_type = RedeemPayload

    def batch_key(self, payload: RedeemPayload, home: str | None) -> Hashable | None:
        return ("coupon_redeem",)

    def gas_bound(self, payloads: Sequence[RedeemPayload]) -> int:
        if len(payloads) == 1:
            return GAS_REDEEM
        return GAS_REDEEM_BATCH_BASE + GAS_REDEEM * len(payloads)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RedeemPayload]) -> Call:
        b = book(contracts)
        lines = [(p.coupon_id, p.acceptor, p.order_ref, p.order_amount, p.nonce, p.deadline)
                 for p in payloads]
        if len(lines) == 1:
            return Call(b.address, b.encode("redeem", lines[0], payloads[0].signature))
        return Call(b.address, b.encode("redeemBatch", lines,
                                        [p.signature for p in payloads]))


class RollbackKind(OperationKind[RollbackPayload]):
    payload_type = RollbackPayload

    def gas_bound(self, payloads: Sequence[RollbackPayload]) -> int:
        return GAS_ROLLBACK

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RollbackPayload]) -> Call:
        (p,) = payloads
        b = book(contracts)
        return Call(b.address, b.encode("rollback", p.coupon_id, p.order_ref))


class ClaimVoucherKind(OperationKind[ClaimVoucherPayload]):
    payload_type = ClaimVoucherPayload

    def gas_bound(self, payloads: Sequence[ClaimVoucherPayload]) -> int:
        return GAS_CLAIM_VOUCHER

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[ClaimVoucherPayload]) -> Call:
        (p,) = payloads
        b = book(contracts)
        return Call(b.address, b.encode("claimVoucher", (p.campaign_id, p.voucher_id,
                                                         p.expires_at), p.to, p.signature))


class CancelVoucherKind(OperationKind[CancelVoucherPayload]):
    payload_type = CancelVoucherPayload

    def gas_bound(self, payloads: Sequence[CancelVoucherPayload]) -> int:
        return GAS_CANCEL_VOUCHER

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[CancelVoucherPayload]) -> Call:
        (p,) = payloads
        b = book(contracts)
        return Call(b.address, b.encode("cancelVoucher", p.campaign_id, p.voucher_id))


class RevokeKind(OperationKind[RevokePayload]):
    payload_type = RevokePayload

    def gas_bound(self, payloads: Sequence[RevokePayload]) -> int:
        return GAS_REVOKE

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RevokePayload]) -> Call:
        (p,) = payloads
        b = book(contracts)
        return Call(b.address, b.encode("revokeUnused", p.coupon_id))


class MoveCouponsKind(OperationKind[MoveCouponsPayload]):
    payload_type = MoveCouponsPayload

    def gas_bound(self, payloads: Sequence[MoveCouponsPayload]) -> int:
        (p,) = payloads
        return GAS_MOVE_COUPONS_BASE + GAS_PER_MOVED_COUPON * len(p.coupon_ids)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[MoveCouponsPayload]) -> Call:
        (p,) = payloads
        b = book(contracts)
        return Call(b.address, b.encode(
            "moveCoupons", (p.account, p.wallet, list(p.coupon_ids), p.deadline), p.signature))


CREATE_CAMPAIGN = CreateCampaignKind("coupon_campaign_create")
SET_PAUSED = PauseKind("coupon_campaign_pause")
GRANT = GrantKind("coupon_grant")
REDEEM = RedeemKind("coupon_redeem")
ROLLBACK = RollbackKind("coupon_rollback")
CLAIM_VOUCHER = ClaimVoucherKind("coupon_voucher_claim")
CANCEL_VOUCHER = CancelVoucherKind("coupon_voucher_cancel")
REVOKE = RevokeKind("coupon_revoke")
MOVE_COUPONS = MoveCouponsKind("coupon_move")

KINDS: tuple[OperationKind[Any], ...] = (CREATE_CAMPAIGN, SET_PAUSED, GRANT, REDEEM, ROLLBACK,
                                         CLAIM_VOUCHER, CANCEL_VOUCHER, REVOKE, MOVE_COUPONS)
