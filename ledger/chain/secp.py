"""secp256k1 public-key recovery and recoverable signing that keep the GIL.

The cryptography is libsecp256k1's, the copy coincurve ships: its cffi extension
(``coincurve/_libsecp256k1*.so``) links the library in and exports its symbols, so this module
opens that same file with ``ctypes.PyDLL`` and calls the same four functions coincurve would
(context, parse, recover, serialize; or sign, serialize), only holding the GIL. coincurve's
cffi bindings let the GIL go around each C call; a thread that lets it go while others run
Python waits to get it back, up to the interpreter's switch interval (5 ms). Measured with
``scripts/bench_secp.py`` (2026-11-27, thirteenth round, load 4.7-6.7): the CPU of a recovery
is the same either way (47-53 us), its wall time beside two busy threads 352-366 us through
coincurve and 144-152 us here (0.41x); signing likewise (0.38-0.42x). No change in the CPU per
redemption showed through the load.

Where the library or a symbol is missing, or the known vector below does not come out as
coincurve gives it, :func:`recover_public_key` and :func:`sign_recoverable` go through
coincurve's public API instead, with the same results and the same rejections.
``tests/ledger/test_secp.py`` holds both to coincurve's and to keeping the GIL.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable
from typing import Any

import coincurve

_CONTEXT_NONE = 1  # SECP256K1_CONTEXT_NONE (every context signs and verifies since 0.2)
_EC_UNCOMPRESSED = 2  # SECP256K1_EC_UNCOMPRESSED

#: ``(digest, signature64, recid) -> 64-byte public key (x . y)``; ValueError if none.
Recover = Callable[[bytes, bytes, int], bytes]
#: ``(digest, secret) -> r . s . recid`` (65 bytes); ValueError for a bad key.
Sign = Callable[[bytes, bytes], bytes]


def _check_recover_args(digest: bytes, signature: bytes, recid: int) -> None:
    if len(digest) != 32:
        raise ValueError("the digest must be 32 bytes")
    if len(signature) != 64:
        raise ValueError("the signature (r . s) must be 64 bytes")
    if not 0 <= recid <= 3:
        raise ValueError("the recovery id must be 0-3")


def _coincurve_recover(digest: bytes, signature: bytes, recid: int) -> bytes:
    _check_recover_args(digest, signature, recid)
    key = coincurve.PublicKey.from_signature_and_message(signature + bytes((recid,)), digest,
                                                         hasher=None)
    return key.format(compressed=False)[1:]


def _coincurve_sign(digest: bytes, secret: bytes) -> bytes:
    if len(digest) != 32:
        raise ValueError("the digest must be 32 bytes")
    return coincurve.PrivateKey(secret).sign_recoverable(digest, hasher=None)


def _library() -> Any:
    """coincurve's extension, opened to be called holding the GIL; None if not there."""
    folder = os.path.dirname(coincurve.__file__)
    for path in sorted(glob.glob(os.path.join(folder, "_libsecp256k1*.so"))):
        try:
            return ctypes.PyDLL(path)
        except OSError:
            continue
    return None


def _raw() -> tuple[Recover, Sign] | None:
    """The GIL-keeping recovery and signing, or None where the library does not serve them."""
    lib = _library()
    if lib is None:
        return None
    try:
        create, randomize = lib.secp256k1_context_create, lib.secp256k1_context_randomize
        parse = lib.secp256k1_ecdsa_recoverable_signature_parse_compact
        recover, serialize = lib.secp256k1_ecdsa_recover, lib.secp256k1_ec_pubkey_serialize
        sign = lib.secp256k1_ecdsa_sign_recoverable
        sig_out = lib.secp256k1_ecdsa_recoverable_signature_serialize_compact
    except AttributeError:
        return None
    p, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    create.restype, create.argtypes = p, [ctypes.c_uint]
    randomize.restype, randomize.argtypes = i, [p, cp]
    parse.restype, parse.argtypes = i, [p, cp, cp, i]
    recover.restype, recover.argtypes = i, [p, cp, cp, cp]
    serialize.restype = i
    serialize.argtypes = [p, cp, ctypes.POINTER(ctypes.c_size_t), cp, ctypes.c_uint]
    # (nonce function and its data NULL: RFC 6979, as coincurve's default)
    sign.restype, sign.argtypes = i, [p, cp, cp, cp, p, p]
    sig_out.restype, sig_out.argtypes = i, [p, cp, ctypes.POINTER(i), cp]
    ctx = create(_CONTEXT_NONE)
    if not ctx:
        return None
    # Blinding of the signing key's multiplications against timing, as coincurve seeds its
    # own context (the context lives as long as the process; it is only read afterwards).
    if not randomize(ctx, os.urandom(32)):
        return None
    local = threading.local()

    def buffers() -> tuple[Any, ...]:
        # One set a thread (a switch between two of the calls below may run another
        # thread's recovery): the 65-byte opaque signature, the 64-byte opaque key, the
        # 65-byte serialised key and its length, the recovery id.
        local.buffers = (ctypes.create_string_buffer(65), ctypes.create_string_buffer(64),
                         ctypes.create_string_buffer(65), ctypes.c_size_t(65), ctypes.c_int(),
                         ctypes.create_string_buffer(64))
        return local.buffers  # type: ignore[no-any-return]

    def mine() -> tuple[Any, ...]:
        """This thread's buffers."""
        try:
            return local.buffers  # type: ignore[no-any-return]
        except AttributeError:
            return buffers()

    def recover_raw(digest: bytes, signature: bytes, recid: int) -> bytes:
        _check_recover_args(digest, signature, recid)
        rsig, key, out, size, _, _ = mine()
        # (bytes() of a bytes object is that object: ctypes wants bytes, not bytearray)
        digest, signature = bytes(digest), bytes(signature)
        # parse refuses r or s not below the order; recover refuses r or s zero and an r
        # that is no point's x: the cases coincurve raises for, with its messages' meaning.
        if not parse(ctx, rsig, signature, recid):
            raise ValueError("Failed to parse recoverable signature.")
        if not recover(ctx, key, rsig, digest):
            raise ValueError("failed to recover ECDSA public key")
        size.value = 65
        if not serialize(ctx, out, ctypes.byref(size), key, _EC_UNCOMPRESSED) \
                or size.value != 65:
            raise ValueError("failed to serialise the public key")
        return out.raw[1:]  # type: ignore[no-any-return]

    def sign_raw(digest: bytes, secret: bytes) -> bytes:
        if len(digest) != 32:
            raise ValueError("the digest must be 32 bytes")
        if len(secret) != 32:
            raise ValueError("a secret key is 32 bytes")
        rsig, _, _, _, recid, out = mine()
        digest, secret = bytes(digest), bytes(secret)
        # refuses a key of zero or not below the order, as coincurve's PrivateKey does
        if not sign(ctx, rsig, digest, secret, None, None):
            raise ValueError("The private key was invalid.")
        sig_out(ctx, out, ctypes.byref(recid), rsig)
        return out.raw + bytes((recid.value,))  # type: ignore[no-any-return]

    # The known vector: a key's signature of a digest, and its recovery, as coincurve gives them.
    try:
        secret, digest = (7).to_bytes(32, "big"), bytes(range(32))
        signature = sign_raw(digest, secret)
        if signature != _coincurve_sign(digest, secret) or recover_raw(
                digest, signature[:64], signature[64]) != _coincurve_recover(
                digest, signature[:64], signature[64]):
            return None
    except Exception:  # noqa: BLE001 - any mismatch of the library: coincurve's own API
        return None
    return recover_raw, sign_raw


_fast = _raw()

#: Whether the GIL-keeping calls are in use (False: coincurve's public API).
HOLDS_GIL = _fast is not None

#: The 64-byte public key (x . y, no 0x04 prefix) that signed the 32-byte ``digest`` with
#: ``signature`` (r . s, 64 bytes) and recovery id ``recid`` (0-3); ValueError when none does
#: (r or s zero or not below the order, r no point's x, a bad length or id). No low-s rule:
#: the callers apply theirs first.
recover_public_key: Recover = _fast[0] if _fast else _coincurve_recover

#: The recoverable signature (r . s . recid, 65 bytes, RFC 6979 nonce, low s) of the 32-byte
#: ``digest`` by the 32-byte ``secret``, as coincurve's ``PrivateKey.sign_recoverable`` with
#: ``hasher=None`` makes it; ValueError for a secret of zero or not below the order.
sign_recoverable: Sign = _fast[1] if _fast else _coincurve_sign
