"""A batch the block cannot hold (hardening, found by the coupons benchmark: a 1,000-line issue
batch had a gas bound of 90M on a 60M-gas chain, the node refused it for ever, and every later
operation of that merchant waited behind its nonce). Batches whose worst-case bound is above
the block gas limit are sent with their measured gas; a group too big is halved; one operation
no block can take fails at once with ``batch-exceeds-block-gas``, and the queue moves on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from ledger.alliance import Alliance
from ledger.merchants.service import AdmittedMerchant, admit_merchant
from ledger.outbox import repos as outbox_repos
from ledger.points.kinds import GAS_BASE, GAS_PER_LINE
from ledger.points.service import IssueLine, request_issue_batch
from ledger.runtime import outbox_worker
from ledger.settings import Settings
from ledger.store.models import OperationStatus
from tests.conftest import ARTIFACT_CACHE
from tests.nodes import anvil_node

BLOCK_GAS = 3_000_000


@pytest.fixture
def small_blocks(tmp_path: Path) -> Iterator[tuple[Alliance, AdmittedMerchant]]:
    """An alliance on an anvil of its own whose blocks hold 3M gas."""
    (tmp_path / "chain").mkdir()
    with anvil_node(tmp_path / "chain") as url:
        settings = Settings(data_dir=tmp_path / "svc", rpc_url=url, chain_id=31337,
                            artifacts_dir=ARTIFACT_CACHE)
        alliance = Alliance.open(settings)
        try:
            store = admit_merchant(alliance, name="Grand Plaza", symbol="GP", rate=1)
            alliance.gateway.rpc("evm_setBlockGasLimit", [hex(BLOCK_GAS)])
            alliance.gateway.rpc("evm_mine")
            yield alliance, store
        finally:
            alliance.close()


def _issue(a: Alliance, store: AdmittedMerchant, lines: int, tag: str) -> str:
    with a.store.session() as s:
        return request_issue_batch(a, s, merchant_id=store.merchant_id, items=[
            IssueLine(member=Account.create().address, points=5, order_id=f"{tag}-{i}")
            for i in range(lines)]).id


def _status(a: Alliance, op_id: str) -> tuple[str, str | None]:
    with a.store.read_session() as s:
        op = outbox_repos.get_operation(s, op_id)
        assert op is not None
        return op.status, op.error_code


def test_a_batch_above_the_block_gas_limit_lands_with_its_measure_or_fails_and_the_queue_moves_on(
        small_blocks: tuple[Alliance, AdmittedMerchant]) -> None:
    a, store = small_blocks
    fits = 30  # bound 2.78M-ish, what it really uses is far less
    assert GAS_BASE + GAS_PER_LINE * fits > BLOCK_GAS * 0.9
    fitting = _issue(a, store, fits, "FIT")
    too_big = _issue(a, store, 200, "BIG")  # no 3M block takes 200 new members' lots
    after = _issue(a, store, 3, "AFTER")
    outbox_worker(a).drain(timeout_s=120)

    assert _status(a, fitting)[0] == OperationStatus.CONFIRMED
    assert _status(a, too_big) == (OperationStatus.FAILED, "batch-exceeds-block-gas")
    assert _status(a, after)[0] == OperationStatus.CONFIRMED
    # Nothing of the failed batch is on chain; the others are, once each.
    assert a.contracts.program(store.program).total_supply() == 5 * (fits + 3)
