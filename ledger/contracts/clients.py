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


@dataclass(frozen=True)
class Conversion:
    """What a member signs to convert points into another program's (EIP-712 ``Convert``)."""

    member: str
    amount: int
    to_merchant_id: int
    min_out: int
    order_ref: bytes
    nonce: int
    deadline: int

    def as_tuple(self) -> tuple[str, int, int, int, bytes, int, int]:
        return (self.member, self.amount, self.to_merchant_id, self.min_out, self.order_ref,
                self.nonce, self.deadline)


@dataclass(frozen=True)
class Terms:
    """The operator's terms for one merchant (settlement units)."""

    rate: int
    liability_cap: int
    foreign_cap: int


@dataclass(frozen=True)
class PeriodInfo:
    """A clearing period as the Clearing holds it (``closed_at`` 0: still open)."""

    period: int
    closed_at: int
    merchants: int
    total_owed: int
    total_received: int
    escrow: int


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

    def terms_of(self, merchant_id: int) -> Terms:
        rate, liability_cap, foreign_cap = self.view1("termsOf", merchant_id)
        return Terms(int(rate), int(liability_cap), int(foreign_cap))

    def accepts(self, acceptor: int, program_merchant: int) -> bool:
        return bool(self.view1("accepts", acceptor, program_merchant))

    def refund_window(self) -> int:
        return int(self.view1("refundWindow"))


class ClearingClient(ContractClient):
    """The Clearing: positions, periods, settlement."""

    def current_period(self) -> int:
        return int(self.view1("currentPeriod"))

    def position_of(self, period: int, merchant_id: int) -> tuple[int, int]:
        """(net, foreign value accepted) of a merchant in a period."""
        net, accepted = self.view1("positionOf", period, merchant_id)
        return int(net), int(accepted)

    def settlement_of(self, period: int, merchant_id: int) -> tuple[int, int]:
        """(paid, received) of a merchant for a closed period."""
        paid, received = self.view1("settlementOf", period, merchant_id)
        return int(paid), int(received)

    def period(self, period: int) -> PeriodInfo:
        closed_at, merchants, owed, received, escrow = self.view1("period", period)
        return PeriodInfo(period, int(closed_at), int(merchants), int(owed), int(received),
                          int(escrow))

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
        """ERC-20 ``balanceOf``: spendable + pending + expired not yet swept (what the
        ``Transfer`` logs say). What a member can spend is ``spendable_of``."""
        return int(self.view1("balanceOf", member))

    def spendable_of(self, member: str) -> int:
        """Points the member can spend now (live, not pending)."""
        return int(self.view1("spendableOf", member))

    def pending_of(self, member: str) -> int:
        return int(self.view1("pendingOf", member))

    def expired_of(self, member: str) -> int:
        """Points that expired and were not swept yet (still in ``balance_of``)."""
        return int(self.view1("expiredOf", member))

    def expiry_of(self, period: int) -> int:
        """Unix time at which points earned in ``period`` expire (2**256 - 1: never)."""
        return int(self.view1("expiryOf", period))

    def registry(self) -> str:
        return str(self.view1("registry"))

    def lots_of(self, member: str) -> list[tuple[int, int]]:
        periods, amounts = self.view("lotsOf", member)
        return list(zip((int(p) for p in periods), (int(a) for a in amounts), strict=True))

    def total_supply(self) -> int:
        return int(self.view1("totalSupply"))

    def nonce_bitmap(self, member: str, word_pos: int) -> int:
        """Bit b set: nonce ``word_pos * 256 + b`` of the member is used or cancelled."""
        return int(self.view1("nonceBitmap", member, word_pos))

    def free_nonce(self, member: str, *, start_word: int = 0, max_words: int = 16) -> int:
        """The lowest unused nonce of the member from word ``start_word`` on (one call per
        word). Nonces are unordered: any unused one works; the lowest keeps the member's
        bitmap in one slot, which is cheapest on chain."""
        for word in range(start_word, start_word + max_words):
            bits = self.nonce_bitmap(member, word)
            if bits != (1 << 256) - 1:
                free = ~bits & (bits + 1)  # lowest zero bit
                return word * 256 + free.bit_length() - 1
        raise ValueError(f"no free nonce in words {start_word}..{start_word + max_words - 1}")

    def nonce_of(self, member: str) -> int:
        """A fresh nonce for the member's next signature (``free_nonce``)."""
        return self.free_nonce(member)

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

    def conversion_digest(self, c: Conversion) -> bytes:
        return bytes(self.view1("conversionDigest", c.as_tuple()))

    def redemption_of(self, acceptor: int, order_ref: bytes) -> tuple[str, int, int, int]:
        """(member, points not refunded, clearing rate, redeemed at) of a recorded redemption."""
        member, amount, rate, at = self.view("redemptionOf", acceptor, order_ref)
        return str(member), int(amount), int(rate), int(at)

    def encode_redeem_batch(self, items: Sequence[tuple[Redemption, bytes]]) -> bytes:
        """Calldata of ``redeemBatch(rs, signatures)``, written directly (like
        :meth:`encode_issue_batch`; checked against eth_abi in tests/ledger/test_encoding.py).

        Head: the offsets of the two arrays. ``rs``: its length, six words per (static)
        Redemption. ``signatures``: its length, one offset per element (from the start of the
        element area), then each as its length and its bytes padded to 32."""
        n = len(items)
        out = bytearray(self.gateway.selector(self.abi, "redeemBatch"))
        out += (64).to_bytes(32, "big") + (64 + 32 + 192 * n).to_bytes(32, "big")
        out += n.to_bytes(32, "big")
        for r, _ in items:
            if len(r.order_ref) != 32:
                raise ValueError("order_ref must be 32 bytes")
            out += bytes(12) + bytes.fromhex(r.member[2:])
            out += r.amount.to_bytes(32, "big") + r.merchant_id.to_bytes(32, "big")
            out += r.order_ref + r.nonce.to_bytes(32, "big") + r.deadline.to_bytes(32, "big")
        out += n.to_bytes(32, "big")
        offset = 32 * n
        tails = bytearray()
        for _, sig in items:
            out += offset.to_bytes(32, "big")
            padded = sig + bytes(-len(sig) % 32)
            tails += len(sig).to_bytes(32, "big") + padded
            offset += 32 + len(padded)
        return bytes(out + tails)
