"""The client of a merchant's PointProgram, and the structs members sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..chain import encoding
from ..contracts.client import ContractClient
from ..errors import LedgerNotFoundError
from ..merchants.clients import ProgramConfig


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


class PointProgramClient(ContractClient):
    """One merchant's point program."""

    def encode_issue_batch(self, items: Sequence[IssueItem]) -> bytes:
        """Calldata of ``issueBatch(items)`` (the fast encoder of ledger/chain/encoding.py)."""
        return encoding.encode_issue_batch(self.gateway.selector(self.abi, "issueBatch"), items)

    def balance_of(self, member: str, *, block: str | int = "latest") -> int:
        """ERC-20 ``balanceOf``: spendable + pending + expired not yet swept (what the
        ``Transfer`` logs say). What a member can spend is ``spendable_of``."""
        return int(self.view1("balanceOf", member, block=block))

    def spendable_of(self, member: str, *, block: str | int = "latest") -> int:
        """Points the member can spend now (live, not pending)."""
        return int(self.view1("spendableOf", member, block=block))

    def pending_of(self, member: str, *, block: str | int = "latest") -> int:
        return int(self.view1("pendingOf", member, block=block))

    def expired_of(self, member: str, *, block: str | int = "latest") -> int:
        """Points that expired and were not swept yet (still in ``balance_of``)."""
        return int(self.view1("expiredOf", member, block=block))

    def expiry_of(self, period: int) -> int:
        """Unix time at which points earned in ``period`` expire (2**256 - 1: never)."""
        return int(self.view1("expiryOf", period))

    def registry(self) -> str:
        return str(self.view1("registry"))

    def lots_of(self, member: str, *, block: str | int = "latest") -> list[tuple[int, int]]:
        periods, amounts = self.view("lotsOf", member, block=block)
        return list(zip((int(p) for p in periods), (int(a) for a in amounts), strict=True))

    def total_supply(self) -> int:
        return int(self.view1("totalSupply"))

    def nonce_bitmap(self, member: str, word_pos: int, *, block: str | int = "latest") -> int:
        """Bit b set: nonce ``word_pos * 256 + b`` of the member is used or cancelled."""
        return int(self.view1("nonceBitmap", member, word_pos, block=block))

    def free_nonce(self, member: str, *, start_word: int = 0, max_words: int = 16,
                   block: str | int = "latest") -> int:
        """The lowest unused nonce of the member from word ``start_word`` on (one call per
        word). Nonces are unordered: any unused one works; the lowest keeps the member's
        bitmap in one slot, which is cheapest on chain."""
        for word in range(start_word, start_word + max_words):
            bits = self.nonce_bitmap(member, word, block=block)
            if bits != (1 << 256) - 1:
                free = ~bits & (bits + 1)  # lowest zero bit
                return word * 256 + free.bit_length() - 1
        raise LedgerNotFoundError(
            f"no free nonce in words {start_word}..{start_word + max_words - 1}",
            member=member)

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
        """Calldata of ``redeemBatch(rs, signatures)`` (the fast encoder of
        ledger/chain/encoding.py)."""
        return encoding.encode_redeem_batch(self.gateway.selector(self.abi, "redeemBatch"),
                                            items)
