"""The EIP-712 messages members sign, built in one place for wallets, the mini-program and tests.

The domain is ``{name: "Alliance Points", version: "2", chainId, verifyingContract: program,
salt: the registry's address as bytes32}``; the contract checks exactly these fields
(``PointProgram.REDEEM_TYPEHASH``, ``CONVERT_TYPEHASH``, ``SignedActions``'s
``CANCEL_NONCES_TYPEHASH``) and reports them through ERC-5267 ``eip712Domain()``. The salt binds
a signature to one alliance: two deployments on one chain whose programs share an address
(same deployer, deterministic clones) do not accept each other's signatures.

Nonces are unordered (a bitmap per member, as Uniswap's Permit2): any unused number works, so a
member may sign several payments at once; ``nonceBitmap(member, nonce >> 8)`` has bit
``nonce & 0xff`` set once a nonce is used or cancelled. Deadlines may be at most 7 days ahead.
"""

from __future__ import annotations

from typing import Any

DOMAIN_NAME = "Alliance Points"
DOMAIN_VERSION = "2"

EIP712_DOMAIN_TYPES: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
    {"name": "salt", "type": "bytes32"},
]

REDEEM_TYPES: list[dict[str, str]] = [
    {"name": "member", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "merchantId", "type": "uint256"},
    {"name": "orderRef", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

CONVERT_TYPES: list[dict[str, str]] = [
    {"name": "member", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "toMerchantId", "type": "uint256"},
    {"name": "minOut", "type": "uint256"},
    {"name": "orderRef", "type": "bytes32"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

CANCEL_NONCES_TYPES: list[dict[str, str]] = [
    {"name": "member", "type": "address"},
    {"name": "wordPos", "type": "uint256"},
    {"name": "mask", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

MAX_DEADLINE_AHEAD_S = 7 * 86400
"""How far ahead a signed message's deadline may be (the contract's ``MAX_DEADLINE_AHEAD``)."""

# A custodial account's key moves all its points to the member's wallet (``moveAccount``).
MOVE_ACCOUNT_TYPES: list[dict[str, str]] = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "deadline", "type": "uint256"},
]

def domain_salt(registry: str) -> str:
    """The domain salt of programs of the alliance whose registry is ``registry`` (0x-hex)."""
    return "0x" + bytes.fromhex(registry.removeprefix("0x")).rjust(32, b"\0").hex()


def domain(*, chain_id: int, program: str, registry: str) -> dict[str, Any]:
    """The EIP-712 domain of ``program`` (of the alliance whose registry is ``registry``)."""
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
            "verifyingContract": program, "salt": domain_salt(registry)}


def redeem_typed_data(*, chain_id: int, program: str, registry: str, member: str, amount: int,
                      merchant_id: int, order_ref: bytes, nonce: int, deadline: int
                      ) -> dict[str, Any]:
    """The full EIP-712 typed data of a redemption (eth_signTypedData_v4 shape)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "Redeem": REDEEM_TYPES},
        "primaryType": "Redeem",
        "domain": domain(chain_id=chain_id, program=program, registry=registry),
        "message": {"member": member, "amount": amount, "merchantId": merchant_id,
                    "orderRef": "0x" + order_ref.hex(), "nonce": nonce, "deadline": deadline},
    }


def convert_typed_data(*, chain_id: int, program: str, registry: str, member: str, amount: int,
                       to_merchant_id: int, min_out: int, order_ref: bytes, nonce: int,
                       deadline: int) -> dict[str, Any]:
    """The full EIP-712 typed data of a conversion out of ``program`` (same domain as redeem)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "Convert": CONVERT_TYPES},
        "primaryType": "Convert",
        "domain": domain(chain_id=chain_id, program=program, registry=registry),
        "message": {"member": member, "amount": amount, "toMerchantId": to_merchant_id,
                    "minOut": min_out, "orderRef": "0x" + order_ref.hex(), "nonce": nonce,
                    "deadline": deadline},
    }


def cancel_nonces_typed_data(*, chain_id: int, program: str, registry: str, member: str,
                             word_pos: int, mask: int, deadline: int) -> dict[str, Any]:
    """The full EIP-712 typed data of cancelling nonces ``word_pos * 256 + b`` for each bit b
    set in ``mask`` (relayed by anyone through ``cancelNonces``)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "CancelNonces": CANCEL_NONCES_TYPES},
        "primaryType": "CancelNonces",
        "domain": domain(chain_id=chain_id, program=program, registry=registry),
        "message": {"member": member, "wordPos": word_pos, "mask": mask, "deadline": deadline},
    }


def move_account_typed_data(*, chain_id: int, program: str, registry: str, from_: str, to: str,
                            deadline: int) -> dict[str, Any]:
    """The full EIP-712 typed data of moving every point of the custodial account ``from_``
    to the wallet ``to`` (``moveAccount``, relayed by the program's merchant)."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, "MoveAccount": MOVE_ACCOUNT_TYPES},
        "primaryType": "MoveAccount",
        "domain": domain(chain_id=chain_id, program=program, registry=registry),
        "message": {"from": from_, "to": to, "deadline": deadline},
    }
