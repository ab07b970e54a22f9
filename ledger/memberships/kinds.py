"""Membership cards' operation kinds: issue and renew a card. Each is sent alone, to the
MembershipCards contract, by the merchant whose account the contract requires; see
:mod:`ledger.outbox.kinds`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..deployment import Contracts
from ..errors import LedgerConfigError, LedgerValidationError
from ..outbox.kinds import Call, OperationKind, hex_bytes, parse_hex
from .clients import MembershipCardsClient

# Gas bounds above what each call was measured to take (an issue 129,994: owner, balance, card
# slot, payment ref, three events; a renewal 66,140; tests/contracts/test_memberships.py keeps
# them under these bounds).
GAS_ISSUE = 200_000
GAS_RENEW = 100_000
MAX_TIER = 255
MAX_TIME = 2**40 - 1


def cards(contracts: Contracts) -> MembershipCardsClient:
    """The deployment's membership cards (a deployment recorded before them has none)."""
    if contracts.memberships is None:
        raise LedgerConfigError("this deployment has no membership cards; deploy anew to "
                                "use memberships")
    return contracts.memberships


@dataclass(frozen=True)
class IssueCardPayload:
    """A card of the sending merchant for ``member`` (the service checks tier, expiry and
    payment reference; the contract refuses any it would not accept)."""

    merchant_id: int
    member: str
    tier: int
    expires_at: int
    payment_ref: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.member, str) or len(self.member) != 42:
            raise LedgerValidationError("member must be an address", field="member")

    def to_json(self) -> dict[str, Any]:
        return {"merchant_id": self.merchant_id, "member": self.member, "tier": self.tier,
                "expires_at": self.expires_at, "payment_ref": hex_bytes(self.payment_ref)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IssueCardPayload:
        return cls(data["merchant_id"], data["member"], data["tier"], data["expires_at"],
                   parse_hex(data["payment_ref"], "payment_ref", size=32))


@dataclass(frozen=True)
class RenewCardPayload:
    """A renewal of card ``token_id`` until ``expires_at`` with ``tier``."""

    token_id: int
    tier: int
    expires_at: int
    payment_ref: bytes

    def to_json(self) -> dict[str, Any]:
        # Card ids pass 2^53: JSON carries them as text.
        return {"token_id": str(self.token_id), "tier": self.tier,
                "expires_at": self.expires_at, "payment_ref": hex_bytes(self.payment_ref)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RenewCardPayload:
        return cls(int(data["token_id"]), data["tier"], data["expires_at"],
                   parse_hex(data["payment_ref"], "payment_ref", size=32))


class IssueCardKind(OperationKind[IssueCardPayload]):
    payload_type = IssueCardPayload

    def gas_bound(self, payloads: Sequence[IssueCardPayload]) -> int:
        return GAS_ISSUE

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[IssueCardPayload]) -> Call:
        (p,) = payloads
        c = cards(contracts)
        return Call(c.address, c.encode("issue", p.merchant_id, p.member, p.tier, p.expires_at,
                                        p.payment_ref))


class RenewCardKind(OperationKind[RenewCardPayload]):
    payload_type = RenewCardPayload

    def gas_bound(self, payloads: Sequence[RenewCardPayload]) -> int:
        return GAS_RENEW

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RenewCardPayload]) -> Call:
        (p,) = payloads
        c = cards(contracts)
        return Call(c.address, c.encode("renew", p.token_id, p.tier, p.expires_at,
                                        p.payment_ref))


ISSUE_CARD = IssueCardKind("membership_issue")
RENEW_CARD = RenewCardKind("membership_renew")

KINDS: tuple[OperationKind[Any], ...] = (ISSUE_CARD, RENEW_CARD)
