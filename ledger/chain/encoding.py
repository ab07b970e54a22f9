"""Fast ABI encoders of the two hot batch calls, written directly.

``issueBatch(IssueItem[])`` and ``redeemBatch(Redemption[], bytes[])`` carry up to a few
hundred lines per transaction; the generic encoder validates every value and is ~20x slower
on 200-line batches. ``tests/ledger/test_encoding.py`` checks both byte for byte against
eth_abi. They take any objects with the struct's fields (the point program's typed lines),
so this module knows no capability.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from Crypto.Hash import keccak as _keccak

from ..errors import LedgerValidationError


def _keccak_object(data: bytes) -> bytes:
    return bytes(_keccak.new(data=data, digest_bits=256).digest())


def _raw_keccak() -> Callable[[bytes], bytes] | None:
    """Keccak-256 through pycryptodome's C functions, with one sponge per thread reset for
    each input: its hash object allocates and frees a sponge and wraps every call (6 us an
    input here, 4 us this way). None where the library does not expose them."""
    try:
        from Crypto.Util._raw_api import VoidPointer, c_size_t, create_string_buffer
        lib: Any = _keccak._raw_keccak_lib  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return None
    local = threading.local()

    def sponge() -> tuple[Any, Any]:
        state = VoidPointer()
        if lib.keccak_init(state.address_of(), c_size_t(64), 24):  # capacity, rounds
            raise RuntimeError("keccak_init failed")
        # (the state lives as long as the thread: one sponge of 200 bytes a thread)
        local.sponge = (state, state.get(), create_string_buffer(32, None))
        return local.sponge[1], local.sponge[2]

    reset, absorb, digest = lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest

    def keccak(data: bytes) -> bytes:
        try:
            state, out = local.sponge[1], local.sponge[2]
        except AttributeError:
            state, out = sponge()
        if reset(state) or absorb(state, data, len(data)) or digest(state, out, 32, 1):
            return _keccak_object(data)
        return bytes(out)

    try:
        if keccak(b"") != _keccak_object(b""):
            return None
    except Exception:  # noqa: BLE001 - any mismatch of the library: the hash object
        return None
    return keccak


#: Keccak-256 of ``data``, as ``eth_utils.keccak(data)`` gives it, without its layers of
#: argument checks (a third of the cost of accepting an issue line went to two of them: the
#: order reference and the member's checksum), through pycryptodome's C sponge where it can
#: (:func:`_raw_keccak`). The one Keccak of the service's hot paths: order references,
#: checksums, the indexer's addresses, the EIP-712 digests and signers of signed lines.
keccak256: Callable[[bytes], bytes] = _raw_keccak() or _keccak_object


# Bit 5 of each of 40 bytes: what separates an ASCII lower-case letter from its capital.
_CASE_BITS = int.from_bytes(b"\x20" * 40, "big")


def checksum_address(value: str) -> str:
    """The EIP-55 checksummed form of a 40-hex-digit address (any case, ``0x`` or not), as
    ``eth_utils.to_checksum_address`` gives it (``tests/ledger/test_encoding.py`` compares
    them); the caller has checked it is one.

    The 40 characters are changed at once, as one integer: a letter is capitalised where the
    hash's hex digit is 8 or more, i.e. that digit's ASCII byte has bit 6 set (a-f) or bit 3
    set (8, 9; 0-7 have neither); bit 6 of the address's own byte says it is a letter, and
    clearing bit 5 capitalises it (a character at a time took 9 us an address)."""
    body = (value[2:] if value[:2] in ("0x", "0X") else value).lower().encode("ascii")
    digits = int.from_bytes(keccak256(body).hex()[:40].encode("ascii"), "big")
    plain = int.from_bytes(body, "big")
    flip = ((digits >> 1) | (digits << 2)) & (plain >> 1) & _CASE_BITS
    return "0x" + (plain ^ flip).to_bytes(40, "big").decode("ascii")


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
