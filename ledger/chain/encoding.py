"""Fast ABI encoders of the two hot batch calls, written directly.

``issueBatch(IssueItem[])`` and ``redeemBatch(Redemption[], bytes[])`` carry up to a few
hundred lines per transaction; the generic encoder validates every value and is ~20x slower
on 200-line batches. ``tests/ledger/test_encoding.py`` checks both byte for byte against
eth_abi. They take any objects with the struct's fields (the point program's typed lines),
so this module knows no capability.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import Crypto.Hash
from Crypto.Hash import keccak as _keccak

from ..errors import LedgerValidationError


def _keccak_lib() -> ctypes.PyDLL | None:
    """pycryptodome's Keccak (the C library ``Crypto.Hash.keccak`` calls) loaded as a
    ``PyDLL``: its calls keep the GIL. Through pycryptodome's own binding each hash released
    and took back the GIL three times; beside a busy thread (the outbox, the indexer, the
    request handlers of one process) each take-back waited for it: 22 us a hash instead of
    5 under one busy thread, 2.4 us through this. None if the library cannot be found."""
    try:
        path = next(Path(Crypto.Hash.__file__).parent.glob("_keccak*.so"))
        lib = ctypes.PyDLL(str(path))
        lib.keccak_init.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t,
                                    ctypes.c_uint8]
        lib.keccak_reset.argtypes = [ctypes.c_void_p]
        lib.keccak_absorb.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.keccak_digest.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                      ctypes.c_uint8]
        lib.keccak_destroy.argtypes = [ctypes.c_void_p]
    except (StopIteration, OSError, AttributeError):
        return None
    return lib


_LIB = _keccak_lib()


class _KeccakState:
    """One thread's Keccak-256 state (capacity 512 bits, 24 rounds), reset before each use;
    freed with its thread."""

    def __init__(self, lib: ctypes.PyDLL) -> None:
        self.lib = lib
        self.state = ctypes.c_void_p()
        if lib.keccak_init(ctypes.byref(self.state), 64, 24):
            raise MemoryError("keccak_init failed")
        self.out = ctypes.create_string_buffer(32)

    def __del__(self) -> None:
        self.lib.keccak_destroy(self.state)


_states = threading.local()


def keccak256(data: bytes) -> bytes:
    """Keccak-256 of ``data``, as ``eth_utils.keccak(data)`` gives it, without its layers
    of argument checks (a third of the cost of accepting an issue line went to two of them:
    the order reference and the member's checksum), and holding the GIL (see
    :func:`_keccak_lib`; ``tests/ledger/test_encoding.py`` compares them on random inputs)."""
    if _LIB is None:
        return bytes(_keccak.new(data=data, digest_bits=256).digest())
    k: _KeccakState | None = getattr(_states, "k", None)
    if k is None:
        k = _states.k = _KeccakState(_LIB)
    else:
        _LIB.keccak_reset(k.state)
    data = bytes(data)
    if _LIB.keccak_absorb(k.state, data, len(data)) or _LIB.keccak_digest(k.state, k.out, 32, 1):
        raise ValueError("keccak failed")
    return k.out.raw


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
