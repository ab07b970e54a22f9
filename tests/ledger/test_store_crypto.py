"""Secrets at rest and member pseudonyms (no database needed)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from eth_account import Account
from pydantic import SecretStr

from ledger import crypto
from ledger.crypto import SECP256K1_N, MasterKey
from ledger.errors import LedgerConfigError
from ledger.settings import Settings


def test_pseudonym_is_stable_and_depends_on_the_key() -> None:
    assert crypto.pseudonym("m-1", b"k" * 32) == crypto.pseudonym("m-1", b"k" * 32)
    assert crypto.pseudonym("m-1", b"k" * 32) != crypto.pseudonym("m-1", b"j" * 32)
    assert crypto.pseudonym("m-1", b"k" * 32) != crypto.pseudonym("m-2", b"k" * 32)
    assert len(bytes.fromhex(crypto.pseudonym("m-1", b"k" * 32))) == 32


def test_custodial_key_is_deterministic_keyed_and_valid() -> None:
    key = crypto.custodial_private_key("13800138000", b"k" * 32)
    assert key == crypto.custodial_private_key("13800138000", b"k" * 32)
    assert key != crypto.custodial_private_key("13800138000", b"j" * 32)
    assert 1 <= int.from_bytes(key, "big") < SECP256K1_N
    address = crypto.custodial_address("13800138000", b"k" * 32)
    assert address == Account.from_key(key).address
    # Not the pseudonym's bytes: knowing a pseudonym must not give the account's key.
    assert key.hex() != crypto.pseudonym("13800138000", b"k" * 32)


def test_new_signing_keys_are_random_and_in_range() -> None:
    keys = {crypto.new_signing_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(k) == 32 and 0 < int.from_bytes(k, "big") < SECP256K1_N for k in keys)


def test_master_key_file_is_created_once_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = MasterKey.load(settings)
    path = settings.data_dir / "master.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = first.encrypt(b"secret")
    assert MasterKey.load(settings).decrypt(token) == b"secret"
    assert [p.name for p in settings.data_dir.iterdir()] == ["master.key"]


def test_concurrent_first_loads_agree_on_one_master_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    tokens: list[bytes] = []
    gate = threading.Barrier(8)

    def load() -> None:
        gate.wait()
        tokens.append(MasterKey.load(settings).encrypt(b"x"))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = MasterKey.load(settings)
    assert len(tokens) == 8 and all(final.decrypt(t) == b"x" for t in tokens)


def test_configured_master_key_is_used_and_a_wrong_one_refused(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    master = MasterKey.load(Settings(data_dir=tmp_path, master_key=SecretStr(key.decode())))
    assert Fernet(key).decrypt(master.encrypt(b"v")) == b"v"
    assert not (tmp_path / "master.key").exists()
    other = MasterKey(Fernet.generate_key())
    with pytest.raises(LedgerConfigError):
        other.decrypt(master.encrypt(b"v"))
    with pytest.raises(LedgerConfigError):
        MasterKey(b"too short")
