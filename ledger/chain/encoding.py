"""Fast ABI encoders of the two hot batch calls, written directly.

``issueBatch(IssueItem[])`` and ``redeemBatch(Redemption[], bytes[])`` carry up to a few
hundred lines per transaction; the generic encoder validates every value and is ~20x slower
on 200-line batches. ``tests/ledger/test_encoding.py`` checks both byte for byte against
eth_abi. They take any objects with the struct's fields (the point program's typed lines),
so this module knows no capability.
"""

from __future__ import annotations

import ctypes
import os
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
    input here, 4 us this way). None where the library does not expose them.

    The library is opened with ``ctypes.PyDLL``, which calls it holding the GIL, not through
    pycryptodome's cffi handle, which lets the GIL go around each of the three calls a hash
    makes: a thread that lets it go while others run Python waits to get it back, up to the
    interpreter's switch interval (5 ms). With two threads busy beside it, a hash cost 23-29
    us of CPU and 2.3-3.2 ms of wall time that way, 2.2 us of each held (1.55 us against 2.3
    alone; 2026-11-27): the API's redeem checks hash seven times a line beside the outbox and
    the indexer. ``tests/ledger/test_encoding.py`` holds it to keccak's values and to keeping
    the GIL."""
    try:
        from Crypto.Util import _raw_api
        raw_api: Any = _raw_api
        names = [raw_api.pycryptodome_filename(["Crypto", "Hash"], "_keccak" + ext)
                 for ext in raw_api.extension_suffixes]
        lib = ctypes.PyDLL(next(n for n in names if os.path.isfile(n)))
        init, reset, absorb, digest = (lib.keccak_init, lib.keccak_reset, lib.keccak_absorb,
                                       lib.keccak_digest)
    except (ImportError, AttributeError, OSError, StopIteration):
        return None
    init.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_uint8]
    reset.argtypes = [ctypes.c_void_p]
    absorb.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    digest.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint8]
    local = threading.local()

    def sponge() -> tuple[Any, Any]:
        state = ctypes.c_void_p()
        if init(ctypes.byref(state), 64, 24):  # capacity, rounds
            raise RuntimeError("keccak_init failed")
        # (the state lives as long as the thread: one sponge of 200 bytes a thread)
        local.sponge = (state, ctypes.create_string_buffer(32))
        return local.sponge  # type: ignore[no-any-return]

    def keccak(data: bytes) -> bytes:
        try:
            state, out = local.sponge
        except AttributeError:
            state, out = sponge()
        if type(data) is not bytes:
            data = bytes(data)  # (a bytearray or memoryview: c_char_p takes bytes)
        if reset(state) or absorb(state, data, len(data)) or digest(state, out, 32, 1):
            return _keccak_object(data)
        return out.raw  # type: ignore[no-any-return]

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
