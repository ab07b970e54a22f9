"""An automining node (anvil) builds one block per arriving transaction; what does not fit
that block stays in its pool until the next arrival, and a resend of one it holds is not an
arrival. The points benchmark's reference (``chain_alone``) waited for its last transaction
there for ever (main at 53bfb28). Here, on the session's real anvil: transactions that each
use 0.6 of a block, put in its pool with automine off, stay pending with nothing to mine them;
the benchmark's wait (``wait_mined``) gets them mined, and fails with a clear error, within
its bound, where nothing can."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.chain.gateway import ChainGateway
from ledger.chain.sender import TransactionSender

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_points_wait",
                                               ROOT / "scripts" / "bench_points.py")
assert _spec is not None and _spec.loader is not None
bench_points: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_points)

# anvil's tenth well-known key: no fixture signs with it.
KEY = "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6"
# Init code that loops until it runs out of gas: JUMPDEST PUSH1 0 JUMP. The creation fails
# having used its whole gas limit, so two of them never share a block.
BURN = bytes.fromhex("5b600056")


def _sent_in_one_batch(gateway: ChainGateway, count: int) -> tuple[TransactionSender, int,
                                                                     list[str]]:
    sender = TransactionSender(gateway, KEY)
    block_gas = int(str(gateway.rpc("eth_getBlockByNumber", ["latest", False])["gasLimit"]), 16)
    first = gateway.nonce(sender.address, "pending")
    max_fee, priority = sender.fees()
    raws = ["0x" + sender.sign(to=None, data=BURN, gas=block_gas * 6 // 10, nonce=first + i,
                               max_fee=max_fee, priority=priority).raw.hex()
            for i in range(count)]
    # The state an arrival leaves, made without racing the node's miner: with automine off
    # all eight go into the pool, one block is mined (it holds only the first), and automine
    # comes back on with nothing arriving. Sent while automining instead, how many stayed
    # pending depended on whether the node mined each arrival before the next came in (all
    # 8 mined in one CI run, 2 in another).
    gateway.rpc("evm_setAutomine", [False])
    try:
        gateway.rpc_batch([("eth_sendRawTransaction", [r]) for r in raws])
        gateway.rpc("evm_mine")
    finally:
        gateway.rpc("evm_setAutomine", [True])
    return sender, first, raws


def _latest_nonce(gateway: ChainGateway, address: str) -> int:
    return int(str(gateway.rpc("eth_getTransactionCount", [address, "latest"])), 16)


def _stalled_at(gateway: ChainGateway, address: str) -> int:
    """The sender's nonce at the latest block once it has not moved for a second."""
    seen, since = -1, time.monotonic()
    while time.monotonic() - since < 1.0:
        now = _latest_nonce(gateway, address)
        if now != seen:
            seen, since = now, time.monotonic()
        time.sleep(0.02)
    return seen


@pytest.mark.usefixtures("chain_snapshot")
def test_a_transaction_left_in_an_automining_nodes_pool_gets_mined_by_the_reference_wait(
        gateway: ChainGateway) -> None:
    assert gateway.automines
    sender, first, raws = _sent_in_one_batch(gateway, 8)
    # The node stops with some pending (anvil 1.7.1: the first two mined, one by evm_mine and
    # one as automine came back on): nothing arrives to make it mine again.
    stalled = _stalled_at(gateway, sender.address)
    assert stalled < first + 8
    assert gateway.nonce(sender.address, "pending") == first + 8
    # A resend of what it holds is not an arrival: still pending.
    gateway.rpc_batch([("eth_sendRawTransaction", [r]) for r in raws[stalled - first:]])
    time.sleep(0.5)
    assert _latest_nonce(gateway, sender.address) == stalled

    nudges = bench_points.wait_mined(gateway, sender.address, first, raws, bound_s=10.0)

    assert nudges >= 1
    assert _latest_nonce(gateway, sender.address) == first + 8


@pytest.mark.usefixtures("chain_snapshot")
def test_the_reference_wait_fails_within_its_bound_when_nothing_gets_mined(
        gateway: ChainGateway) -> None:
    sender = TransactionSender(gateway, KEY)
    first = gateway.nonce(sender.address, "pending")
    # A transaction behind a nonce gap (the node keeps it queued): nothing can mine it.
    max_fee, priority = sender.fees()
    raw = "0x" + sender.sign(to=sender.address, data=b"", gas=21_000, nonce=first + 1000,
                             max_fee=max_fee, priority=priority).raw.hex()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"0 of 1 pre-signed transactions mined; none more"):
        bench_points.wait_mined(gateway, sender.address, first, [raw], bound_s=2.0)
    assert time.monotonic() - t0 < 5.0
