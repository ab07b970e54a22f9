"""The client of the ItemRegistry, and the records it speaks (see IItemRegistry.sol)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from eth_utils.crypto import keccak

from ..contracts.client import ContractClient

BRAND_ROLE = keccak(text="BRAND_ROLE")
CLAIM_TYPES = {"Claim": [{"name": "member", "type": "address"},
                         {"name": "itemId", "type": "bytes32"},
                         {"name": "nonce", "type": "uint256"},
                         {"name": "deadline", "type": "uint256"}]}
DOMAIN_NAME, DOMAIN_VERSION = "Alliance Items", "1"


class BizStep(IntEnum):
    """CBV 2.0 business steps, in the contract's order."""

    COMMISSIONING = 0
    SHIPPING = 1
    RECEIVING = 2
    RETAIL_SELLING = 3
    RETURNING = 4
    RECALLING = 5
    DESTROYING = 6

    @property
    def cbv(self) -> str:
        return self.name.lower()


class Disposition(IntEnum):
    """CBV 2.0 dispositions the service codes into one byte (informational on chain)."""

    ACTIVE = 0
    IN_TRANSIT = 1
    IN_PROGRESS = 2
    SELLABLE_ACCESSIBLE = 3
    RETAIL_SOLD = 4
    RETURNED = 5
    RECALLED = 6
    DESTROYED = 7

    @property
    def cbv(self) -> str:
        return self.name.lower()


DEFAULT_DISPOSITION = {
    BizStep.COMMISSIONING: Disposition.ACTIVE,
    BizStep.SHIPPING: Disposition.IN_TRANSIT,
    BizStep.RECEIVING: Disposition.SELLABLE_ACCESSIBLE,
    BizStep.RETAIL_SELLING: Disposition.RETAIL_SOLD,
    BizStep.RETURNING: Disposition.RETURNED,
    BizStep.RECALLING: Disposition.RECALLED,
    BizStep.DESTROYING: Disposition.DESTROYED,
}


class ItemStatus(StrEnum):
    UNKNOWN = "unknown"
    COMMISSIONED = "commissioned"
    IN_TRANSIT = "in_transit"
    IN_STOCK = "in_stock"
    SOLD = "sold"
    DESTROYED = "destroyed"


STATUS_BY_CODE = list(ItemStatus)
FLAG_RECALLED, FLAG_CLAIMED, FLAG_FLAGGED = 1, 2, 4


def item_key(chain_batch_id: int, index: int) -> int:
    """An item's on-chain key: ``batchId << 32 | index`` (the contract's ``itemKey``)."""
    return (chain_batch_id << 32) | index


def split_item_key(key: int) -> tuple[int, int]:
    """(chain batch id, index) of an item key."""
    return key >> 32, key & 0xFFFFFFFF


@dataclass(frozen=True)
class CustodyEvent:
    """One custody event as the contract takes it (``item``: the item's key)."""

    item: int
    event_hash: bytes
    location: bytes
    biz_step: BizStep
    event_time: int
    disposition: Disposition = Disposition.ACTIVE
    destination: bytes = b"\0" * 32

    def as_tuple(self) -> tuple[int, bytes, bytes, bytes, int, int, int]:
        return (self.item, self.event_hash, self.location, self.destination,
                int(self.biz_step), int(self.disposition), self.event_time)


@dataclass(frozen=True)
class ItemRecord:
    """An item's lane on chain: status, flags and the merchant holding it (while in transit,
    the merchant it was shipped to)."""

    status: ItemStatus
    flags: int
    holder: int

    @property
    def claimed(self) -> bool:
        return bool(self.flags & FLAG_CLAIMED)

    @property
    def recalled(self) -> bool:
        return bool(self.flags & FLAG_RECALLED)


def location_id(gln_or_name: str) -> bytes:
    """A location's on-chain id: keccak256 of its GLN (or the store's own id)."""
    return keccak(text=gln_or_name)


def unpack_custody(packed: int) -> tuple[BizStep, Disposition, int, int]:
    """(bizStep, disposition, eventTime, merchantId) of CustodyRecorded's ``packed``."""
    return (BizStep(packed & 0xFF), Disposition((packed >> 8) & 0xFF),
            (packed >> 16) & ((1 << 64) - 1), packed >> 80)


class ItemRegistryClient(ContractClient):
    """The alliance's ItemRegistry."""

    def item(self, key: int) -> ItemRecord:
        status, flags, holder = self.view1("item", key)
        return ItemRecord(STATUS_BY_CODE[int(status)], int(flags), int(holder))

    def batch_root(self, batch_id: int) -> bytes:
        return bytes(self.view1("batch", batch_id)[0])

    def is_recalled(self, key: int) -> bool:
        return bool(self.view1("isRecalled", key))

    def product_brand(self, gtin: int) -> int:
        return int(self.view1("productBrand", gtin))

    def location_owner(self, location: bytes) -> int:
        return int(self.view1("locationOwner", location))

    def nonce_used(self, member: str, nonce: int) -> bool:
        """Whether ``member``'s claim nonce is used (``nonceBitmap``, bit ``nonce & 0xff``)."""
        word = int(self.view1("nonceBitmap", member, nonce >> 8))
        return bool(word >> (nonce & 0xFF) & 1)

    def claim_digest(self, *, member: str, item_id: bytes, nonce: int, deadline: int) -> bytes:
        return bytes(self.view1("claimDigest", member, item_id, nonce, deadline))
