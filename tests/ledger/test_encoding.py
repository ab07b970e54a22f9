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
