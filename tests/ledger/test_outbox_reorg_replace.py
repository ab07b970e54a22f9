"""What the outbox records when the chain moves a transaction or a fee bump replaces one
(issue 14): a reorganisation that mines the same transaction again in another block moves
the operation's block number with it (made with anvil's ``anvil_reorg``), and every
fee-bumped replacement is recorded in ``chain_txs`` (hash, fees, nonce, its operations)
before it is broadcast, so the rollback's rebroadcast and the audit trail see it. Real anvil,
real store."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from sqlalchemy import select

from ledger.alliance import Alliance
from ledger.merchants.service import AdmittedMerchant, admit_merchant
from ledger.outbox import repos as outbox_repos
from ledger.outbox.views import get_operation
from ledger.points.service import request_issue
from ledger.runtime import outbox_worker
from ledger.settings import Settings
from ledger.store.models import ChainTx, ChainTxOperation

from .ledger_fixtures import _alliance


@dataclass(frozen=True)
class Tx:
    """A ``chain_txs`` row as read."""

    tx_hash: str
    signer: str
    nonce: int
    raw: str
    max_fee: int
    priority_fee: int
    status: str
    lines: int
    mined_block: int | None


def _row(t: ChainTx) -> Tx:
    return Tx(t.tx_hash, t.signer, t.nonce, t.raw, t.max_fee, t.priority_fee, t.status,
              t.lines, t.mined_block)


def _tx_of(alliance: Alliance, op_id: str) -> Tx:
    with alliance.store.read_session() as s:
        op = outbox_repos.get_operation(s, op_id)
        assert op is not None and op.tx_hash is not None
        tx = s.get(ChainTx, op.tx_hash)
        assert tx is not None
        return _row(tx)


def test_a_reorg_that_mines_the_transaction_again_in_another_block_moves_the_operation(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    gw = alliance.gateway
    mid = store_merchant.merchant_id
    with alliance.store.session() as s:
        op = request_issue(alliance, s, merchant_id=mid, member=Account.create().address,
                           points=5, order_id="MOVED-1")
    outbox_worker(alliance).drain()
    first = get_operation(alliance, operation_id=op.id, merchant_id=mid)
    assert first.status == "confirmed" and first.block_number == gw.block_number()
    tx = _tx_of(alliance, op.id)
    assert tx.mined_block == first.block_number
    for _ in range(2):
        gw.rpc("evm_mine")
    # The last three blocks are replaced; the same signed transaction lands in the second
    # new one, a block later than before.
    gw.rpc("anvil_reorg", [3, [[tx.raw, 1]]])
    receipt = gw.receipt(tx.tx_hash)
    assert receipt is not None and int(receipt["blockNumber"]) == first.block_number + 1

    outbox_worker(alliance).process_once()

    moved = get_operation(alliance, operation_id=op.id, merchant_id=mid)
    assert moved.status == "confirmed"
    assert moved.block_number == first.block_number + 1
    assert _tx_of(alliance, op.id).mined_block == first.block_number + 1


@pytest.fixture
def slow_receipts(settings: Settings) -> Iterator[Alliance]:
    """An alliance whose senders replace a transaction unmined after one second."""
    yield from _alliance(settings, receipt_timeout_s=1.0)


def _poll(done: Callable[[], bool], step: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "timed out"
        step()
        time.sleep(0.02)


def test_a_fee_bumped_replacement_is_recorded_with_its_operations_before_it_is_sent(
        slow_receipts: Alliance) -> None:
    alliance = slow_receipts
    gw = alliance.gateway
    mid = admit_merchant(alliance, name="Bump Store", symbol="BMP", rate=1).merchant_id
    with alliance.store.session() as s:
        op = request_issue(alliance, s, merchant_id=mid, member=Account.create().address,
                           points=3, order_id="BUMP-1")
    worker = outbox_worker(alliance)
    gw.rpc("evm_setAutomine", [False])
    try:
        # Nothing is mined: after the receipt timeout the thread's round signs a replacement
        # at the same nonce with higher fees (before it gives the transaction up, at 3x).
        worker.step()
        original = _tx_of(alliance, op.id)
        _poll(lambda: len(_txs_at(alliance, original.signer, original.nonce)) >= 2,
              worker.step, 20)
        gw.rpc("evm_mine")
        _poll(lambda: get_operation(alliance, operation_id=op.id,
                                    merchant_id=mid).status == "confirmed", worker.step, 20)
    finally:
        gw.rpc("evm_setAutomine", [True])
    done = get_operation(alliance, operation_id=op.id, merchant_id=mid)
    assert done.status == "confirmed"
    txs = _txs_at(alliance, original.signer, original.nonce)
    by_hash = {t.tx_hash: t for t in txs}
    replacement = by_hash[done.tx_hash]
    assert replacement.tx_hash != original.tx_hash
    assert replacement.max_fee > original.max_fee
    assert replacement.priority_fee > original.priority_fee
    assert replacement.status == "mined" and replacement.mined_block == done.block_number
    assert by_hash[original.tx_hash].status == "replaced"
    assert replacement.lines == original.lines
    with alliance.store.read_session() as s:
        linked = {t: set(s.scalars(select(ChainTxOperation.operation_id)
                                   .where(ChainTxOperation.tx_hash == t))) for t in by_hash}
    assert all(ops == {op.id} for ops in linked.values())
    assert gw.nonce(original.signer, "latest") == original.nonce + 1  # exactly one landed


def _txs_at(alliance: Alliance, signer: str, nonce: int) -> list[Tx]:
    with alliance.store.read_session() as s:
        return [_row(t) for t in s.scalars(select(ChainTx).where(ChainTx.signer == signer,
                                                                 ChainTx.nonce == nonce))]
