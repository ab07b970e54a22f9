"""The service on a second node implementation: Hardhat Network (``hardhat node``), which has
none of anvil's helpers (no ``anvil_setBalance``). Merchant relaying keys get their gas money
by a real transfer from the funder key; a key that cannot pay keeps its operations queued and
says so, instead of retrying "Sender doesn't have enough funds" for ever."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ledger.alliance import Alliance
from ledger.chain.sender import TransactionSender
from ledger.merchants.service import admit_merchant, fund_merchant, merchant_signing_key
from ledger.outbox import worker as outbox_worker_module
from ledger.outbox.views import get_operation
from ledger.points.service import IssueLine, request_issue, request_issue_batch
from ledger.runtime import outbox_worker
from ledger.settings import Settings
from tests.conftest import ARTIFACT_CACHE
from tests.nodes import hardhat_node

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hardhat_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with hardhat_node(tmp_path_factory.mktemp("hardhat")) as url:
        yield url


def _open(url: str, tmp: Path, **overrides: object) -> Alliance:
    return Alliance.open(Settings(data_dir=tmp, rpc_url=url, chain_id=31337,
                                  artifacts_dir=ARTIFACT_CACHE, **overrides))  # type: ignore[arg-type]


def test_hardhat_is_a_dev_chain_without_anvil_helpers(hardhat_url: str, tmp_path: Path) -> None:
    a = _open(hardhat_url, tmp_path)
    try:
        assert a.gateway.client.startswith("hardhatnetwork") and a.gateway.is_dev_chain
        with pytest.raises(Exception, match="anvil_setBalance"):
            a.gateway.rpc("anvil_setBalance", [Account.create().address, "0x1"])
    finally:
        a.close()


def test_admitted_merchant_key_is_funded_by_transfer_and_issues_confirm(
        hardhat_url: str, tmp_path: Path) -> None:
    a = _open(hardhat_url, tmp_path)
    try:
        m = admit_merchant(a, name="Hardhat Books", symbol="HHB", rate=1)
        assert a.gateway.balance(m.account) == a.settings.relayer_funding_wei
        member = Account.create().address
        with a.store.session() as s:
            op = request_issue(a, s, merchant_id=m.merchant_id, member=member, points=75,
                               order_id="HH-1")
        outbox_worker(a).drain(timeout_s=30)
        done = get_operation(a, operation_id=op.id, merchant_id=m.merchant_id)
        assert done.status == "confirmed", done
        assert a.contracts.program(m.program).balance_of(member) == 75
    finally:
        a.close()


def test_a_relaying_key_running_low_is_topped_up_before_it_sends(hardhat_url: str,
                                                                  tmp_path: Path) -> None:
    a = _open(hardhat_url, tmp_path)
    try:
        m = admit_merchant(a, name="Hardhat Teas", symbol="HHT", rate=1)
        # The merchant's key spends almost all it holds elsewhere.
        key = TransactionSender(a.gateway, merchant_signing_key(a, m.merchant_id))
        left = 10**15
        max_fee, _ = key.fees()
        key.transact(to=Account.create().address, data=b"", gas=21_000,
                     value=a.gateway.balance(m.account) - left - 21_000 * max_fee)
        assert a.gateway.balance(m.account) < 2 * left  # less than one batch costs here
        member = Account.create().address
        with a.store.session() as s:
            op = request_issue(a, s, merchant_id=m.merchant_id, member=member, points=5,
                               order_id="HH-LOW")
        outbox_worker(a).drain(timeout_s=30)
        assert get_operation(a, operation_id=op.id, merchant_id=m.merchant_id).status == \
            "confirmed"
        assert a.gateway.balance(m.account) > a.settings.relayer_min_balance_wei
    finally:
        a.close()


def test_an_unfunded_key_waits_visibly_then_sends_once_funded(
        hardhat_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Funding turned off: the keys are funded by hand (the documented step).
    a = _open(hardhat_url, tmp_path, relayer_funding_wei=0)
    try:
        m = admit_merchant(a, name="Hardhat Shoes", symbol="HHS", rate=1)
        assert a.gateway.balance(m.account) == 0
        member = Account.create().address
        with a.store.session() as s:
            op = request_issue(a, s, merchant_id=m.merchant_id, member=member, points=9,
                               order_id="HH-UNFUNDED")
        worker = outbox_worker(a)
        assert worker.process_once() == 0  # nothing sent, and no busy loop
        waiting = get_operation(a, operation_id=op.id, merchant_id=m.merchant_id)
        assert waiting.status == "queued"
        assert waiting.error_code == "signer-unfunded"
        assert m.account in (waiting.error_message or "")
        assert list(worker.unfunded) == [m.account]
        assert worker.unfunded[m.account].merchant_id == m.merchant_id
        # Nothing was recorded as sent, no nonce was taken.
        assert a.gateway.nonce(m.account) == 0

        fund_merchant(a, merchant_id=m.merchant_id, wei=10**18)
        monkeypatch.setattr(outbox_worker_module, "UNFUNDED_RETRY_S", 0.0)
        worker._retry_at.clear()
        worker.drain(timeout_s=30)
        done = get_operation(a, operation_id=op.id, merchant_id=m.merchant_id)
        assert done.status == "confirmed" and done.error_code is None
        assert worker.unfunded == {}
        assert a.contracts.program(m.program).balance_of(member) == 9
    finally:
        a.close()


def test_a_key_drained_behind_the_workers_back_is_refused_visibly_and_recovers(
        hardhat_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What the worker knows of the balance is stale: the node refuses the broadcast ("Sender
    # doesn't have enough funds"). The operation goes back to the queue saying so, the nonce
    # it took is given back, and it lands once the key is funded.
    a = _open(hardhat_url, tmp_path, relayer_funding_wei=0)
    try:
        m = admit_merchant(a, name="Hardhat Hats", symbol="HHH", rate=1)
        fund_merchant(a, merchant_id=m.merchant_id, wei=10**18)
        worker = outbox_worker(a)
        member = Account.create().address
        with a.store.session() as s:
            first = request_issue(a, s, merchant_id=m.merchant_id, member=member, points=1,
                                  order_id="HH-D1")
        worker.drain(timeout_s=30)
        assert get_operation(a, operation_id=first.id, merchant_id=m.merchant_id).status == \
            "confirmed"
        # Emptied behind the worker's back (a test helper of Hardhat's; the key's nonces stay
        # the service's).
        a.gateway.rpc("hardhat_setBalance", [m.account, "0x0"])
        with a.store.session() as s:
            op = request_issue(a, s, merchant_id=m.merchant_id, member=member, points=2,
                               order_id="HH-D2")
        worker.process_once()
        waiting = get_operation(a, operation_id=op.id, merchant_id=m.merchant_id)
        assert (waiting.status, waiting.error_code) == ("queued", "signer-unfunded")
        assert list(worker.unfunded) == [m.account]

        fund_merchant(a, merchant_id=m.merchant_id, wei=10**18)
        monkeypatch.setattr(outbox_worker_module, "UNFUNDED_RETRY_S", 0.0)
        worker._retry_at.clear()
        worker.drain(timeout_s=30)
        assert get_operation(a, operation_id=op.id, merchant_id=m.merchant_id).status == \
            "confirmed"
        assert a.contracts.program(m.program).balance_of(member) == 3
    finally:
        a.close()


def test_a_full_batch_of_issues_confirms_on_hardhat(hardhat_url: str, tmp_path: Path) -> None:
    # A 200-line issue batch is bounded at ~18 Mgas: above the 2^24 per-transaction cap of
    # Hardhat 2.29's default fork (Osaka, EIP-7825), so `hardhat node` runs the fork the
    # contracts are compiled for (hardhat.config.js).
    a = _open(hardhat_url, tmp_path)
    try:
        m = admit_merchant(a, name="Hardhat Bulk", symbol="HHBK", rate=1)
        member = Account.create().address
        with a.store.session() as s:
            op = request_issue_batch(a, s, merchant_id=m.merchant_id, items=[
                IssueLine(member=member, points=1, order_id=f"HH-B{i}") for i in range(200)])
        outbox_worker(a).drain(timeout_s=60)
        assert get_operation(a, operation_id=op.id, merchant_id=m.merchant_id).status == \
            "confirmed"
        assert a.contracts.program(m.program).balance_of(member) == 200
    finally:
        a.close()


def test_block_mode_on_a_node_without_eth_simulatev1_measures_by_access_list_and_asks_once(
        hardhat_url: str, tmp_path: Path) -> None:
    # Hardhat Network answers eth_simulateV1 with -32004 "method not supported": the worker
    # falls back to access lists and does not spend a round trip asking again every round.
    a = _open(hardhat_url, tmp_path, block_time_s=1.0)
    asked: list[str] = []
    rpc = a.gateway.rpc

    def counting_rpc(method: str, params: Sequence[Any] = ()) -> Any:
        asked.append(method)
        return rpc(method, params)

    a.gateway.rpc = counting_rpc  # type: ignore[method-assign]
    try:
        m = admit_merchant(a, name="Hardhat Blocks", symbol="HHBL", rate=1)
        member = Account.create().address
        worker = outbox_worker(a)
        for round_ in range(3):
            with a.store.session() as s:
                op = request_issue_batch(a, s, merchant_id=m.merchant_id, items=[
                    IssueLine(member=member, points=1, order_id=f"HH-R{round_}-{i}")
                    for i in range(20)])
            worker.drain(timeout_s=60)
            assert get_operation(a, operation_id=op.id, merchant_id=m.merchant_id).status \
                == "confirmed"
        assert a.contracts.program(m.program).balance_of(member) == 60
        assert asked.count("eth_simulateV1") == 1
    finally:
        a.close()
