"""The hand-written batch encoders must equal the generic ABI encoder byte for byte."""

from __future__ import annotations

import os

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
