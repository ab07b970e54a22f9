"""The client of the ConsentLedger (see IConsentLedger.sol) and its EIP-712 shapes."""

from __future__ import annotations

from ..contracts.client import ContractClient

DOMAIN_NAME, DOMAIN_VERSION = "Alliance Consent", "1"
GRANT_TYPES = [{"name": "member", "type": "address"},
               {"name": "merchantId", "type": "uint256"},
               {"name": "kind", "type": "bytes32"},
               {"name": "textHash", "type": "bytes32"},
               {"name": "nonce", "type": "uint256"},
               {"name": "deadline", "type": "uint256"}]
REVOKE_TYPES = [{"name": "member", "type": "address"},
                {"name": "merchantId", "type": "uint256"},
                {"name": "kind", "type": "bytes32"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}]


class ConsentLedgerClient(ContractClient):
    def consent_of(self, member: str, merchant_id: int, kind: bytes) -> bytes:
        """The live consent's text hash (32 zero bytes: none)."""
        return bytes(self.view1("consentOf", member, merchant_id, kind))

    def nonce_used(self, member: str, nonce: int) -> bool:
        return bool(int(self.view1("nonceBitmap", member, nonce >> 8)) >> (nonce & 0xFF) & 1)
