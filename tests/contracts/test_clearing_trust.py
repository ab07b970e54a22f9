"""The alliance's trust model on a real anvil: who may do what (admin through the timelock,
operator, minter), payout addresses apart from relaying keys, one-transaction admission, and
a period close that fits a block at 2,000 merchants."""

from __future__ import annotations

import os

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak

from ledger.merchants.clients import ProgramConfig

from .conftest import Chain
from .test_clearing import _alliance, _member_with, _mint_and_deposit, _redeem_at
from .test_point_program import ref, reverts

ADMIN_ROLE = b"\0" * 32
BLOCK_GAS = 30_000_000
POSITIONS_SLOT = 1  # Clearing: _currentPeriod (0), _positions (1), ...


def test_no_key_but_the_timelock_changes_terms_and_the_operator_only_suspends(
        chain: Chain) -> None:
    a, b = _alliance(chain, (10, 10))
    reg = chain.registry
    other = Account.create().address
    governed = [("admitMerchant", (other, Account.create().address, b"\0" * 32)),
                ("setMerchantAccount", (a.merchant_id, other)),
                ("setPayout", (a.merchant_id, other)),
                ("setRate", (a.merchant_id, 5)),
                ("setCaps", (a.merchant_id, 1, 1)),
                ("setAcceptance", (a.merchant_id, b.merchant_id, False)),
                ("setRefundWindow", (7200,)),
                ("reinstateMerchant", (a.merchant_id,))]
    for sender in (chain.operator, chain.admin, chain.minter, a.sender):
        for fn, args in governed:
            with reverts("AccessControlUnauthorizedAccount", sender.address, ADMIN_ROLE):
                sender.transact(to=reg.address, data=reg.encode(fn, *args), gas=500_000)
    # The admin key handed its registry role to the timelock at deployment.
    assert not reg.has_role(ADMIN_ROLE, chain.admin.address)
    assert reg.has_role(ADMIN_ROLE, chain.timelock.address)
    # A merchant cannot suspend; the operator can, at once (the emergency brake).
    with reverts("AccessControlUnauthorizedAccount"):
        a.call_on(reg, "suspendMerchant", b.merchant_id)
    chain.op(reg, "suspendMerchant", b.merchant_id)
    assert reg.merchant(b.merchant_id).status == "suspended"
    # The operator cannot create a program (so cannot make a merchant of its own).
    with reverts("FactoryUnauthorized", chain.operator.address):
        chain.op(chain.factory, "createProgram", b.merchant_id, "x", "X",
                 ProgramConfig().as_tuple())


def test_only_the_minter_mints_settlement_tokens(chain: Chain) -> None:
    (a,) = _alliance(chain, (10,))
    for sender in (chain.operator, chain.admin):
        with reverts("AccessControlUnauthorizedAccount"):
            sender.transact(to=chain.token.address, data=chain.token.encode(
                "mint", a.account.address, 1), gas=200_000)
    chain.mint(a.account.address, 5)
    assert chain.token.balance_of(a.account.address) == 5


def test_an_admin_action_waits_out_the_timelock_delay(chain: Chain) -> None:
    (a,) = _alliance(chain, (10,))
    tl = chain.timelock
    chain.gov(tl, "updateDelay", 3600)  # the timelock changes its own delay through itself
    assert tl.min_delay() == 3600
    data = chain.registry.encode("setRate", a.merchant_id, 7)
    salt = os.urandom(32)
    with reverts("TimelockInsufficientDelay", 60, 3600):
        chain.admin.transact(to=tl.address, data=tl.encode(
            "schedule", chain.registry.address, 0, data, b"\0" * 32, salt, 60), gas=500_000)
    receipt = chain.admin.transact(to=tl.address, data=tl.encode(
        "schedule", chain.registry.address, 0, data, b"\0" * 32, salt, 3600), gas=500_000)
    scheduled = [n for n, _, _ in tl.decode_logs(receipt["logs"])]  # type: ignore[arg-type]
    assert scheduled == ["CallScheduled", "CallSalt"]  # announced on chain
    op_id = tl.operation_id(chain.registry.address, data, salt)
    execute = tl.encode("execute", chain.registry.address, 0, data, b"\0" * 32, salt)
    with reverts("TimelockUnexpectedOperationState"):
        chain.admin.transact(to=tl.address, data=execute, gas=500_000)
    assert chain.registry.rate_of(a.merchant_id) == 10
    chain.travel(3600)
    with reverts("AccessControlUnauthorizedAccount"):  # only the admin executes
        chain.operator.transact(to=tl.address, data=execute, gas=500_000)
    chain.admin.transact(to=tl.address, data=execute, gas=500_000)
    assert chain.registry.rate_of(a.merchant_id) == 7 and tl.is_done(op_id)


def test_admission_is_all_or_nothing(chain: Chain) -> None:
    reg = chain.registry
    before = reg.merchant_count()
    acct, payout = Account.create().address, Account.create().address
    for bad, error in [((2**24, ProgramConfig()), ("RegistryInvalidRate", 2**24)),
                       ((5, ProgramConfig(600, 3, 7)), ("PointsInvalidConfig",))]:
        (rate, config) = bad
        with reverts(*error):
            chain.gov(reg, "admitMerchantWithProgram", (acct, payout, b"\0" * 32, rate,
                                                        "X Points", "X", config.as_tuple()))
        assert reg.merchant_count() == before and reg.merchant_id_of(acct) == 0
    receipt = chain.gov(reg, "admitMerchantWithProgram", (
        acct, payout, b"\0" * 32, 2**24 - 1, "X Points", "X", ProgramConfig().as_tuple()))
    events = [n for n, _, _ in reg.decode_logs(receipt["logs"])]  # type: ignore[arg-type]
    assert events == ["MerchantAdmitted", "PayoutChanged", "RateSet", "ProgramRegistered"]
    mid = reg.merchant_id_of(acct)
    assert mid == before + 1 and reg.rate_of(mid) == 2**24 - 1
    assert reg.merchant(mid).program == chain.factory.program_address(mid)
    assert reg.payout_of(mid) == payout


def test_payouts_go_to_a_payout_address_never_a_relaying_key(chain: Chain) -> None:
    a, b = _alliance(chain, (10, 10))
    reg = chain.registry
    for payout in (b.account.address, "0x" + "00" * 20, a.account.address):
        with reverts("RegistryInvalidPayout"):
            chain.gov(reg, "setPayout", b.merchant_id, payout)
    with reverts("RegistryInvalidPayout", a.account.address):  # another merchant's key
        chain.gov(reg, "admitMerchant", Account.create().address, a.account.address,
                  b"\0" * 32)
    with reverts("RegistryInvalidAccount", b.payout):  # an account cannot be its payout
        chain.gov(reg, "setMerchantAccount", b.merchant_id, b.payout)
    _redeem_at(chain, a, b, _member_with(chain, a, 10), 10, "pay")
    p = chain.clearing.current_period()
    chain.op(chain.clearing, "closePeriod")
    _mint_and_deposit(chain, a, p, 100)
    new_payout = Account.create().address
    chain.gov(reg, "setPayout", b.merchant_id, new_payout)
    b.call_on(chain.clearing, "claim", p, [b.merchant_id])
    assert chain.token.balance_of(new_payout) == 100
    assert chain.token.balance_of(b.payout) == chain.token.balance_of(b.account.address) == 0


def test_closing_a_period_of_2000_merchants_fits_a_block(chain: Chain) -> None:
    a, b = _alliance(chain, (10, 10))
    _redeem_at(chain, a, b, _member_with(chain, a, 10), 10, "big")
    reg, tl = chain.registry, chain.timelock
    per_batch = 100
    while (n := reg.merchant_count()) < 2000:
        k = min(per_batch, 2000 - n)
        calls = [reg.encode("admitMerchant", Account.create().address,
                            Account.create().address, ref(f"m{n + i}")) for i in range(k)]
        salt = os.urandom(32)
        args = ([reg.address] * k, [0] * k, calls, b"\0" * 32, salt)
        chain.admin.transact(to=tl.address, data=tl.encode("scheduleBatch", *args, 0),
                             gas=3_000_000)
        chain.admin.transact(to=tl.address, data=tl.encode("executeBatch", *args),
                             gas=BLOCK_GAS)
    assert reg.merchant_count() == 2000
    # The worst case: every merchant has a net. Positions only move with real acts, and 2,000
    # programs with redemptions would take long, so the nets of merchants 3..2000 (+1/-1,
    # summing to zero) are written into the Clearing's storage directly; the close itself
    # runs as ever. Slot of _positions[p][m]: keccak(m . keccak(p . 1)), net in the low half.
    p = chain.clearing.current_period()
    base = keccak(abi_encode(["uint256", "uint256"], [p, POSITIONS_SLOT]))
    writes = []
    for m in range(3, 2001):
        slot = keccak(abi_encode(["uint256", "bytes32"], [m, base]))
        net = 1 if m % 2 else 2**128 - 1  # int128 -1 in two's complement
        writes.append(("anvil_setStorageAt", [chain.clearing.address, "0x" + slot.hex(),
                                              "0x" + net.to_bytes(32, "big").hex()]))
    # One JSON-RPC batch (independent slots), every write answered true.
    assert chain.gateway.rpc_batch(writes) == [True] * len(writes)
    assert [chain.clearing.position_of(p, m)[0] for m in (3, 4, 2000)] == [1, -1, -1]
    receipt = chain.operator.transact(to=chain.clearing.address,
                                      data=chain.clearing.encode("closePeriod"), gas=BLOCK_GAS)
    gas = int(receipt["gasUsed"])  # type: ignore[call-overload]
    print(f"\nclosePeriod with 2,000 merchants, every one with a net: {gas:,} gas "
          f"({gas / BLOCK_GAS:.0%} of a 30M block, {gas // 2000:,} per merchant)")
    assert gas < BLOCK_GAS
    info = chain.clearing.period(p)
    assert info.merchants == 2000 and info.total_owed == 100 + 999
