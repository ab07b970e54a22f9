"""The typed client of the MembershipCards contract."""

from __future__ import annotations

from dataclasses import dataclass

from ..contracts.client import ContractClient

# A card's id packs merchant_id << 160 | member (see IMembershipCards).
MERCHANT_SHIFT = 160
ALLIANCE_WIDE = 0


def card_id(merchant_id: int, member: str) -> int:
    """The id of ``member``'s card at ``merchant_id`` (0: the alliance-wide card)."""
    return (merchant_id << MERCHANT_SHIFT) | int(member, 16)


def merchant_of(token_id: int) -> int:
    """The merchant whose card ``token_id`` is."""
    return token_id >> MERCHANT_SHIFT


@dataclass(frozen=True)
class CardState:
    """A card as the contract stores it (IMembershipCards.Card)."""

    merchant_id: int
    tier: int
    issued_at: int
    expires_at: int


class MembershipCardsClient(ContractClient):
    """The MembershipCards contract: issue, renew, read cards."""

    def card(self, token_id: int, *, block: str | int = "latest") -> CardState:
        merchant_id, tier, issued_at, expires_at = self.view1("card", token_id, block=block)
        return CardState(int(merchant_id), int(tier), int(issued_at), int(expires_at))

    def owner_of(self, token_id: int) -> str:
        return str(self.view1("ownerOf", token_id))

    def is_valid(self, token_id: int) -> bool:
        return bool(self.view1("isValid", token_id))

    def payment_ref_used(self, merchant_id: int, payment_ref: bytes) -> bool:
        return bool(self.view1("paymentRefUsed", merchant_id, payment_ref))
