"""PointProgram.moveAccount on a real anvil: a custodial account's points move once to the
member's wallet, every lot with its period (so its expiry), pending points still pending,
the supply unchanged, authorised by the custodial key and relayed by the merchant."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.merchants.clients import ProgramConfig
from ledger.points.clients import Redemption
from ledger.points.kinds import GAS_MOVE_ACCOUNT
from ledger.signing import move_account_typed_data

from .conftest import DAY, Chain, Merchant
from .test_point_program import _balances_from_logs, ref, reverts, sign

MONTHLY = ProgramConfig(period_length=30 * DAY, expiry_periods=2, max_pending_days=14)


def sign_move(key: LocalAccount, chain: Chain, m: Merchant, frm: str, to: str,
              deadline: int) -> bytes:
    typed = move_account_typed_data(chain_id=chain.gateway.chain_id, program=m.program.address,
                                    registry=chain.registry.address, from_=frm, to=to,
                                    deadline=deadline)
    return bytes(Account.sign_typed_data(key.key, full_message=typed).signature)


def move(chain: Chain, m: Merchant, custodial: LocalAccount, to: str, *,
         signer: LocalAccount | None = None, deadline: int | None = None) -> dict[str, object]:
    deadline = deadline if deadline is not None else chain.now() + 600
    sig = sign_move(signer or custodial, chain, m, custodial.address, to, deadline)
    return m.call("moveAccount", (custodial.address, to, deadline), sig)


def _custodial_with_two_lots_and_pending(chain: Chain, m: Merchant) -> tuple[LocalAccount, int]:
    """A custodial account with 100 points of period p0, 10 of p0+1 and 40 pending of p0+1."""
    custodial = Account.create()
    m.call("issue", custodial.address, 100, ref("c0"))
    p0 = m.program.view1("currentPeriod")
    chain.travel(30 * DAY)
    m.call("issue", custodial.address, 10, ref("c1"))
    m.call("issuePending", custodial.address, 40, ref("c1-pending"), chain.now() + 7 * DAY)
    return custodial, p0


def test_a_move_keeps_every_lot_and_its_expiry_and_pending_points_and_the_supply(
        chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, p0 = _custodial_with_two_lots_and_pending(chain, m)
    wallet = Account.create().address
    supply = m.program.total_supply()
    receipt = move(chain, m, custodial, wallet)
    assert m.program.lots_of(wallet) == [(p0, 100), (p0 + 1, 50)]
    assert m.program.pending_of(wallet) == 40 and m.program.spendable_of(wallet) == 110
    assert m.program.balance_of(wallet) == 150 and m.program.balance_of(custodial.address) == 0
    assert m.program.lots_of(custodial.address) == []
    assert m.program.pending_of(custodial.address) == 0
    assert m.program.total_supply() == supply == 150
    assert m.program.view1("pendingSupply") == 40
    logs = [(n, a) for n, a, _ in m.program.decode_logs(receipt["logs"])]  # type: ignore[arg-type]
    assert logs == [("Transfer", {"from": custodial.address, "to": wallet, "value": 150}),
                    ("PointsMoved", {"from": custodial.address, "to": wallet, "amount": 150})]
    assert _balances_from_logs(chain, m.program.address) == {custodial.address: 0, wallet: 150}
    # The order records keep the member they were issued to.
    assert m.program.order_of(ref("c0"))[0] == custodial.address


def test_moved_points_expire_when_they_would_have_and_pending_ones_release_on_their_day(
        chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, p0 = _custodial_with_two_lots_and_pending(chain, m)
    wallet = Account.create()
    move(chain, m, custodial, wallet.address)
    assert m.program.expiry_of(p0) == m.program.origin() + (p0 + 3) * 30 * DAY
    chain.travel(8 * DAY)  # the pending order released
    assert m.program.pending_of(wallet.address) == 0
    assert m.program.spendable_of(wallet.address) == 150
    chain.travel(60 * DAY)  # now p0+3: the lot of p0 expired, as it would have unmoved
    assert m.program.spendable_of(wallet.address) == 50
    assert m.program.expired_of(wallet.address) == 100
    r = Redemption(wallet.address, 50, m.merchant_id, ref("spend"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(wallet, chain, m, r))
    assert m.program.balance_of(wallet.address) == 0 == m.program.total_supply()


def test_a_move_into_a_wallet_that_holds_points_merges_lots_by_period(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, wallet = Account.create(), Account.create().address
    m.call("issue", custodial.address, 100, ref("c0"))
    p0 = m.program.view1("currentPeriod")
    chain.travel(30 * DAY)
    m.call("issue", wallet, 7, ref("w1"))
    m.call("issue", custodial.address, 10, ref("c1"))
    chain.travel(30 * DAY)
    m.call("issue", custodial.address, 3, ref("c2"))
    move(chain, m, custodial, wallet)
    # p0 goes in front of the wallet's lot, p0+1 merges into it, p0+2 becomes its head.
    assert m.program.lots_of(wallet) == [(p0, 100), (p0 + 1, 17), (p0 + 2, 3)]
    assert m.program.balance_of(wallet) == 120 == m.program.total_supply()
    chain.travel(30 * DAY)
    assert m.program.spendable_of(wallet) == 20  # p0 expired on time, after the move too


def test_a_wallet_with_newer_points_takes_older_moved_lots_in_their_place(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, wallet = Account.create(), Account.create().address
    m.call("issue", custodial.address, 5, ref("c0"))
    p0 = m.program.view1("currentPeriod")
    chain.travel(30 * DAY)
    m.call("issue", custodial.address, 6, ref("c1"))
    chain.travel(30 * DAY)
    m.call("issue", wallet, 9, ref("w2"))
    move(chain, m, custodial, wallet)
    assert m.program.lots_of(wallet) == [(p0, 5), (p0 + 1, 6), (p0 + 2, 9)]
    assert m.program.spendable_of(wallet) == 20 == m.program.total_supply()


def test_expired_points_move_as_expired_and_are_swept_not_revived(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, wallet = Account.create(), Account.create().address
    m.call("issue", custodial.address, 100, ref("old"))
    chain.travel(90 * DAY)  # the lot expired, not swept
    m.call("issue", custodial.address, 4, ref("new"))  # the prune removed it on the way
    assert m.program.balance_of(custodial.address) == 4
    chain.travel(90 * DAY)  # the 4 expired too, not swept
    assert m.program.expired_of(custodial.address) == 4
    move(chain, m, custodial, wallet)
    assert m.program.spendable_of(wallet) == 0 and m.program.expired_of(wallet) == 4
    m.call("sweepExpired", [wallet])
    assert m.program.balance_of(wallet) == 0 == m.program.total_supply()
    assert _balances_from_logs(chain, m.program.address) == {custodial.address: 0, wallet: 0}


def test_an_account_moves_once_and_a_replayed_signature_is_refused(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, wallet, other = Account.create(), Account.create().address, Account.create().address
    m.call("issue", custodial.address, 10, ref("a"))
    deadline = chain.now() + 600
    sig = sign_move(custodial, chain, m, custodial.address, wallet, deadline)
    m.call("moveAccount", (custodial.address, wallet, deadline), sig)
    with reverts("PointsAccountMoved", custodial.address, wallet):
        m.call("moveAccount", (custodial.address, wallet, deadline), sig)
    m.call("issue", custodial.address, 5, ref("b"))  # issued to the old address after all
    with reverts("PointsAccountMoved", custodial.address, wallet):
        move(chain, m, custodial, other)
    assert m.program.balance_of(wallet) == 10 and m.program.balance_of(other) == 0


def test_a_move_needs_the_custodial_keys_signature_over_exactly_that_move(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, wallet = Account.create(), Account.create().address
    m.call("issue", custodial.address, 10, ref("a"))
    with reverts("PointsInvalidSignature", custodial.address):
        move(chain, m, custodial, wallet, signer=Account.create())
    deadline = chain.now() + 600
    sig = sign_move(custodial, chain, m, custodial.address, wallet, deadline)
    with reverts("PointsInvalidSignature", custodial.address):  # another destination
        m.call("moveAccount", (custodial.address, Account.create().address, deadline), sig)
    other = chain.admit(config=MONTHLY)  # signed for another program
    other.call("issue", custodial.address, 1, ref("x"))
    with reverts("PointsInvalidSignature", custodial.address):
        other.call("moveAccount", (custodial.address, wallet, deadline), sig)
    assert m.program.balance_of(custodial.address) == 10


def test_a_move_past_its_deadline_or_too_far_ahead_is_refused(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, wallet = Account.create(), Account.create().address
    m.call("issue", custodial.address, 10, ref("a"))
    with reverts("PointsSignatureExpired"):
        move(chain, m, custodial, wallet, deadline=chain.now() - 1)
    with reverts("PointsDeadlineTooFar"):
        move(chain, m, custodial, wallet, deadline=chain.now() + 8 * DAY)


def test_only_the_programs_merchant_relays_a_move(chain: Chain) -> None:
    m, other = chain.admit(config=MONTHLY), chain.admit(config=MONTHLY)
    custodial, wallet = Account.create(), Account.create().address
    m.call("issue", custodial.address, 10, ref("a"))
    deadline = chain.now() + 600
    sig = sign_move(custodial, chain, m, custodial.address, wallet, deadline)
    with reverts("PointsUnauthorized", other.account.address, m.merchant_id):
        other.call_on(m.program, "moveAccount", (custodial.address, wallet, deadline), sig)


def test_a_move_to_nobody_or_to_itself_is_refused(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial = Account.create()
    m.call("issue", custodial.address, 10, ref("a"))
    zero = "0x" + "00" * 20
    with reverts("PointsInvalidMember", zero):
        move(chain, m, custodial, zero)
    with reverts("PointsInvalidMember", custodial.address):
        move(chain, m, custodial, custodial.address)


def test_reversing_a_moved_order_takes_the_points_from_the_wallet(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, wallet = Account.create(), Account.create().address
    m.call("issue", custodial.address, 30, ref("paid"))
    m.call("issuePending", custodial.address, 40, ref("refundable"), chain.now() + 5 * DAY)
    move(chain, m, custodial, wallet)
    receipt = m.call("reverse", ref("refundable"), 40)
    reversed_ = [a for n, a, _ in m.program.decode_logs(receipt["logs"])  # type: ignore[arg-type]
                 if n == "PointsReversed"]
    assert reversed_[0]["member"] == wallet and reversed_[0]["burned"] == 40
    assert m.program.pending_of(wallet) == 0 and m.program.view1("pendingSupply") == 0
    m.call("reverse", ref("paid"), 12)
    assert m.program.balance_of(wallet) == 18 == m.program.total_supply()
    assert _balances_from_logs(chain, m.program.address) == {custodial.address: 0, wallet: 18}


def test_a_move_that_would_leave_the_wallet_over_32_pending_orders_is_refused(
        chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, wallet = Account.create(), Account.create()
    release = chain.now() + 3 * DAY
    m.call("issueBatch", [(custodial.address, 1, ref(f"c{i}"), release) for i in range(2)])
    m.call("issueBatch", [(wallet.address, 1, ref(f"w{i}"), release) for i in range(31)])
    with reverts("PointsTooManyPending", wallet.address):
        move(chain, m, custodial, wallet.address)
    # Once released and spent from, the wallet's queue is empty again and the move lands.
    chain.travel(4 * DAY)
    r = Redemption(wallet.address, 1, m.merchant_id, ref("spend"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(wallet, chain, m, r))
    move(chain, m, custodial, wallet.address)
    assert m.program.spendable_of(wallet.address) == 32 == m.program.total_supply()


def test_a_move_of_a_few_lots_fits_the_outbox_gas_bound(chain: Chain) -> None:
    m = chain.admit(config=MONTHLY)
    custodial, _ = _custodial_with_two_lots_and_pending(chain, m)
    receipt = move(chain, m, custodial, Account.create().address)
    gas = int(str(receipt["gasUsed"]), 0)
    print(f"moveAccount of 2 lots and 1 pending order: {gas} gas")
    assert gas < GAS_MOVE_ACCOUNT
