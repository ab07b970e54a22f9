"""The expiry sweep (issue 8): at a period boundary the service sweeps the lots that expired,
so an outside reader who knows only ERC-20 Transfer logs agrees with the program again."""

from __future__ import annotations

from collections import defaultdict

import pytest
from eth_account import Account
from sqlalchemy import select

from ledger.alliance import Alliance
from ledger.merchants.clients import ProgramConfig
from ledger.merchants.service import AdmittedMerchant, admit_merchant
from ledger.outbox.views import get_operation
from ledger.points.clients import PointProgramClient
from ledger.points.expiry import SWEEP_BATCH, ExpirySweeper
from ledger.points.kinds import GAS_PER_SWEPT_MEMBER, GAS_SWEEP_BASE
from ledger.points.reads import chain_now, history
from ledger.points.service import IssueLine, request_issue, request_issue_batch, request_redeem
from ledger.runtime import indexer, outbox_worker
from ledger.store.models import Operation

from .helpers import sign_redemption

ZERO = "0x0000000000000000000000000000000000000000"


def _transfer_balances(alliance: Alliance, program: PointProgramClient) -> dict[str, int]:
    """Every holder's balance rebuilt from the program's Transfer logs alone."""
    logs = alliance.gateway.get_logs(address=program.address,
                                     from_block=alliance.contracts.deployment.block,
                                     to_block=alliance.gateway.block_number())
    out: dict[str, int] = defaultdict(int)
    for name, args, _ in program.decode_logs(logs):
        if name != "Transfer":
            continue
        if args["from"] != ZERO:
            out[str(args["from"])] -= int(args["value"])
        if args["to"] != ZERO:
            out[str(args["to"])] += int(args["value"])
    return dict(out)


def _pass_until(alliance: Alliance, when: int) -> None:
    now = chain_now(alliance)
    if when > now:
        alliance.gateway.rpc("evm_increaseTime", [when - now])
    alliance.gateway.rpc("evm_mine")


def test_sweep_at_the_period_boundary_makes_transfer_logs_agree(
        alliance: Alliance, chain_snapshot: None) -> None:
    daily: AdmittedMerchant = admit_merchant(
        alliance, name="Daily Bakery", symbol="BAKE", rate=1,
        config=ProgramConfig(period_length=86_400, expiry_periods=2, max_pending_days=7))
    mid = daily.merchant_id
    program = alliance.contracts.program(daily.program)
    keep, spend_all, pending = Account.create(), Account.create(), Account.create()
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=mid, member=keep.address, points=100,
                      order_id="B-1")
        request_issue(alliance, s, merchant_id=mid, member=spend_all.address, points=20,
                      order_id="B-2")
        request_issue(alliance, s, merchant_id=mid, member=pending.address, points=40,
                      order_id="B-3", release_at=chain_now(alliance) + 86_400)
    outbox_worker(alliance).drain()
    deadline = chain_now(alliance) + 3600
    sig = sign_redemption(spend_all, program=daily.program,
                          registry=alliance.contracts.deployment.registry,
                          chain_id=alliance.gateway.chain_id, amount=20, merchant_id=mid,
                          order_id="EAT-1", nonce=0, deadline=deadline)
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=mid, member=spend_all.address, points=20,
                       order_id="EAT-1", nonce=0, deadline=deadline, signature=sig)
    outbox_worker(alliance).drain()
    ((earned, _),) = program.lots_of(keep.address)
    expires = program.expiry_of(earned)
    sweeper = ExpirySweeper(alliance)
    indexer(alliance).catch_up()
    assert sweeper.run_once() == 0  # nothing expired yet

    _pass_until(alliance, expires + 1)
    assert program.expired_of(keep.address) == 100
    assert program.expired_of(pending.address) == 40  # released, then expired unspent
    indexer(alliance).catch_up()
    assert sweeper.run_once() == 2  # the member who spent everything is not swept
    with alliance.store.read_session() as s:
        (op_id,) = s.scalars(select(Operation.id).where(Operation.kind == "sweep_expired"))
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()
    assert sweeper.run_once() == 0  # the boundary is done

    for m in (keep, spend_all, pending):
        assert program.expired_of(m.address) == 0
        assert program.balance_of(m.address) == (program.spendable_of(m.address)
                                                 + program.pending_of(m.address)) == 0
    rebuilt = _transfer_balances(alliance, program)
    assert all(v == program.balance_of(k) for k, v in rebuilt.items())
    assert sum(rebuilt.values()) == program.total_supply()

    indexer(alliance).catch_up()
    events, _ = history(alliance, member=keep.address)
    assert events[0]["kind"] == "expired" and events[0]["amount"] == 100
    assert events[0]["expired_at"] == expires and events[0]["at"] >= expires
    indexer(alliance).catch_up()
    kinds = [e["kind"] for e in history(alliance, member=pending.address)[0]]
    assert kinds == ["expired", "released", "issued"]
    done = get_operation(alliance, operation_id=op_id, merchant_id=mid)
    assert done.status == "confirmed"
    receipt = alliance.gateway.receipt(str(done.tx_hash))
    assert receipt is not None
    assert int(receipt["gasUsed"]) < GAS_SWEEP_BASE + 2 * GAS_PER_SWEPT_MEMBER


def test_sweep_gas_per_lot_is_measured_and_within_the_outbox_bound(
        alliance: Alliance, chain_snapshot: None, capsys: pytest.CaptureFixture[str]) -> None:
    daily = admit_merchant(
        alliance, name="Gas Bakery", symbol="GAS", rate=1,
        config=ProgramConfig(period_length=86_400, expiry_periods=1, max_pending_days=1))
    program = alliance.contracts.program(daily.program)
    members = [Account.create().address for _ in range(SWEEP_BATCH)]
    with alliance.store.session() as s:
        request_issue_batch(alliance, s, merchant_id=daily.merchant_id, items=[
            IssueLine(points=7, order_id=f"G-{i}", member=m) for i, m in enumerate(members)])
    outbox_worker(alliance).drain()
    ((earned, _),) = program.lots_of(members[0])
    _pass_until(alliance, program.expiry_of(earned) + 1)
    indexer(alliance).catch_up()
    assert ExpirySweeper(alliance).run_once() == SWEEP_BATCH
    outbox_worker(alliance).drain()
    with alliance.store.read_session() as s:
        (op_id,) = s.scalars(select(Operation.id).where(Operation.kind == "sweep_expired"))
    done = get_operation(alliance, operation_id=op_id, merchant_id=daily.merchant_id)
    assert done.status == "confirmed" and program.total_supply() == 0
    receipt = alliance.gateway.receipt(str(done.tx_hash))
    assert receipt is not None
    used = int(receipt["gasUsed"])
    per_lot = (used - 21_000) / SWEEP_BATCH
    # Floor per one-lot member: its account slot read cold and rewritten (2,100 + 2,900),
    # PointsExpired (LOG2, 64 data bytes: 1,637) and Transfer (LOG3, 32 bytes: 1,756), and its
    # 32-byte calldata word (512): 8,905 gas.
    floor = 2_100 + 2_900 + 1_637 + 1_756 + 512
    with capsys.disabled():
        print(f"\nsweepExpired of {SWEEP_BATCH} one-lot members: {used} gas, "
              f"{per_lot:.0f} per lot, floor {floor} ({per_lot / floor:.2f}x)")
    assert used <= GAS_SWEEP_BASE + GAS_PER_SWEPT_MEMBER * SWEEP_BATCH
    assert per_lot < 2 * floor
