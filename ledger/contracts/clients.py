"""Typed clients of our contracts: views decoded to Python values, calls encoded for the sender.

Clients never send transactions themselves: they give calldata to a
:class:`~ledger.chain.sender.TransactionSender`, so the nonce manager and batching stay in one
place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..chain.gateway import Abi, ChainGateway

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
class IssueItem:
    """One line of a batch issue."""

    member: str
    amount: int
    order_ref: bytes
    release_at: int = 0

    def as_tuple(self) -> tuple[str, int, bytes, int]:
        return (self.member, self.amount, self.order_ref, self.release_at)


@dataclass(frozen=True)
class Redemption:
    """What a member signs to spend points (EIP-712 ``Redeem``)."""

    member: str
    amount: int
    merchant_id: int
    order_ref: bytes
    nonce: int
    deadline: int

    def as_tuple(self) -> tuple[str, int, int, bytes, int, int]:
        return (self.member, self.amount, self.merchant_id, self.order_ref, self.nonce,
                self.deadline)


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

    def view1(self, fn: str, *args: Any) -> Any:
        return self.view(fn, *args)[0]

    def decode_logs(self, logs: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any],
                                                                          Mapping[str, Any]]]:
        return self.gateway.decode_logs(self.abi, logs)


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


class FactoryClient(ContractClient):
    """The PointProgramFactory."""

    def program_address(self, merchant_id: int) -> str:
        return str(self.view1("programAddress", merchant_id))


class PointProgramClient(ContractClient):
    """One merchant's point program."""

    def encode_issue_batch(self, items: Sequence[IssueItem]) -> bytes:
        """Calldata of ``issueBatch(items)``, written directly.

        ``IssueItem[]`` is a dynamic array of static tuples, so its ABI encoding is the
        selector, the array's offset (32), its length, then four 32-byte words per item.
        This is ~20x faster than the generic encoder on 200-line batches (it validates every
        value); ``tests/ledger/test_encoding.py`` checks it byte for byte against eth_abi."""
        selector = self.gateway.selector(self.abi, "issueBatch")
        out = bytearray(selector)
        out += (32).to_bytes(32, "big") + len(items).to_bytes(32, "big")
        for it in items:
            if len(it.order_ref) != 32:
                raise ValueError("order_ref must be 32 bytes")
            out += bytes(12) + bytes.fromhex(it.member[2:])
            out += it.amount.to_bytes(32, "big")
            out += it.order_ref
            out += it.release_at.to_bytes(32, "big")
        return bytes(out)

    def balance_of(self, member: str) -> int:
        return int(self.view1("balanceOf", member))

    def pending_of(self, member: str) -> int:
        return int(self.view1("pendingOf", member))

    def lots_of(self, member: str) -> list[tuple[int, int]]:
        periods, amounts = self.view("lotsOf", member)
        return list(zip((int(p) for p in periods), (int(a) for a in amounts), strict=True))

    def total_supply(self) -> int:
        return int(self.view1("totalSupply"))

    def nonce_of(self, member: str) -> int:
        return int(self.view1("nonces", member))

    def order_of(self, order_ref: bytes) -> tuple[str, int, int, int]:
        member, remaining, period, day = self.view("orderOf", order_ref)
        return str(member), int(remaining), int(period), int(day)

    def symbol(self) -> str:
        return str(self.view1("symbol"))

    def name(self) -> str:
        return str(self.view1("name"))

    def merchant_id(self) -> int:
        return int(self.view1("merchantId"))

    def config(self) -> ProgramConfig:
        period_length, expiry, pending = self.view1("config")
        return ProgramConfig(int(period_length), int(expiry), int(pending))

    def origin(self) -> int:
        return int(self.view1("origin"))

    def redemption_digest(self, r: Redemption) -> bytes:
        return bytes(self.view1("redemptionDigest", r.as_tuple()))
