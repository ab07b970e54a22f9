"""Fast ABI encoders of the two hot batch calls, written directly.

``issueBatch(IssueItem[])`` and ``redeemBatch(Redemption[], bytes[])`` carry up to a few
hundred lines per transaction; the generic encoder validates every value and is ~20x slower
on 200-line batches. ``tests/ledger/test_encoding.py`` checks both byte for byte against
eth_abi. They take any objects with the struct's fields (the point program's typed lines),
so this module knows no capability.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from Crypto.Hash import keccak as _keccak

from ..errors import LedgerValidationError


def keccak256(data: bytes) -> bytes:
    """Keccak-256 of ``data``, as ``eth_utils.keccak(data)`` gives it, without its layers
    of argument checks (a third of the cost of accepting an issue line went to two of them:
    the order reference and the member's checksum)."""
    return bytes(_keccak.new(data=data, digest_bits=256).digest())


_UPPER = frozenset("89abcdef")


def checksum_address(value: str) -> str:
    """The EIP-55 checksummed form of a 40-hex-digit address (any case, ``0x`` or not), as
    ``eth_utils.to_checksum_address`` gives it (``tests/ledger/test_encoding.py`` compares
    them); the caller has checked it is one."""
    body = (value[2:] if value[:2] in ("0x", "0X") else value).lower()
    digest = keccak256(body.encode("ascii")).hex()[:40]
    return "0x" + "".join(c.upper() if d in _UPPER else c
                          for c, d in zip(body, digest, strict=True))


class IssueLine(Protocol):
    """``IPointProgram.IssueItem``: member, amount, order reference, release time."""

    @property
    def member(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def order_ref(self) -> bytes: ...
    @property
    def release_at(self) -> int: ...


class RedeemLine(Protocol):
    """``IPointProgram.Redemption``: what a member signs to spend points."""

    @property
    def member(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def merchant_id(self) -> int: ...
    @property
    def order_ref(self) -> bytes: ...
    @property
    def nonce(self) -> int: ...
    @property
    def deadline(self) -> int: ...


def encode_issue_batch(selector: bytes, items: Sequence[IssueLine]) -> bytes:
    """Calldata of ``issueBatch(items)``.

    ``IssueItem[]`` is a dynamic array of static tuples, so its ABI encoding is the
    selector, the array's offset (32), its length, then four 32-byte words per item."""
    out = bytearray(selector)
    out += (32).to_bytes(32, "big") + len(items).to_bytes(32, "big")
    for it in items:
        if len(it.order_ref) != 32:
            raise LedgerValidationError("order_ref must be 32 bytes", field="order_ref")
        out += bytes(12) + bytes.fromhex(it.member[2:])
        out += it.amount.to_bytes(32, "big")
        out += it.order_ref
        out += it.release_at.to_bytes(32, "big")
    return bytes(out)


def encode_redeem_batch(selector: bytes, items: Sequence[tuple[RedeemLine, bytes]]) -> bytes:
    """Calldata of ``redeemBatch(rs, signatures)``.

    Head: the offsets of the two arrays. ``rs``: its length, six words per (static)
    Redemption. ``signatures``: its length, one offset per element (from the start of the
    element area), then each as its length and its bytes padded to 32."""
    n = len(items)
    out = bytearray(selector)
    out += (64).to_bytes(32, "big") + (64 + 32 + 192 * n).to_bytes(32, "big")
    out += n.to_bytes(32, "big")
    for r, _ in items:
        if len(r.order_ref) != 32:
            raise LedgerValidationError("order_ref must be 32 bytes", field="order_ref")
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
