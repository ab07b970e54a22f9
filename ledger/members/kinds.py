"""The member app's operation kinds: a member's signed consent grant or revocation, relayed
(gasless for the member) by the merchant the consent names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..deployment import Contracts
from ..errors import LedgerConfigError
from ..outbox.kinds import (
    AddressField,
    AnyBytes,
    Bytes32,
    Call,
    JsonPayload,
    OperationKind,
    Uint256,
)
from .clients import ConsentLedgerClient

# A grant writes one slot (~22k new), a nonce word (~22k on a member's first), a log of three
# topics (~2k) and recovers a signature (~6k) over the 21k base: ~75k; revoke clears the slot.
GAS_CONSENT = 150_000


def ledger_of(contracts: Contracts) -> ConsentLedgerClient:
    """The deployment's consent ledger (a deployment recorded before it has none)."""
    if contracts.consent is None:
        raise LedgerConfigError("this deployment has no consent ledger; restart the service "
                                "to add it")
    return contracts.consent


@dataclass(frozen=True)
class GrantConsentPayload(JsonPayload):
    """``consent_grant``: the member's signed grant of ``kind`` to ``merchant_id``."""

    member: AddressField
    merchant_id: Uint256
    kind: Bytes32
    text_hash: Bytes32
    nonce: Uint256
    deadline: Uint256
    signature: AnyBytes


@dataclass(frozen=True)
class RevokeConsentPayload(JsonPayload):
    """``consent_revoke``: the member's signed revocation."""

    member: AddressField
    merchant_id: Uint256
    kind: Bytes32
    nonce: Uint256
    deadline: Uint256
    signature: AnyBytes


class GrantConsentKind(OperationKind[GrantConsentPayload]):
    payload_type = GrantConsentPayload

    def gas_bound(self, payloads: Sequence[GrantConsentPayload]) -> int:
        return GAS_CONSENT

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[GrantConsentPayload]) -> Call:
        ledger = ledger_of(contracts)
        (p,) = payloads
        return Call(ledger.address, ledger.encode("grantConsent", p.member, p.merchant_id,
                                                  p.kind, p.text_hash, p.nonce, p.deadline,
                                                  p.signature))


class RevokeConsentKind(OperationKind[RevokeConsentPayload]):
    payload_type = RevokeConsentPayload

    def gas_bound(self, payloads: Sequence[RevokeConsentPayload]) -> int:
        return GAS_CONSENT

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RevokeConsentPayload]) -> Call:
        ledger = ledger_of(contracts)
        (p,) = payloads
        return Call(ledger.address, ledger.encode("revokeConsent", p.member, p.merchant_id,
                                                  p.kind, p.nonce, p.deadline, p.signature))


GRANT = GrantConsentKind("consent_grant")
REVOKE = RevokeConsentKind("consent_revoke")
KINDS = (GRANT, REVOKE)
