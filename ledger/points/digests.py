"""Keccak-256 for the hashes a signed line needs (its order reference, its EIP-712 struct and
digest, the address of the key that signed it): five a redemption line, each through
pycryptodome's ``keccak.new``, whose hash object and buffers cost ~3 of its ~5 us.

:func:`keccak256` calls the same C functions (pycryptodome's ``_keccak``) on one Keccak
state per thread, reset for each message: ~1.7 us. Where pycryptodome was not built with
cffi (its ctypes fallback) it is :func:`ledger.chain.encoding.keccak256` itself. Tests hold it
equal to eth-utils' keccak on messages of every length around the block size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from Crypto.Hash import keccak as _pycryptodome_keccak
from Crypto.Util import _raw_api

from ..chain import encoding

_CAPACITY_BYTES = 64
_ROUNDS = 24
_KECCAK_PADDING = 0x01


def _raw_keccak() -> Callable[[bytes], bytes] | None:
    lib: Any = getattr(_pycryptodome_keccak, "_raw_keccak_lib", None)
    ffi: Any = getattr(_raw_api, "ffi", None)
    if lib is None or ffi is None or getattr(_raw_api, "backend", None) != "cffi":
        return None
    local = threading.local()

    def keccak256(data: bytes) -> bytes:
        state = getattr(local, "state", None)
        if state is None:
            holder = ffi.new("void **")
            if lib.keccak_init(holder, _CAPACITY_BYTES, _ROUNDS):
                raise RuntimeError("keccak_init failed")
            state, local.state, local.out = holder[0], holder[0], ffi.new("uint8_t[32]")
        out = local.out
        if lib.keccak_reset(state) or lib.keccak_absorb(state, data, len(data)) or \
                lib.keccak_digest(state, out, 32, _KECCAK_PADDING):
            raise RuntimeError("keccak failed")
        return bytes(ffi.buffer(out))

    return keccak256


keccak256: Callable[[bytes], bytes] = _raw_keccak() or encoding.keccak256
