"""Clients of the Clearing and of the settlement token.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contracts.client import ContractClient


@dataclass(frozen=True)
class PeriodInfo:
    """A clearing period as the Clearing holds it (``closed_at`` 0: still open)."""

    period: int
    closed_at: int
    merchants: int
    total_owed: int
    total_received: int
    escrow: int
    total_paid: int = 0


class ClearingClient(ContractClient):
    """The Clearing: positions, periods, settlement."""

    def current_period(self) -> int:
        return int(self.view1("currentPeriod"))

    def position_of(self, period: int, merchant_id: int, *, block: str | int = "latest"
                    ) -> tuple[int, int]:
        """(net, foreign value accepted) of a merchant in a period."""
        net, accepted = self.view1("positionOf", period, merchant_id, block=block)
        return int(net), int(accepted)

    def settlement_of(self, period: int, merchant_id: int) -> tuple[int, int]:
        """(paid, received) of a merchant for a closed period."""
        paid, received = self.view1("settlementOf", period, merchant_id)
        return int(paid), int(received)

    def period(self, period: int, *, block: str | int = "latest") -> PeriodInfo:
        closed_at, merchants, owed, paid, received, escrow = self.view1("period", period,
                                                                        block=block)
        return PeriodInfo(period, int(closed_at), int(merchants), int(owed), int(received),
                          int(escrow), int(paid))

    def claimable(self, period: int, merchant_id: int) -> int:
        """What a creditor could claim from the period's escrow now."""
        return int(self.view1("claimable", period, merchant_id))

    def escrowed(self) -> int:
        """Settlement tokens held for every period's escrow (the rest is stray)."""
        return int(self.view1("escrowed"))

    def outstanding(self, period: int, merchant_id: int) -> int:
        return int(self.view1("outstanding", period, merchant_id))

    def statement_hash(self, period: int, merchant_id: int) -> bytes:
        return bytes(self.view1("statementHash", period, merchant_id))

    def quote_conversion(self, program_merchant: int, acceptor: int, amount: int
                         ) -> tuple[int, int, int]:
        out, spent, value = self.view("quoteConversion", program_merchant, acceptor, amount)
        return int(out), int(spent), int(value)


class SettlementTokenClient(ContractClient):
    """The settlement deposit token (ERC-20 + ERC-1363, 0 decimals)."""

    def balance_of(self, account: str) -> int:
        return int(self.view1("balanceOf", account))

    def total_supply(self) -> int:
        return int(self.view1("totalSupply"))
