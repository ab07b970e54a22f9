"""Clients of the AllianceRegistry and the PointProgramFactory: who is a merchant, on what terms.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contracts.client import ContractClient

MERCHANT_STATUS = {0: "none", 1: "active", 2: "suspended"}


@dataclass(frozen=True)
class MerchantRecord:
    """A merchant as the registry holds it."""

    merchant_id: int
    account: str
    status: str
    program: str | None


@dataclass(frozen=True)
class ProgramConfig:
    """A point program's rules (see IPointProgram.Config)."""

    period_length: int = 30 * 86400
    expiry_periods: int = 0
    max_pending_days: int = 30

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.period_length, self.expiry_periods, self.max_pending_days)


@dataclass(frozen=True)
class Terms:
    """The operator's terms for one merchant (settlement units)."""

    rate: int
    liability_cap: int
    foreign_cap: int


class RegistryClient(ContractClient):
    """The AllianceRegistry."""

    def merchant(self, merchant_id: int) -> MerchantRecord:
        account, status, program = self.view1("merchant", merchant_id)
        zero = program == "0x0000000000000000000000000000000000000000"
        return MerchantRecord(merchant_id, account, MERCHANT_STATUS[int(status)],
                              None if zero else program)

    def merchant_count(self) -> int:
        return int(self.view1("merchantCount"))

    def rate_of(self, merchant_id: int) -> int:
        return int(self.view1("rateOf", merchant_id))

    def terms_of(self, merchant_id: int) -> Terms:
        rate, liability_cap, foreign_cap = self.view1("termsOf", merchant_id)
        return Terms(int(rate), int(liability_cap), int(foreign_cap))

    def accepts(self, acceptor: int, program_merchant: int) -> bool:
        return bool(self.view1("accepts", acceptor, program_merchant))

    def refund_window(self) -> int:
        return int(self.view1("refundWindow"))

    def merchant_id_of(self, account: str) -> int:
        return int(self.view1("merchantIdOf", account))

    def payout_of(self, merchant_id: int) -> str:
        """Where the clearing pays the merchant (never its signing account)."""
        return str(self.view1("payoutOf", merchant_id))

    def has_role(self, role: bytes, account: str) -> bool:
        return bool(self.view1("hasRole", role, account))


class FactoryClient(ContractClient):
    """The PointProgramFactory."""

    def program_address(self, merchant_id: int) -> str:
        return str(self.view1("programAddress", merchant_id))
