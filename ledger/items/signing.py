"""The EIP-712 ``Claim`` a buyer signs to claim an item (domain: "Alliance Items", "1", the
ItemRegistry, salt = the alliance registry as bytes32; see ``IItemRegistry.claim``)."""

from __future__ import annotations

from typing import Any

from ..signing import EIP712_DOMAIN_TYPES, domain_salt
from .clients import CLAIM_TYPES, DOMAIN_NAME, DOMAIN_VERSION


def claim_typed_data(*, chain_id: int, items: str, registry: str, member: str, item_id: bytes,
                     nonce: int, deadline: int) -> dict[str, Any]:
    """The full typed data (eth_signTypedData_v4 shape) of a claim of ``item_id``."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPES, **CLAIM_TYPES},
        "primaryType": "Claim",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": items, "salt": domain_salt(registry)},
        "message": {"member": member, "itemId": "0x" + item_id.hex(), "nonce": nonce,
                    "deadline": deadline},
    }
