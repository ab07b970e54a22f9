"""EIP-712 typed data of the coupon book: a holder's redemption, an issuer's voucher.

The domain is the point programs' shape (salted with the registry's address, see
``ledger.signing``) under the coupon book's own name and version.
"""

from __future__ import annotations

from typing import Any

from ..signing import EIP712_DOMAIN_TYPES, domain_salt

DOMAIN_NAME = "Alliance Coupons"
DOMAIN_VERSION = "1"

REDEEM_COUPON_TYPES: list[dict[str, str]] = [
    {"name": "holder", "type": "address"},
    {"name": "couponId", "type": "uint256"},
    {"name": "acceptor", "type": "uint256"},
    {"name": "orderRef", "type": "bytes32"},
    {"name": "orderAmount", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

VOUCHER_TYPES: list[dict[str, str]] = [
    {"name": "campaignId", "type": "uint256"},
    {"name": "voucherId", "type": "uint256"},
    {"name": "expiresAt", "type": "uint256"},
]


def coupon_domain(*, chain_id: int, book: str, registry: str) -> dict[str, Any]:
    """The EIP-712 domain of the coupon book ``book`` of the alliance of ``registry``."""
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
            "verifyingContract": book, "salt": domain_salt(registry)}


def redeem_coupon_typed_data(*, chain_id: int, book: str, registry: str, holder: str,
                             coupon_id: int, acceptor: int, order_ref: bytes, order_amount: int,
                             nonce: int, deadline: int) -> dict[str, Any]:
    """The full typed data a holder signs to use a coupon (eth_signTypedData_v4 shape)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "RedeemCoupon": REDEEM_COUPON_TYPES},
        "primaryType": "RedeemCoupon",
        "domain": coupon_domain(chain_id=chain_id, book=book, registry=registry),
        "message": {"holder": holder, "couponId": coupon_id, "acceptor": acceptor,
                    "orderRef": "0x" + order_ref.hex(), "orderAmount": order_amount,
                    "nonce": nonce, "deadline": deadline},
    }


def voucher_typed_data(*, chain_id: int, book: str, registry: str, campaign_id: int,
                       voucher_id: int, expires_at: int) -> dict[str, Any]:
    """The full typed data an issuer's account signs to hand out a voucher."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "Voucher": VOUCHER_TYPES},
        "primaryType": "Voucher",
        "domain": coupon_domain(chain_id=chain_id, book=book, registry=registry),
        "message": {"campaignId": campaign_id, "voucherId": voucher_id,
                    "expiresAt": expires_at},
    }


COUPON_MOVE_TYPES: list[dict[str, str]] = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "ids", "type": "uint256[]"},
    {"name": "deadline", "type": "uint256"},
]


def coupon_move_typed_data(*, chain_id: int, book: str, registry: str, from_: str, to: str,
                           ids: list[int], deadline: int) -> dict[str, Any]:
    """The full typed data a custodial account's key signs to move the coupons ``ids`` it
    holds to the member's wallet ``to`` (``moveCoupons``, relayed by a merchant)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "CouponMove": COUPON_MOVE_TYPES},
        "primaryType": "CouponMove",
        "domain": coupon_domain(chain_id=chain_id, book=book, registry=registry),
        "message": {"from": from_, "to": to, "ids": list(ids), "deadline": deadline},
    }
