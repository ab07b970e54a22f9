"""Gas money for the service's relaying keys: each merchant's key pays the gas of what it
relays, so on a chain whose gas has a price someone must give it ether.

A :class:`Funder` does it by an ordinary ether transfer from a funder key (the alliance's
operator key unless ``ALLIANCE_FUNDER_KEY`` names another), on any EVM node: anvil, Hardhat
Network, Besu, Geth. It tops a key up to ``relayer_funding_wei`` when it is found below
``relayer_min_balance_wei`` or below what its next transactions cost up front. On a chain whose
gas costs nothing (Besu with ``zeroBaseFee`` and ``--min-gas-price=0``, a zero priority fee
set) nothing is sent at all.

``relayer_funding_wei`` 0 turns automatic funding off (keys are funded by hand, a documented
step). A key that cannot be topped up (funding off, the funder itself dry) raises
:class:`~ledger.errors.SignerUnfundedError`: the outbox keeps its operations queued with that
code and says so on ``/ready``, instead of retrying silently.
"""

from __future__ import annotations

import logging
import threading

from ..errors import ChainError, SignerUnfundedError
from .gateway import ChainGateway
from .sender import TransactionSender

log = logging.getLogger(__name__)

TRANSFER_GAS = 21_000


def ether(wei: int) -> str:
    """``wei`` as ether for people (6 decimals)."""
    return f"{wei / 10**18:.6f} ETH"


class Funder:
    """Tops up relaying keys from one funder key by real transfers (one at a time)."""

    def __init__(self, gateway: ChainGateway, sender: TransactionSender | None, *,
                 target_wei: int, low_wei: int) -> None:
        self.gateway = gateway
        self.sender = sender
        self.target_wei = target_wei
        self.low_wei = low_wei
        self._lock = threading.Lock()

    @property
    def address(self) -> str | None:
        return None if self.sender is None else self.sender.address

    def gas_is_free(self) -> bool:
        """True on a chain where a transaction costs nothing (max fee per gas 0)."""
        if self.sender is not None:
            return self.sender.fees()[0] == 0
        return self.gateway.fees()[0] == 0

    def ensure(self, address: str, *, need_wei: int = 0) -> int:
        """Make sure ``address`` holds at least ``need_wei`` (and, on a chain with a gas
        price, at least the low-water mark); give its balance afterwards.

        Raises SignerUnfundedError if it holds too little and cannot be topped up."""
        balance = self.gateway.balance(address)
        if balance >= max(need_wei, self.low_wei) or (need_wei == 0 and self.gas_is_free()):
            return balance
        with self._lock:
            balance = self.gateway.balance(address)  # another thread may have just topped up
            if balance >= max(need_wei, self.low_wei):
                return balance
            amount = max(self.target_wei, need_wei) - balance
            if self.sender is None or self.target_wei == 0:
                if need_wei == 0:
                    return balance  # nothing to pay yet: it waits for its first transaction
                raise SignerUnfundedError(
                    f"{address} holds {ether(balance)}, needs {ether(need_wei)}; the service "
                    "funds no relaying key (ALLIANCE_RELAYER_FUNDING_WEI=0): send it ether "
                    "(`alliance merchant fund`, or any wallet)", address=address,
                    balance=balance, need=need_wei)
            try:
                self.sender.transact(to=address, data=b"", gas=TRANSFER_GAS, value=amount)
            except ChainError as exc:
                raise SignerUnfundedError(
                    f"{address} holds {ether(balance)}, needs {ether(need_wei)}; the funder "
                    f"{self.sender.address} could not top it up: {exc.message}",
                    address=address, balance=balance, need=need_wei) from exc
            log.info("funded %s with %s from %s", address, ether(amount), self.sender.address)
            return self.gateway.balance(address)

    def send(self, address: str, amount_wei: int) -> int:
        """Transfer ``amount_wei`` from the funder key to ``address`` now (a hand top-up);
        give its balance afterwards."""
        if self.sender is None:
            raise SignerUnfundedError("no funder key is configured (ALLIANCE_FUNDER_KEY)")
        with self._lock:
            self.sender.transact(to=address, data=b"", gas=TRANSFER_GAS, value=amount_wei)
        log.info("funded %s with %s from %s", address, ether(amount_wei), self.sender.address)
        return self.gateway.balance(address)
