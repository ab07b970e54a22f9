"""The EIP-712 digests the service checks members' signatures against are hashed in
``ledger.points.service.typed_digest`` (eth-account's ``encode_typed_data`` took ~0.3 ms a
message, the most of a redeem-batch line's check): every message of ``ledger/signing.py``
hashes exactly as eth-account hashes it, a changed field changes the digest, and a message of
another shape goes through eth-account unchanged."""

from __future__ import annotations

import os
import random
import threading
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

from ledger import signing
from ledger.chain import encoding
from ledger.points.service import recover_signer, redeem_digest, typed_digest


def _eth_account(typed: dict[str, Any]) -> bytes:
    m = encode_typed_data(full_message=typed)
    return keccak(b"\x19" + m.version + m.header + m.body)


def _messages(rng: random.Random) -> list[dict[str, Any]]:
    def addr() -> str:
        return Account.create().address

    def big() -> int:
        return rng.choice([0, 1, 2**256 - 1, rng.getrandbits(256), rng.getrandbits(64)])

    dom = {"chain_id": rng.choice([1, 31337, 2**64 + 5]), "program": addr(), "registry": addr()}
    return [
        signing.redeem_typed_data(**dom, member=addr(), amount=big(), merchant_id=big(),
                                  order_ref=os.urandom(32), nonce=big(), deadline=big()),
        signing.convert_typed_data(**dom, member=addr(), amount=big(), to_merchant_id=big(),
                                   min_out=big(), order_ref=os.urandom(32), nonce=big(),
                                   deadline=big()),
        signing.cancel_nonces_typed_data(**dom, member=addr(), word_pos=big() >> 8,
                                         mask=big(), deadline=big()),
        signing.move_account_typed_data(**dom, from_=addr(), to=addr(), deadline=big()),
    ]


def test_every_signed_message_hashes_as_eth_account_hashes_it() -> None:
    rng = random.Random(14)
    for _ in range(25):
        for typed in _messages(rng):
            assert typed_digest(typed) == _eth_account(typed), typed["primaryType"]


def test_a_changed_field_or_domain_changes_the_digest() -> None:
    typed = _messages(random.Random(7))[0]
    base = typed_digest(typed)
    for field in ("amount", "nonce", "deadline", "merchantId"):
        changed = {**typed, "message": {**typed["message"], field: typed["message"][field] ^ 1}}
        assert typed_digest(changed) != base and typed_digest(changed) == _eth_account(changed)
    other = {**typed, "domain": {**typed["domain"], "verifyingContract": Account.create().address}}
    assert typed_digest(other) != base and typed_digest(other) == _eth_account(other)


def test_a_message_of_another_shape_goes_through_eth_account() -> None:
    typed = {
        "types": {"EIP712Domain": signing.EIP712_DOMAIN_TYPES,
                  "Note": [{"name": "text", "type": "string"}, {"name": "n", "type": "int256"}]},
        "primaryType": "Note",
        "domain": signing.domain(chain_id=5, program=Account.create().address,
                                 registry=Account.create().address),
        "message": {"text": "hello", "n": -3},
    }
    assert typed_digest(typed) == _eth_account(typed)


def test_a_redeem_digest_packed_directly_is_eth_accounts_for_random_messages() -> None:
    rng = random.Random(16)
    for _ in range(50):
        kw: dict[str, Any] = {
            "chain_id": rng.choice([1, 31337, rng.getrandbits(64)]),
            "program": Account.create().address, "registry": Account.create().address,
            "member": rng.choice([Account.create().address, Account.create().address.lower()]),
            "amount": rng.getrandbits(rng.choice([8, 64, 256])),
            "merchant_id": rng.getrandbits(rng.choice([8, 256])),
            "order_ref": os.urandom(32), "nonce": rng.getrandbits(rng.choice([1, 64, 256])),
            "deadline": rng.getrandbits(rng.choice([32, 256]))}
        assert redeem_digest(**kw) == _eth_account(signing.redeem_typed_data(**kw)), kw


def test_a_signer_recovered_through_coincurve_is_the_one_eth_account_recovers() -> None:
    for _ in range(50):
        member = Account.create()
        digest = os.urandom(32)
        sig = bytes(Account.unsafe_sign_hash(digest, member.key).signature)
        recovered = recover_signer(digest, sig)
        assert recovered == member.address.lower()
        assert recovered == Account._recover_hash(digest, signature=sig).lower()
        # The same signature over another digest is another signer's.
        assert recover_signer(os.urandom(32), sig) != recovered


def test_recovery_refuses_a_digest_not_32_bytes_and_a_signature_that_recovers_nothing() -> None:
    member = Account.create()
    digest = os.urandom(32)
    sig = bytes(Account.unsafe_sign_hash(digest, member.key).signature)
    # libsecp256k1 reads 32 bytes of the digest: a shorter one must never reach it.
    for bad_digest in (digest[:31], digest + b"\0", b""):
        with pytest.raises(ValueError):
            recover_signer(bad_digest, sig)
    for bad_sig in (sig[:64], sig[:64] + bytes((29,)), sig[:64] + bytes((1,))):
        with pytest.raises(ValueError):
            recover_signer(digest, bad_sig)
    # r = 0 parses but no key recovers from it; r >= the curve order does not parse.
    for r in (bytes(32), b"\xff" * 32):
        with pytest.raises(ValueError):
            recover_signer(digest, r + sig[32:])


def test_the_line_checks_keccak_is_eth_utils_keccak_for_every_length_and_thread() -> None:
    for n in [*range(0, 300), 1000, 4096]:
        data = os.urandom(n)
        assert encoding.keccak256(data) == keccak(data), n
    # One Keccak state per thread: threads hashing at once do not mix their messages.
    results: dict[int, list[bool]] = {}

    def hash_many(k: int) -> None:
        msgs = [os.urandom(k * 7 + i % 50) for i in range(500)]
        results[k] = [encoding.keccak256(m) == keccak(m) for m in msgs]

    threads = [threading.Thread(target=hash_many, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(all(r) for r in results.values()) and len(results) == 4
    assert encoding.keccak256 is not encoding._keccak_object  # the fast path, not the fallback
