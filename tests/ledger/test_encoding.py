"""The hand-written batch encoders must equal the generic ABI encoder byte for byte."""

from __future__ import annotations

import os

import coincurve
import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain.gateway import ChainGateway
from ledger.chain.sender import sign_dynamic_fee
from ledger.contracts.compiler import Artifact
from ledger.points.clients import IssueItem, PointProgramClient, Redemption

from .helpers import runs_beside

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

items = st.lists(st.builds(
    IssueItem,
    member=st.binary(min_size=20, max_size=20).map(to_checksum_address),
    amount=st.integers(min_value=0, max_value=2**256 - 1),
    order_ref=st.binary(min_size=32, max_size=32),
    release_at=st.integers(min_value=0, max_value=2**256 - 1)), max_size=30)


def test_issue_batch_fast_encoding_matches_the_abi_encoder(
        gateway: ChainGateway, artifacts: dict[str, Artifact]) -> None:
    client = PointProgramClient(gateway, artifacts["PointProgram"].abi,
                                to_checksum_address(os.urandom(20)))

    @settings(max_examples=200, deadline=None)
    @given(items)
    def check(batch: list[IssueItem]) -> None:
        assert client.encode_issue_batch(batch) == client.encode(
            "issueBatch", [i.as_tuple() for i in batch])

    check()


uint = st.integers(min_value=0, max_value=2**256 - 1)
redemptions = st.lists(st.tuples(st.builds(
    Redemption, member=st.binary(min_size=20, max_size=20).map(to_checksum_address),
    amount=uint, merchant_id=uint, order_ref=st.binary(min_size=32, max_size=32), nonce=uint,
    deadline=uint), st.binary(max_size=140)), max_size=20)


def test_redeem_batch_fast_encoding_matches_the_abi_encoder(
        gateway: ChainGateway, artifacts: dict[str, Artifact]) -> None:
    client = PointProgramClient(gateway, artifacts["PointProgram"].abi,
                                to_checksum_address(os.urandom(20)))

    @settings(max_examples=200, deadline=None)
    @given(redemptions)
    def check(batch: list[tuple[Redemption, bytes]]) -> None:
        assert client.encode_redeem_batch(batch) == client.encode(
            "redeemBatch", [r.as_tuple() for r, _ in batch], [sig for _, sig in batch])

    check()


def test_the_fast_checksum_and_keccak_equal_eth_utils() -> None:
    from eth_utils.crypto import keccak

    from ledger.chain.encoding import checksum_address, keccak256

    @settings(max_examples=500, deadline=None)
    @given(st.binary(min_size=20, max_size=20), st.lists(st.booleans(), min_size=40,
                                                          max_size=40),
           st.sampled_from(["0x", "0X", ""]))
    def check(raw: bytes, upper: list[bool], prefix: str) -> None:
        # any case mix, any prefix eth_utils takes
        body = "".join(c.upper() if u else c for c, u in zip(raw.hex(), upper, strict=True))
        assert checksum_address(prefix + body) == to_checksum_address(prefix + body)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def check_hash(data: bytes) -> None:
        assert keccak256(data) == keccak(data)

    check()
    check_hash()


def test_a_member_address_is_checked_as_before() -> None:
    import pytest

    from ledger import limits
    from ledger.errors import LedgerValidationError

    good = to_checksum_address("0x" + "ab" * 20)
    assert limits.address(good.lower()) == good
    assert limits.address(good) == good
    wrong = good[:2] + good[2:].swapcase()
    with pytest.raises(LedgerValidationError, match="wrong checksum"):
        limits.address(wrong)
    with pytest.raises(LedgerValidationError, match="zero address"):
        limits.address("0x" + "0" * 40)
    with pytest.raises(LedgerValidationError, match="not an address"):
        limits.address("0x" + "g" * 40)


def test_keccak_from_several_threads_at_once_equals_eth_utils() -> None:
    # keccak256 keeps one sponge per thread, reset for each input: threads hashing at once
    # must not mix their inputs
    import os
    import threading

    from eth_utils.crypto import keccak

    from ledger.chain.encoding import keccak256

    wrong: list[bytes] = []

    def hash_many() -> None:
        for _ in range(3000):
            data = os.urandom(int.from_bytes(os.urandom(1), "big"))
            if keccak256(data) != keccak(data):
                wrong.append(data)

    threads = [threading.Thread(target=hash_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=32, max_size=32).filter(
           lambda k: 0 < int.from_bytes(k, "big") < SECP256K1_N),
       chain_id=st.integers(1, 2**64), nonce=st.integers(0, 2**64 - 1),
       priority=st.integers(0, 2**256 - 1), extra=st.integers(0, 2**200),
       gas=st.integers(21_000, 2**63), value=st.integers(0, 2**256 - 1),
       to=st.one_of(st.none(), st.binary(min_size=20, max_size=20)),
       data=st.one_of(st.binary(max_size=80), st.binary(min_size=1000, max_size=12_000)))
def test_the_outbox_signer_gives_eth_accounts_bytes_and_hash(
        key: bytes, chain_id: int, nonce: int, priority: int, extra: int, gas: int, value: int,
        to: bytes | None, data: bytes) -> None:
    max_fee = min(priority + extra, 2**256 - 1)
    address = None if to is None else to_checksum_address(to)
    tx: dict[str, object] = {"chainId": chain_id, "nonce": nonce, "gas": gas,
                             "maxFeePerGas": max_fee, "maxPriorityFeePerGas": priority,
                             "data": data, "value": value, "type": 2}
    if address is not None:
        tx["to"] = address
    signed = Account.sign_transaction(tx, key)
    raw, tx_hash = sign_dynamic_fee(coincurve.PrivateKey(key), chain_id=chain_id, nonce=nonce,
                                    priority=priority, max_fee=max_fee, gas=gas, to=address,
                                    value=value, data=data)
    assert raw == bytes(signed.raw_transaction)
    assert tx_hash == bytes(signed.hash)


def test_the_outbox_signer_refuses_a_target_that_is_not_an_address() -> None:
    with pytest.raises(ValueError, match="not an address"):
        sign_dynamic_fee(coincurve.PrivateKey(b"\x01" * 32), chain_id=1, nonce=0, priority=1,
                         max_fee=2, gas=21_000, to="0x1234", value=0, data=b"")


def test_keccak_keeps_the_gil_while_it_hashes() -> None:
    # A hash that let the GIL go (pycryptodome's cffi handle does, around each of its three C
    # calls) waited to get it back behind every busy thread of the process: the API's redeem
    # checks hash seven times a line beside the outbox and the indexer. With a switch interval
    # longer than the test, another thread runs only if the hashing thread lets the GIL go.
    from ledger.chain.encoding import keccak256

    def work() -> None:
        for i in range(3000):
            keccak256(i.to_bytes(4, "big") * 30)

    assert runs_beside(work) == 0
