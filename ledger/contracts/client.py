"""The common base of our contracts' typed clients: views decoded to Python values, calls
encoded for the sender.

Clients never send transactions themselves: they give calldata to a
:class:`~ledger.chain.sender.TransactionSender`, so the nonce manager and batching stay in one
place. Each capability has the clients of its own contracts (``ledger/<capability>/clients.py``);
the timelock, which every capability's admin actions go through, is here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..chain.gateway import Abi, ChainGateway


class ContractClient:
    """Common base: one deployed contract, its ABI and the gateway."""

    def __init__(self, gateway: ChainGateway, abi: Abi, address: str) -> None:
        self.gateway = gateway
        self.abi = abi
        self.address = address

    def encode(self, fn: str, *args: Any) -> bytes:
        return self.gateway.encode_call(self.abi, fn, args)

    def view(self, fn: str, *args: Any, block: str | int = "latest") -> tuple[Any, ...]:
        data = self.gateway.call(self.address, self.encode(fn, *args), block=block)
        return self.gateway.decode_output(self.abi, fn, data)

    def view1(self, fn: str, *args: Any, block: str | int = "latest") -> Any:
        return self.view(fn, *args, block=block)[0]

    def decode_logs(self, logs: Sequence[Any]) -> list[tuple[str, dict[str, Any],
                                                          Mapping[str, Any]]]:
        """Decode a receipt's logs (or the indexer's ``RawLog`` s) that this ABI knows."""
        return self.gateway.decode_logs(self.abi, logs)


class TimelockClient(ContractClient):
    """The alliance's TimelockController (holds the admin role)."""

    def min_delay(self) -> int:
        return int(self.view1("getMinDelay"))

    def operation_id(self, target: str, data: bytes, salt: bytes) -> bytes:
        return bytes(self.view1("hashOperation", target, 0, data, b"\0" * 32, salt))

    def ready_at(self, operation_id: bytes) -> int:
        """When the operation may be executed (0: unknown, 1: done)."""
        return int(self.view1("getTimestamp", operation_id))

    def is_done(self, operation_id: bytes) -> bool:
        return bool(self.view1("isOperationDone", operation_id))
