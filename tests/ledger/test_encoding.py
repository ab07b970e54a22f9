"""The hand-written batch encoders must equal the generic ABI encoder byte for byte."""

from __future__ import annotations

import os
from typing import Any

from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain.gateway import ChainGateway
from ledger.contracts.compiler import Artifact
from ledger.points.clients import IssueItem, PointProgramClient, Redemption

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


def test_keccak_holding_the_gil_equals_eth_utils_in_many_threads_at_once() -> None:
    """Each thread keeps a Keccak state of its own and resets it per hash: hashes of every
    length around the sponge's rate (136 bytes), from 8 threads at once, and a thread's
    state freed when it ends, all equal eth_utils'."""
    import threading

    from eth_utils.crypto import keccak

    from ledger.chain import encoding

    assert encoding._LIB is not None  # the GIL-holding path is the one measured here
    inputs = [os.urandom(n) for n in (*range(0, 300), 1000, 4096, 100_000)]
    want = [keccak(d) for d in inputs]
    bad: list[int] = []

    def run(offset: int) -> None:
        for k in range(3 * len(inputs)):
            i = (k * 7 + offset) % len(inputs)
            if encoding.keccak256(inputs[i]) != want[i]:
                bad.append(i)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []
    assert encoding.keccak256(bytearray(b"abc")) == keccak(b"abc")


def test_keccak_falls_back_to_pycryptodome_without_its_library(monkeypatch: Any) -> None:
    from eth_utils.crypto import keccak

    from ledger.chain import encoding

    monkeypatch.setattr(encoding, "_LIB", None)
    for n in (0, 1, 135, 136, 137, 500):
        data = os.urandom(n)
        assert encoding.keccak256(data) == keccak(data)
