"""The chain rolled back under the outbox (issue 14, found by scripts/faults.py): anvil killed
with -9 comes back from its last state dump, blocks behind the transactions the outbox sent
and saw confirmed. The worker notices (a transaction it saw mined is not, a nonce gap that
never fills), puts the operations whose transactions vanished back in the queue, resets the
signer's nonce counter to the node's count and sends them again: every accepted operation
ends confirmed, exactly once on chain (counted from the chain's PointsIssued logs, not the
store), with no nonce gap. A real anvil is stopped with SIGKILL and started again from a
state dumped with ``anvil_dumpState`` on the same port."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import select

from ledger.alliance import Alliance
from ledger.chain.anvil import ANVIL, CHAIN_ID, free_port, rpc_chain_id
from ledger.health import readiness
from ledger.merchants.service import AdmittedMerchant, admit_merchant
from ledger.outbox import repos as outbox_repos
from ledger.outbox.worker import OutboxWorker
from ledger.points.service import IssueLine, order_ref, request_issue_batch
from ledger.runtime import Runtime, indexer, outbox_worker
from ledger.settings import Settings
from ledger.store.models import Operation, OperationStatus, PointEvent, SignerNonce
from ledger.types import MerchantId
from tests.conftest import ARTIFACT_CACHE

ROOT = Path(__file__).resolve().parents[2]


class RestartableAnvil:
    """An automining anvil on a fixed loopback port that can be killed (-9) and started again
    on the same port from a state file."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, state: Path | None = None) -> None:
        cmd = [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--chain-id",
               str(CHAIN_ID), "--gas-limit", "30000000"]
        if state is not None:
            cmd += ["--load-state", str(state)]
        with (self.tmp / "anvil.log").open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 20
        while rpc_chain_id(self.url, timeout=0.5) is None:
            assert self.proc.poll() is None, (self.tmp / "anvil.log").read_text()
            assert time.monotonic() < deadline, "anvil did not answer in time"
            time.sleep(0.05)

    def kill9(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RestartableAnvil]:
    n = RestartableAnvil(tmp_path)
    n.start()
    try:
        yield n
    finally:
        n.kill9()


def _queue(a: Alliance, merchant_id: MerchantId, tag: str, ops: int, lines: int = 3
           ) -> tuple[list[str], list[str]]:
    """Queue ``ops`` issue batches; give their operation ids and order ids."""
    members = [Account.create().address for _ in range(4)]
    ids, orders = [], []
    with a.store.session() as s:
        for o in range(ops):
            items = [IssueLine(member=members[i % 4], points=1 + i, order_id=f"{tag}-{o}-{i}")
                     for i in range(lines)]
            ids.append(request_issue_batch(a, s, merchant_id=merchant_id, items=items).id)
            orders += [line.order_id for line in items]
    return ids, orders


def _run_until_settled(a: Alliance, worker: OutboxWorker, op_ids: list[str],
                       timeout_s: float) -> None:
    """The thread's rounds until every one of ``op_ids`` is confirmed and nothing is in
    flight (polled with a deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with a.store.read_session() as s:
            left = Counter(o.status for o in s.query(Operation).filter(Operation.id.in_(op_ids))
                           if o.status != OperationStatus.CONFIRMED)
        if not left and worker.in_flight == 0:
            return
        assert time.monotonic() < deadline, f"not confirmed in time: {dict(left)}"
        if worker.step() == 0:
            time.sleep(0.05)


def _issued_on_chain(a: Alliance, m: AdmittedMerchant) -> Counter[str]:
    """How many times each order reference was issued, from the program's logs."""
    program = a.contracts.program(m.program)
    logs = a.gateway.raw_logs([([m.program], ["0x" + a.gateway.event_topic(
        program.abi, "PointsIssued").hex()])], from_block=0, to_block=a.gateway.block_number())
    return Counter("0x" + bytes(args["orderRef"]).hex()
                   for _, args, _ in program.decode_logs(logs))


def _assert_no_nonce_gap(a: Alliance, account: str) -> None:
    latest = a.gateway.nonce(account, "latest")
    assert a.gateway.nonce(account, "pending") == latest
    with a.store.read_session() as s:
        counter = s.get(SignerNonce, (a.gateway.chain_id, account))
        assert counter is not None and counter.next_nonce == latest


def _open(node: RestartableAnvil, tmp_path: Path, *, receipt_timeout_s: float) -> Alliance:
    return Alliance.open(Settings(data_dir=tmp_path / "data", rpc_url=node.url,
                                  chain_id=CHAIN_ID, artifacts_dir=ARTIFACT_CACHE,
                                  receipt_timeout_s=receipt_timeout_s))


def _wanted(orders: list[str]) -> list[str]:
    return ["0x" + bytes(order_ref(o)).hex() for o in orders]


@pytest.mark.parametrize("worker_restarts", [False, True],
                         ids=["same-worker", "worker-restarted"])
def test_a_chain_restarted_behind_the_outbox_gets_every_operation_confirmed_once(
        node: RestartableAnvil, tmp_path: Path, worker_restarts: bool) -> None:
    """``worker-restarted``: a new worker (the standby taking over, a supervisor's restart)
    meets the rolled-back chain in its recovery pass, not in its rounds."""
    a = _open(node, tmp_path, receipt_timeout_s=5.0)
    try:
        m = admit_merchant(a, name="Rollback", symbol="RBK", rate=1)
        worker = outbox_worker(a)
        kept, kept_orders = _queue(a, m.merchant_id, "KEPT", 3)
        _run_until_settled(a, worker, kept, 30)
        state = tmp_path / "state.json"
        # The node's last dump (anvil_dumpState gives the gzipped JSON --load-state reads).
        state.write_bytes(gzip.decompress(bytes.fromhex(
            str(a.gateway.rpc("anvil_dumpState", [])).removeprefix("0x"))))
        # Confirmed in the store, then lost: the node dies before it writes them out.
        lost, lost_orders = _queue(a, m.merchant_id, "LOST", 4)
        _run_until_settled(a, worker, lost, 30)
        node.kill9()
        node.start(state=state)
        assert a.gateway.nonce(m.account, "latest") < len(kept) + len(lost)
        if worker_restarts:
            worker = outbox_worker(a)
            worker.recover()
        # More work after the restart, sent by the same worker: behind a gap on main.
        after, after_orders = _queue(a, m.merchant_id, "AFTER", 3)
        _run_until_settled(a, worker, kept + lost + after, 40)

        issued = _issued_on_chain(a, m)
        wanted = _wanted(kept_orders + lost_orders + after_orders)
        assert {r: issued[r] for r in wanted} == dict.fromkeys(wanted, 1)
        _assert_no_nonce_gap(a, m.account)
        indexer(a).catch_up()
    finally:
        a.close()


def test_a_counter_left_ahead_of_the_node_is_filled_and_nothing_waits_behind_the_gap(
        node: RestartableAnvil, tmp_path: Path) -> None:
    """Nonces reserved and never recorded (a crash between the two, a chain that lost
    transactions the store has no record of) while the worker keeps running: its
    transactions wait in the node's pool behind the gap until the worker, GAP_BOUND_S later,
    fills the missing nonces with empty transactions; nothing is sent twice."""
    a = _open(node, tmp_path, receipt_timeout_s=60.0)
    try:
        m = admit_merchant(a, name="Gap", symbol="GAP", rate=1)
        worker = outbox_worker(a)
        first, first_orders = _queue(a, m.merchant_id, "BEFORE", 2)
        _run_until_settled(a, worker, first, 30)
        with a.store.session() as s:
            counter = s.get(SignerNonce, (CHAIN_ID, m.account))
            assert counter is not None
            counter.next_nonce += 2  # reserved, never recorded
        later, later_orders = _queue(a, m.merchant_id, "BEHIND", 3)
        _run_until_settled(a, worker, later, 30)
        issued = _issued_on_chain(a, m)
        wanted = _wanted(first_orders + later_orders)
        assert {r: issued[r] for r in wanted} == dict.fromkeys(wanted, 1)
        _assert_no_nonce_gap(a, m.account)
    finally:
        a.close()


def test_an_operation_whose_given_up_transaction_landed_ends_confirmed_not_failed(
        node: RestartableAnvil, tmp_path: Path) -> None:
    """The outbox gave a transaction up (requeued its operations, as a failed rebroadcast or
    a re-sync does when the node does not have it) and it was mined after all: the resend
    reverts with PointsOrderRefUsed, and the operation ends confirmed by the transaction
    that carried it, not failed."""
    a = _open(node, tmp_path, receipt_timeout_s=5.0)
    try:
        m = admit_merchant(a, name="Landed", symbol="LND", rate=1)
        worker = outbox_worker(a)
        ops, orders = _queue(a, m.merchant_id, "ONCE", 1)
        _run_until_settled(a, worker, ops, 30)
        with a.store.session() as s:
            landed_tx = s.query(Operation).filter(Operation.id == ops[0]).one().tx_hash
            outbox_repos.requeue_operations(s, ops, error_code="rebroadcast-failed")
        _run_until_settled(a, worker, ops, 30)
        with a.store.read_session() as s:
            op = s.query(Operation).filter(Operation.id == ops[0]).one()
            assert (op.status, op.tx_hash, op.error_code) == \
                (OperationStatus.CONFIRMED, landed_tx, None)
        issued = _issued_on_chain(a, m)
        assert [issued[r] for r in _wanted(orders)] == [1] * len(orders)
    finally:
        a.close()


def _issued_in_read_model(a: Alliance, m: AdmittedMerchant) -> Counter[str]:
    with a.store.read_session() as s:
        return Counter(str(r).lower() for r in s.scalars(
            select(PointEvent.order_ref).where(PointEvent.program == m.program,
                                               PointEvent.kind == "issued")))


def test_the_read_model_rewinds_to_the_common_ancestor_of_a_chain_restarted_behind_it(
        node: RestartableAnvil, tmp_path: Path) -> None:
    """The indexer had read 80 blocks past the state the node comes back from; the new chain
    grows past the old cursor. The read model drops what only the old chain had and reads the
    new blocks from where both chains agree (the follower's fixed 64-block rewind skipped
    the new chain's first blocks), and matches the chain's logs."""
    a = _open(node, tmp_path, receipt_timeout_s=5.0)
    try:
        m = admit_merchant(a, name="Rewind", symbol="RWD", rate=1)
        worker, follower = outbox_worker(a), indexer(a)
        kept, _ = _queue(a, m.merchant_id, "KEPT", 2)
        _run_until_settled(a, worker, kept, 30)
        follower.catch_up()
        state = tmp_path / "state.json"
        state.write_bytes(gzip.decompress(bytes.fromhex(
            str(a.gateway.rpc("anvil_dumpState", [])).removeprefix("0x"))))
        lost, _ = _queue(a, m.merchant_id, "LOST", 2)
        _run_until_settled(a, worker, lost, 30)
        a.gateway.rpc("anvil_mine", [hex(80)])
        follower.catch_up()
        node.kill9()
        node.start(state=state)
        after, _ = _queue(a, m.merchant_id, "AFTER", 3)
        _run_until_settled(a, worker, kept + lost + after, 40)
        a.gateway.rpc("anvil_mine", [hex(80)])
        follower.catch_up()
        on_chain = _issued_on_chain(a, m)
        assert sum(on_chain.values()) == 3 * (len(kept) + len(lost) + len(after))
        assert _issued_in_read_model(a, m) == on_chain
    finally:
        a.close()


def test_the_alliances_own_keys_left_ahead_of_the_node_are_reset_from_it(
        node: RestartableAnvil, tmp_path: Path) -> None:
    """The keys the alliance signs with outside the outbox (operator, funder) keep their
    counters in the store too; one left ahead of the node (as the chain restarted behind it
    leaves it) is reset from the node by the worker's rounds, GAP_BOUND_S later, so the next
    admission does not wait behind a gap."""
    a = _open(node, tmp_path, receipt_timeout_s=5.0)
    try:
        m = admit_merchant(a, name="Keys", symbol="KEY", rate=1)
        worker = outbox_worker(a)
        with a.store.session() as s:
            own = [c for c in s.query(SignerNonce).all() if c.address != m.account]
            assert own
            for c in own:
                c.next_nonce += 3
            ahead = {c.address: c.next_nonce for c in own}
        deadline = time.monotonic() + 20
        while True:
            worker.step()
            with a.store.read_session() as s:
                now = {c.address: c.next_nonce for c in s.query(SignerNonce).all()
                       if c.address in ahead}
            if all(n == a.gateway.nonce(addr, "pending") for addr, n in now.items()):
                break
            assert time.monotonic() < deadline, f"counters still ahead: {now}"
            time.sleep(0.2)
        admit_merchant(a, name="Keys Two", symbol="KY2", rate=1)
    finally:
        a.close()


def test_ready_says_not_ready_while_a_signer_waits_behind_a_gap_it_cannot_close(
        node: RestartableAnvil, tmp_path: Path) -> None:
    """A merchant's key left with a nonce gap and no ether to fill it: ``/ready``'s signers
    check fails and names the key (the worker retrying), until the key can pay again; then
    its operations are confirmed and the check passes."""
    a = _open(node, tmp_path, receipt_timeout_s=60.0)
    runtime = Runtime(a, [outbox_worker(a, idle_sleep_s=0.1)])
    try:
        m = admit_merchant(a, name="Stuck", symbol="STK", rate=1)
        first, _ = _queue(a, m.merchant_id, "FIRST", 1)
        runtime.start()
        _wait(lambda: _all_confirmed(a, first), "the first operation confirmed", 30)
        with a.store.session() as s:
            counter = s.get(SignerNonce, (CHAIN_ID, m.account))
            assert counter is not None
            counter.next_nonce += 1  # reserved, never recorded
        balance = a.gateway.rpc("eth_getBalance", [m.account, "latest"])
        later, _ = _queue(a, m.merchant_id, "LATER", 1)
        # Sent: recorded (the outbox records a transaction before it broadcasts it) and in the
        # node's pool. Taking the ether between the two, as this test did when the outbox
        # came at once (woken by the queue's commit), fails the broadcast instead: the key
        # cannot pay, the operation waits, the counter is re-read from the node, no gap.
        _wait(lambda: _all_submitted(a, later) and _in_node_pool(a, later),
              "the later operation sent", 30)
        a.gateway.rpc("anvil_setBalance", [m.account, "0x0"])

        def stuck() -> bool:
            signers = readiness(a, runtime).checks["signers"]
            gaps = signers.detail.get("nonce_gap", [])
            assert isinstance(gaps, list)
            return not signers.ok and [g["address"] for g in gaps] == [m.account]
        _wait(stuck, "/ready naming the key behind its gap", 40)
        a.gateway.rpc("anvil_setBalance", [m.account, balance])
        _wait(lambda: _all_confirmed(a, later) and readiness(a, runtime).checks["signers"].ok,
              "the later operation confirmed and /ready ready", 40)
        _assert_no_nonce_gap(a, m.account)
    finally:
        runtime.stop()
        a.close()


def _wait(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _statuses(a: Alliance, op_ids: list[str]) -> set[OperationStatus]:
    with a.store.read_session() as s:
        return {o.status for o in s.query(Operation).filter(Operation.id.in_(op_ids))}


def _all_confirmed(a: Alliance, op_ids: list[str]) -> bool:
    return _statuses(a, op_ids) == {OperationStatus.CONFIRMED}


def _all_submitted(a: Alliance, op_ids: list[str]) -> bool:
    return _statuses(a, op_ids) == {OperationStatus.SUBMITTED}


def _in_node_pool(a: Alliance, op_ids: list[str]) -> bool:
    """Every operation's recorded transaction is known to the node (broadcast)."""
    with a.store.read_session() as s:
        hashes = {o.tx_hash for o in s.query(Operation).filter(Operation.id.in_(op_ids))}
    return None not in hashes and all(a.gateway.transaction(h) is not None for h in hashes)
