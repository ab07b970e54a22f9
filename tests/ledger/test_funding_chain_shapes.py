"""Fees, funding, confirmations and receipts on chains shaped like production: a zero base
fee (as Besu with ``zeroBaseFee`` and ``--min-gas-price=0``) and a block every second
(``anvil --block-time 1``), each on its own real anvil."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from ledger.alliance import Alliance
from ledger.merchants.service import admit_merchant
from ledger.outbox import repos as outbox_repos
from ledger.outbox.views import get_operation
from ledger.points.service import IssueLine, request_issue, request_issue_batch
from ledger.runtime import indexer, outbox_worker
from ledger.settings import Settings
from tests.conftest import ARTIFACT_CACHE
from tests.nodes import anvil_node


@pytest.fixture(scope="module")
def zero_fee_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with anvil_node(tmp_path_factory.mktemp("zero-fee"), "--base-fee", "0",
                    "--gas-price", "0") as url:
        yield url


@pytest.fixture(scope="module")
def block_time_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with anvil_node(tmp_path_factory.mktemp("block-time"), "--block-time", "1") as url:
        yield url


def _open(url: str, tmp: Path, **overrides: object) -> Alliance:
    return Alliance.open(Settings(data_dir=tmp, rpc_url=url, chain_id=31337,
                                  artifacts_dir=ARTIFACT_CACHE, **overrides))  # type: ignore[arg-type]


def _issue_and_settle(a: Alliance, merchant_id: int, n: int, member: str | None = None
                      ) -> list[str]:
    member = member or Account.create().address
    with a.store.session() as s:
        ops = [request_issue(a, s, merchant_id=merchant_id, member=member, points=i + 1,
                             order_id=f"SHAPE-{i}").id for i in range(n)]
    worker = outbox_worker(a)
    deadline = time.monotonic() + 30
    while any(get_operation(a, operation_id=o, merchant_id=merchant_id).status != "confirmed"
              for o in ops):
        assert time.monotonic() < deadline, "operations not confirmed in time"
        if worker.process_once() == 0:
            time.sleep(0.1)
    return ops


def test_zero_base_fee_and_zero_tip_need_no_gas_money(zero_fee_url: str,
                                                      tmp_path: Path) -> None:
    a = _open(zero_fee_url, tmp_path, priority_fee_wei=0)
    try:
        assert a.gateway.fees() == (0, 0)
        m = admit_merchant(a, name="Zero Fee Mart", symbol="ZFM", rate=1)
        assert a.gateway.balance(m.account) == 0  # nothing was sent to it: gas is free
        ops = _issue_and_settle(a, m.merchant_id, 3)
        assert a.gateway.balance(m.account) == 0
        tx_hash = get_operation(a, operation_id=ops[0], merchant_id=m.merchant_id).tx_hash
        assert tx_hash is not None
        receipt = a.gateway.receipt(tx_hash)
        assert receipt is not None and receipt["effectiveGasPrice"] == 0
    finally:
        a.close()


def test_zero_base_fee_with_the_nodes_tip_funds_keys_and_confirms(zero_fee_url: str,
                                                                 tmp_path: Path) -> None:
    a = _open(zero_fee_url, tmp_path)
    try:
        max_fee, priority = a.gateway.fees()
        assert priority > 0 and max_fee == priority  # base fee 0: the tip is the whole price
        m = admit_merchant(a, name="Tipping Mart", symbol="TIP", rate=1)
        assert a.gateway.balance(m.account) == a.settings.relayer_funding_wei
        _issue_and_settle(a, m.merchant_id, 2)
        assert a.gateway.balance(m.account) < a.settings.relayer_funding_wei
    finally:
        a.close()


def test_one_second_blocks_batch_confirm_after_depth_and_keep_nonces_contiguous(
        block_time_url: str, tmp_path: Path) -> None:
    a = _open(block_time_url, tmp_path, confirmations=1)
    try:
        m = admit_merchant(a, name="Every Second Store", symbol="ESS", rate=1)
        assert a.gateway.balance(m.account) == a.settings.relayer_funding_wei
        member = Account.create().address
        with a.store.session() as s:
            batch = request_issue_batch(a, s, merchant_id=m.merchant_id, items=[
                IssueLine(member=member, points=10, order_id=f"ESS-B{i}") for i in range(50)])
        t0 = time.monotonic()
        ops = _issue_and_settle(a, m.merchant_id, 20, member)
        views = [get_operation(a, operation_id=o, merchant_id=m.merchant_id)
                 for o in [*ops, batch.id]]
        assert {v.status for v in views} == {"confirmed"}
        # Confirmed means one block on top of the receipt's block.
        assert a.gateway.block_number() >= max(v.block_number or 0 for v in views) + 1
        # Everything queued together went out in a few transactions landing within a few
        # blocks of each other, with contiguous nonces.
        with a.store.read_session() as s:
            txs = outbox_repos.transactions_of(s, signer=m.account)
            nonces = [t.nonce for t in txs]
            mined = {t.mined_block for t in txs}
        assert nonces == list(range(len(nonces))) and len(nonces) <= 3
        assert len(mined) <= 2
        assert time.monotonic() - t0 < 10
        indexer(a).catch_up()
        program = a.contracts.program(m.program)
        assert program.balance_of(member) == 50 * 10 + sum(range(1, 21))
    finally:
        a.close()
