"""Secrets at rest and member pseudonyms.

- :class:`MasterKey` encrypts every secret the store keeps (merchants' relaying keys, API
  secrets, the pseudonym key) with Fernet (AES-128-CBC + HMAC-SHA256). It comes from
  ``settings.master_key`` or, for a local set-up, a ``master.key`` file (mode 600) in the
  data dir, created once.
- A member known by an alliance member id (personal data: often a phone number) appears on
  chain only as an account derived from an HMAC-SHA256 pseudonym under a secret key, never as
  a plain hash, which could be reversed by trying every phone number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from eth_account import Account

from .errors import LedgerConfigError
from .settings import Settings

log = logging.getLogger(__name__)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class MasterKey:
    """Encrypts and decrypts the store's secrets."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise LedgerConfigError("the master key must be 32 bytes, urlsafe base64") from exc

    @classmethod
    def load(cls, settings: Settings) -> MasterKey:
        """The configured master key, or the data dir's own (created on first use)."""
        if settings.master_key is not None:
            return cls(settings.master_key.get_secret_value().encode())
        path = settings.data_dir / "master.key"
        if not path.exists():
            _create_key_file(path)
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s is readable by others (mode %o): chmod 600 it", path, mode)
        return cls(path.read_bytes().strip())

    def encrypt(self, plaintext: bytes) -> bytes:
        """The Fernet token of ``plaintext`` (authenticated, with a fresh IV each time)."""
        return self._fernet.encrypt(plaintext)

    def decrypt(self, token: bytes) -> bytes:
        """The plaintext of a token made by :meth:`encrypt` under the same key."""
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise LedgerConfigError("a stored secret does not open with this master key") from exc


def _create_key_file(path: Path) -> None:
    """Write a new master key to ``path`` (mode 600) unless another process got there first.

    The key is written whole to a private temporary file and then hard-linked into place, so
    no reader ever sees a partial key and two processes starting together agree on one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    finally:
        tmp.unlink(missing_ok=True)


def new_signing_key() -> bytes:
    """A fresh random secp256k1 private key."""
    while True:
        key = secrets.token_bytes(32)
        if 0 < int.from_bytes(key, "big") < SECP256K1_N:
            return key


def new_api_secret() -> str:
    """A fresh random API secret (256 bits, urlsafe base64 without padding)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def fingerprint(secret: str) -> str:
    """The SHA-256 hex of a secret: identifies it without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def pseudonym(member_id: str, key: bytes) -> str:
    """The keyed pseudonym of an alliance member id (hex HMAC-SHA256).

    The message is domain-separated (``pseudonym:``) from the custodial key derivation,
    which uses the same key."""
    return hmac.new(key, b"pseudonym:" + member_id.encode(), hashlib.sha256).hexdigest()


def custodial_private_key(member_id: str, key: bytes) -> bytes:
    """The private key of the account the service holds for a member id until a wallet is
    linked: derived from the keyed HMAC, so it is stable and reveals nothing of the id."""
    digest = hmac.new(key, b"custodial:" + member_id.encode(), hashlib.sha256).digest()
    n = int.from_bytes(digest, "big") % (SECP256K1_N - 1) + 1
    return n.to_bytes(32, "big")


def custodial_address(member_id: str, key: bytes) -> str:
    """The checksummed address of :func:`custodial_private_key`."""
    return str(Account.from_key(custodial_private_key(member_id, key)).address)
