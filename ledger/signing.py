"""The EIP-712 messages members sign, built in one place for wallets, the mini-program and tests.

The domain is ``{name: "Alliance Points", version: "1", chainId, verifyingContract: program}``;
the contract checks exactly these fields (``PointProgram.REDEEM_TYPEHASH`` and
``CONVERT_TYPEHASH``).
"""

from __future__ import annotations

from typing import Any

DOMAIN_NAME = "Alliance Points"
DOMAIN_VERSION = "1"

REDEEM_TYPES: list[dict[str, str]] = [
    {"name": "member", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "merchantId", "type": "uint256"},
    {"name": "orderRef", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

EIP712_DOMAIN_TYPES: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def redeem_typed_data(*, chain_id: int, program: str, member: str, amount: int,
                      merchant_id: int, order_ref: bytes, nonce: int, deadline: int
                      ) -> dict[str, Any]:
    """The full EIP-712 typed data of a redemption (eth_signTypedData_v4 shape)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "Redeem": REDEEM_TYPES},
        "primaryType": "Redeem",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": program},
        "message": {"member": member, "amount": amount, "merchantId": merchant_id,
                    "orderRef": "0x" + order_ref.hex(), "nonce": nonce, "deadline": deadline},
    }


CONVERT_TYPES: list[dict[str, str]] = [
    {"name": "member", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "toMerchantId", "type": "uint256"},
    {"name": "minOut", "type": "uint256"},
    {"name": "orderRef", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def convert_typed_data(*, chain_id: int, program: str, member: str, amount: int,
                       to_merchant_id: int, min_out: int, order_ref: bytes, nonce: int,
                       deadline: int) -> dict[str, Any]:
    """The full EIP-712 typed data of a conversion out of ``program`` (same domain as redeem)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "Convert": CONVERT_TYPES},
        "primaryType": "Convert",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": program},
        "message": {"member": member, "amount": amount, "toMerchantId": to_merchant_id,
                    "minOut": min_out, "orderRef": "0x" + order_ref.hex(), "nonce": nonce,
                    "deadline": deadline},
    }
