"""Cross-merchant points on a real anvil: spending elsewhere, converting, refunds, caps,
period close, escrow settlement, off-chain confirmation and statement anchors."""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.merchants.clients import ProgramConfig
from ledger.points.clients import Conversion, Redemption
from ledger.signing import convert_typed_data

from .conftest import DAY, Chain, Merchant
from .test_point_program import ref, reverts, sign


def _alliance(chain: Chain, rates: tuple[int, ...] = (10, 25, 4)) -> list[Merchant]:
    return [chain.admit(symbol=f"P{i}", rate=r) for i, r in enumerate(rates)]


def _member_with(chain: Chain, m: Merchant, points: int) -> LocalAccount:
    member = Account.create()
    m.call("issue", member.address, points, ref(f"fund-{member.address}"))
    return member


def _redeem_at(chain: Chain, issuer: Merchant, acceptor: Merchant, member: LocalAccount,
               amount: int, order: str, nonce: int | None = None) -> dict[str, object]:
    n = issuer.program.nonce_of(member.address) if nonce is None else nonce
    r = Redemption(member.address, amount, acceptor.merchant_id, ref(order), n,
                   chain.now() + 600)
    return acceptor.call_on(issuer.program, "redeem", r.as_tuple(),
                            sign(member, chain, issuer, r))


def _net(chain: Chain, m: Merchant, period: int | None = None) -> int:
    p = chain.clearing.current_period() if period is None else period
    return chain.clearing.position_of(p, m.merchant_id)[0]


def _nets_sum(chain: Chain, ms: list[Merchant], period: int | None = None) -> int:
    return sum(_net(chain, m, period) for m in ms)


def _sign_convert(chain: Chain, member: LocalAccount, issuer: Merchant, c: Conversion) -> bytes:
    typed = convert_typed_data(chain_id=chain.gateway.chain_id, program=issuer.program.address,
                               registry=chain.registry.address, member=c.member, amount=c.amount,
                               to_merchant_id=c.to_merchant_id, min_out=c.min_out,
                               order_ref=c.order_ref, nonce=c.nonce, deadline=c.deadline)
    return bytes(Account.sign_typed_data(member.key, full_message=typed).signature)


# ---------------------------------------------------------------------- spending elsewhere


def test_spending_at_another_merchant_moves_value_in_the_same_transaction(chain: Chain) -> None:
    a, b, c = _alliance(chain)
    member = _member_with(chain, a, 100)
    receipt = _redeem_at(chain, a, b, member, 30, "b-order-1")
    assert a.program.balance_of(member.address) == 70
    assert a.program.total_supply() == 70
    assert _net(chain, a) == -300 and _net(chain, b) == 300 and _net(chain, c) == 0
    cleared = [args for n, args, _ in chain.clearing.decode_logs(receipt["logs"])
               if n == "Cleared"]
    assert len(cleared) == 1
    assert (cleared[0]["debtor"], cleared[0]["creditor"], cleared[0]["points"],
            cleared[0]["rate"], cleared[0]["value"]) == (a.merchant_id, b.merchant_id, 30, 10,
                                                         300)
    assert a.program.redemption_of(b.merchant_id, ref("b-order-1"))[:3] == (member.address,
                                                                           30, 10)


def test_spending_at_the_issuer_moves_no_value(chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    member = _member_with(chain, a, 50)
    _redeem_at(chain, a, a, member, 20, "a-own")
    assert _net(chain, a) == 0 and _net(chain, b) == 0
    assert a.program.balance_of(member.address) == 30


def test_a_batch_of_redemptions_elsewhere_clears_once(chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    members = [_member_with(chain, a, 10) for _ in range(5)]
    items = []
    for i, mem in enumerate(members):
        r = Redemption(mem.address, 3 + i, b.merchant_id, ref(f"batch-{i}"), 0,
                       chain.now() + 600)
        items.append((r, sign(mem, chain, a, r)))
    receipt = b.sender.transact(to=a.program.address,
                                data=a.program.encode_redeem_batch(items), gas=3_000_000)
    names = [n for n, _, _ in chain.clearing.decode_logs(receipt["logs"])]
    assert names.count("Cleared") == 1
    assert _net(chain, b) == sum(3 + i for i in range(5)) * 10 == -_net(chain, a)
    assert [a.program.balance_of(m.address) for m in members] == [7, 6, 5, 4, 3]


def test_a_batch_for_two_acceptors_is_rejected_whole(chain: Chain) -> None:
    a, b, c = _alliance(chain)
    member = _member_with(chain, a, 10)
    r1 = Redemption(member.address, 1, b.merchant_id, ref("m1"), 0, chain.now() + 600)
    r2 = Redemption(member.address, 1, c.merchant_id, ref("m2"), 1, chain.now() + 600)
    # Its own error since issue 9 (it was PointsNotAccepted).
    with reverts("PointsMixedAcceptors", b.merchant_id, c.merchant_id):
        b.sender.transact(to=a.program.address, data=a.program.encode_redeem_batch(
            [(r1, sign(member, chain, a, r1)), (r2, sign(member, chain, a, r2))]),
            gas=3_000_000)
    assert a.program.balance_of(member.address) == 10 and _net(chain, b) == 0


def test_a_merchant_that_refuses_a_program_cannot_take_its_points(chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    member = _member_with(chain, a, 10)
    chain.gov(chain.registry, "setAcceptance", b.merchant_id, a.merchant_id, False)
    assert not chain.registry.accepts(b.merchant_id, a.merchant_id)
    with reverts("RegistryNotAccepted", b.merchant_id, a.merchant_id):
        _redeem_at(chain, a, b, member, 5, "refused")
    assert a.program.balance_of(member.address) == 10 and _net(chain, b) == 0
    chain.gov(chain.registry, "setAcceptance", b.merchant_id, a.merchant_id, True)
    _redeem_at(chain, a, b, member, 5, "accepted")
    assert _net(chain, b) == 50


def test_a_suspended_merchant_on_either_side_stops_spending(chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    member = _member_with(chain, a, 10)
    chain.op(chain.registry, "suspendMerchant", a.merchant_id)
    with reverts("RegistryInvalidStatus"):
        _redeem_at(chain, a, b, member, 5, "issuer-suspended")
    chain.gov(chain.registry, "reinstateMerchant", a.merchant_id)
    chain.op(chain.registry, "suspendMerchant", b.merchant_id)
    with reverts("RegistryInvalidStatus"):
        _redeem_at(chain, a, b, member, 5, "acceptor-suspended")
    assert a.program.balance_of(member.address) == 10 and _net(chain, a) == 0


def test_a_signature_for_one_acceptor_cannot_be_used_by_another(chain: Chain) -> None:
    a, b, c = _alliance(chain)
    member = _member_with(chain, a, 10)
    r = Redemption(member.address, 5, b.merchant_id, ref("for-b"), 0, chain.now() + 600)
    sig = sign(member, chain, a, r)
    with reverts("PointsUnauthorized", c.account.address, b.merchant_id):
        c.call_on(a.program, "redeem", r.as_tuple(), sig)
    stolen = Redemption(r.member, r.amount, c.merchant_id, r.order_ref, 0, r.deadline)
    with reverts("PointsInvalidSignature", member.address):
        c.call_on(a.program, "redeem", stolen.as_tuple(), sig)
    assert a.program.balance_of(member.address) == 10


def test_the_foreign_cap_limits_what_a_merchant_accepts_per_period(chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    member = _member_with(chain, a, 100)
    chain.gov(chain.registry, "setCaps", b.merchant_id, 0, 500)
    _redeem_at(chain, a, b, member, 40, "cap-1")
    with reverts("ClearingForeignCapExceeded", b.merchant_id, 500, 600):
        _redeem_at(chain, a, b, member, 20, "cap-2")
    assert a.program.balance_of(member.address) == 60
    b.call_on(a.program, "refundRedemption", b.merchant_id, ref("cap-1"), 10)
    _redeem_at(chain, a, b, member, 20, "cap-2")  # the refund gave back room under the cap
    assert chain.clearing.position_of(chain.clearing.current_period(), b.merchant_id) == (
        500, 500)
    chain.op(chain.clearing, "closePeriod")
    _redeem_at(chain, a, b, member, 20, "cap-3")
    assert _net(chain, b) == 200


def test_the_liability_cap_stops_issuing_beyond_it(chain: Chain) -> None:
    (a,) = _alliance(chain, (10,))
    chain.gov(chain.registry, "setCaps", a.merchant_id, 1_000, 0)
    member = Account.create()
    a.call("issue", member.address, 100, ref("ok"))
    with reverts("PointsLiabilityCapExceeded", 1_000, 1_010):
        a.call("issue", member.address, 1, ref("over"))
    assert a.program.total_supply() == 100
    _redeem_at(chain, a, a, member, 30, "spent")
    a.call("issue", member.address, 30, ref("room-again"))
    assert a.program.total_supply() == 100


# ---------------------------------------------------------------------- conversion


def test_convert_rounds_so_no_value_is_created_and_the_rest_stays(chain: Chain) -> None:
    a, b, _ = _alliance(chain, (3, 10, 1))
    member = _member_with(chain, a, 5)
    c = Conversion(member.address, 5, b.merchant_id, 1, ref("conv-1"), 0, chain.now() + 600)
    assert chain.clearing.quote_conversion(a.merchant_id, b.merchant_id, 5) == (1, 4, 10)
    b.call_on(a.program, "convert", c.as_tuple(), _sign_convert(chain, member, a, c))
    # 5 points at 3 = 15 units buy 1 point at 10; 4 points (12 units) pay for it, 1 stays.
    assert a.program.balance_of(member.address) == 1
    assert b.program.balance_of(member.address) == 1 and b.program.total_supply() == 1
    assert _net(chain, a) == -10 and _net(chain, b) == 10


def test_a_view_answers_in_one_round_trip_and_its_custom_error_is_decoded(
        chain: Chain) -> None:
    """Views are sent as raw eth_call (no web3 formatting); a reverting one still comes back
    as the Solidity custom error with its arguments, from the view and from a gas estimate."""
    a, b, _ = _alliance(chain, (3, 10, 1))
    gw = chain.gateway
    trips = gw.round_trips
    assert chain.clearing.quote_conversion(a.merchant_id, b.merchant_id, 5) == (1, 4, 10)
    assert gw.round_trips - trips == 1
    chain.gov(chain.registry, "setAcceptance", b.merchant_id, a.merchant_id, False)
    with reverts("RegistryNotAccepted", b.merchant_id, a.merchant_id):
        chain.clearing.quote_conversion(a.merchant_id, b.merchant_id, 5)
    data = chain.clearing.encode("quoteConversion", a.merchant_id, b.merchant_id, 5)
    with reverts("RegistryNotAccepted", b.merchant_id, a.merchant_id):
        gw.estimate_gas(sender=chain.operator.address, to=chain.clearing.address, data=data)
    assert gw.estimate_gas(sender=chain.operator.address, to=chain.registry.address,
                           data=chain.registry.encode("merchantCount")) > 21_000


def test_convert_rejects_less_than_the_member_signed_for(chain: Chain) -> None:
    a, b, _ = _alliance(chain, (3, 10, 1))
    member = _member_with(chain, a, 5)
    c = Conversion(member.address, 5, b.merchant_id, 2, ref("conv-2"), 0, chain.now() + 600)
    with reverts("ClearingConversionTooSmall", 1, 2):
        b.call_on(a.program, "convert", c.as_tuple(), _sign_convert(chain, member, a, c))
    tiny = Conversion(member.address, 3, b.merchant_id, 0, ref("conv-3"), 0, chain.now() + 600)
    with reverts("ClearingConversionTooSmall", 0, 0):
        b.call_on(a.program, "convert", tiny.as_tuple(), _sign_convert(chain, member, a, tiny))
    assert a.program.balance_of(member.address) == 5 and _net(chain, b) == 0


def test_only_the_clearing_credits_converted_points(chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    with reverts("PointsUnauthorized"):
        b.call("creditConverted", b.account.address, 10, a.merchant_id, ref("fake"), 2**256 - 1)
    with reverts("ClearingNotProgram"):
        b.call_on(chain.clearing, "recordRedemption", a.merchant_id, b.merchant_id, 10)


# ---------------------------------------------------------------------- refunds


def test_refund_of_a_foreign_redemption_returns_points_and_reverses_clearing(
        chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    member = _member_with(chain, a, 100)
    _redeem_at(chain, a, b, member, 40, "to-refund")
    b.call_on(a.program, "refundRedemption", b.merchant_id, ref("to-refund"), 15)
    assert a.program.balance_of(member.address) == 75
    assert _net(chain, b) == 250 and _net(chain, a) == -250
    with reverts("PointsReverseExceedsIssued", ref("to-refund"), 25, 26):
        b.call_on(a.program, "refundRedemption", b.merchant_id, ref("to-refund"), 26)
    b.call_on(a.program, "refundRedemption", b.merchant_id, ref("to-refund"), 25)
    assert _net(chain, b) == 0 and a.program.total_supply() == 100


def test_refund_after_the_window_or_by_another_merchant_is_rejected(chain: Chain) -> None:
    a, b, c = _alliance(chain)
    member = _member_with(chain, a, 100)
    _redeem_at(chain, a, b, member, 40, "late")
    with reverts("PointsUnknownOrder", ref("late")):
        c.call_on(a.program, "refundRedemption", c.merchant_id, ref("late"), 1)
    with reverts("PointsUnauthorized", c.account.address, b.merchant_id):
        c.call_on(a.program, "refundRedemption", b.merchant_id, ref("late"), 1)
    chain.travel(31 * DAY)
    with reverts("PointsRefundWindowClosed"):
        b.call_on(a.program, "refundRedemption", b.merchant_id, ref("late"), 1)
    assert a.program.balance_of(member.address) == 60 and _net(chain, b) == 400


def test_a_conversion_cannot_be_refunded(chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    member = _member_with(chain, a, 10)
    c = Conversion(member.address, 10, b.merchant_id, 1, ref("conv"), 0, chain.now() + 600)
    b.call_on(a.program, "convert", c.as_tuple(), _sign_convert(chain, member, a, c))
    with reverts("PointsNotRefundable", ref("conv")):
        b.call_on(a.program, "refundRedemption", b.merchant_id, ref("conv"), 1)


# ---------------------------------------------------------------------- close and settle


def _closed_period_with_debt(chain: Chain) -> tuple[list[Merchant], int]:
    """A owes 300 to B; C owes 100 to B (B is owed 400)."""
    a, b, c = _alliance(chain, (10, 10, 10))
    _redeem_at(chain, a, b, _member_with(chain, a, 30), 30, "p-ab")
    _redeem_at(chain, c, b, _member_with(chain, c, 10), 10, "p-cb")
    p = chain.clearing.current_period()
    chain.op(chain.clearing, "closePeriod")
    return [a, b, c], p


TRANSFER_AND_CALL = "transferAndCall(address,uint256,bytes)"


def _mint_and_deposit(chain: Chain, m: Merchant, period: int, amount: int) -> None:
    chain.mint(m.account.address, amount)
    m.call_on(chain.token, TRANSFER_AND_CALL, chain.clearing.address, amount,
              abi_encode(["uint256"], [period]))


def test_closing_records_every_net_and_opens_a_new_period(chain: Chain) -> None:
    (a, b, c), p = _closed_period_with_debt(chain)
    info = chain.clearing.period(p)
    assert info.total_owed == 400 and info.merchants == chain.registry.merchant_count()
    assert [_net(chain, m, p) for m in (a, b, c)] == [-300, 400, -100]
    assert chain.clearing.current_period() == p + 1 and _net(chain, b) == 0


def test_only_the_operator_closes_anchors_sweeps_and_confirms_for_others(
        chain: Chain) -> None:
    (a, b, c), p = _closed_period_with_debt(chain)
    for fn, args in [("closePeriod", ()), ("sweep", (a.account.address,)),
                     ("anchorStatement", (p, b.merchant_id, b"\1" * 32)),
                     ("confirmOffChainPaymentFor", (p, a.merchant_id, b.merchant_id, 1))]:
        with reverts("ClearingUnauthorized", a.account.address):
            a.call_on(chain.clearing, fn, *args)


def _two_creditors(chain: Chain) -> tuple[list[Merchant], int]:
    """A owes 300 to B and 100 to C; D owes 100 to B: B is owed 400, C 100 (500 in all)."""
    a, b, c, d = _alliance(chain, (10, 10, 10, 10))
    member = _member_with(chain, a, 40)
    _redeem_at(chain, a, b, member, 30, "ab")
    _redeem_at(chain, a, c, member, 10, "ac")
    _redeem_at(chain, d, b, _member_with(chain, d, 10), 10, "db")
    p = chain.clearing.current_period()
    chain.op(chain.clearing, "closePeriod")
    return [a, b, c, d], p


def _claim(chain: Chain, who: Merchant, p: int, *creditors: Merchant) -> dict[str, object]:
    return who.call_on(chain.clearing, "claim", p, [m.merchant_id for m in creditors])


def test_creditors_claim_pro_rata_of_what_debtors_paid_in_any_order(chain: Chain) -> None:
    (a, b, c, d), p = _two_creditors(chain)
    tok, clr = chain.token, chain.clearing
    with reverts("ClearingNothingToClaim", p):
        _claim(chain, b, p, b, c)
    _mint_and_deposit(chain, a, p, 200)  # 200 of 500 paid: each creditor may take 40%
    assert (clr.claimable(p, b.merchant_id), clr.claimable(p, c.merchant_id)) == (160, 40)
    _claim(chain, c, p, c)  # C first, alone
    assert tok.balance_of(c.payout) == 40
    with reverts("ClearingNothingToClaim", p):
        _claim(chain, c, p, c, a, d)  # debtors and a paid creditor have nothing to claim
    _mint_and_deposit(chain, d, p, 100)  # a top-up raises every share: 300 of 500
    _claim(chain, d, p, b)  # anyone may trigger a claim; it pays the payout address
    assert tok.balance_of(b.payout) == 240 and clr.claimable(p, c.merchant_id) == 20
    _mint_and_deposit(chain, a, p, 200)  # everything paid
    receipt = _claim(chain, b, p, b, c, b)  # a repeated id is paid once
    paid = [(int(x["merchantId"]), x["payout"], int(x["amount"]))
            for n, x, _ in clr.decode_logs(receipt["logs"])  # type: ignore[arg-type]
            if n == "PaidOut"]
    assert paid == [(b.merchant_id, b.payout, 160), (c.merchant_id, c.payout, 60)]
    assert (tok.balance_of(b.payout), tok.balance_of(c.payout)) == (400, 100)
    # Never to a relaying key; the escrow is empty and every outstanding is zero.
    assert tok.balance_of(b.account.address) == tok.balance_of(c.account.address) == 0
    info = clr.period(p)
    assert (info.escrow, info.total_paid, info.total_received) == (0, 500, 500)
    assert [clr.outstanding(p, m.merchant_id) for m in (a, b, c, d)] == [0, 0, 0, 0]
    assert tok.balance_of(clr.address) == clr.escrowed() == 0


def test_rounding_never_pays_out_more_than_escrow_and_the_rest_follows(chain: Chain) -> None:
    # Was: one unit of escrow went whole to the first creditor in merchant order. Claims are
    # now each creditor's floor share: a unit that nobody's share covers yet waits in escrow
    # for the next payment, and once debtors paid everything every share is exact.
    a, b, c = _alliance(chain, (1, 1, 1))
    member = _member_with(chain, a, 10)
    _redeem_at(chain, a, b, member, 3, "dust-b")
    _redeem_at(chain, a, c, member, 3, "dust-c")
    p = chain.clearing.current_period()
    chain.op(chain.clearing, "closePeriod")
    _mint_and_deposit(chain, a, p, 1)  # floor(3 x 1 / 6) = 0 for each
    with reverts("ClearingNothingToClaim", p):
        _claim(chain, a, p, b, c)
    _mint_and_deposit(chain, a, p, 2)  # 3 of 6: 1 each, nothing left over
    _claim(chain, a, p, b, c)
    assert chain.token.balance_of(b.payout) == chain.token.balance_of(c.payout) == 1
    assert chain.clearing.period(p).escrow == 1  # 3 paid in, 2 out: the last unit waits
    _mint_and_deposit(chain, a, p, 3)
    _claim(chain, a, p, c, b)
    assert chain.token.balance_of(b.payout) == chain.token.balance_of(c.payout) == 3
    assert chain.clearing.period(p).escrow == 0


def test_settlement_pays_creditors_short_debtors_stay_outstanding(chain: Chain) -> None:
    (a, b, c), p = _closed_period_with_debt(chain)
    with reverts("ClearingNothingToClaim", p):
        _claim(chain, b, p, b)
    _mint_and_deposit(chain, a, p, 300)
    _mint_and_deposit(chain, c, p, 40)  # short: owes 100
    _claim(chain, b, p, b)
    assert chain.token.balance_of(b.payout) == 340
    assert chain.clearing.outstanding(p, c.merchant_id) == -60
    assert chain.clearing.outstanding(p, b.merchant_id) == 60
    with reverts("ClearingNothingToClaim", p):
        _claim(chain, b, p, b)
    _mint_and_deposit(chain, c, p, 60)
    _claim(chain, b, p, b)
    assert chain.token.balance_of(b.payout) == 400
    assert chain.token.balance_of(chain.clearing.address) == 0
    with reverts("ClearingNothingToClaim", p):
        _claim(chain, b, p, b)


def test_stray_tokens_are_swept_and_escrow_is_not(chain: Chain) -> None:
    (a, b, _), p = _closed_period_with_debt(chain)
    _mint_and_deposit(chain, a, p, 300)
    with reverts("ClearingNothingToSweep"):
        chain.op(chain.clearing, "sweep", b.payout)
    chain.mint(a.account.address, 7)
    a.call_on(chain.token, "transfer", chain.clearing.address, 7)  # a plain transfer: stray
    refund_to = Account.create().address
    chain.op(chain.clearing, "sweep", refund_to)
    assert chain.token.balance_of(refund_to) == 7
    assert chain.token.balance_of(chain.clearing.address) == chain.clearing.escrowed() == 300
    with reverts("ClearingNothingToSweep"):
        chain.op(chain.clearing, "sweep", refund_to)
    _claim(chain, b, p, b)
    assert chain.token.balance_of(b.payout) == 300


def test_a_suspended_creditor_is_still_paid_and_the_operator_confirms_for_it(
        chain: Chain) -> None:
    (a, b, c), p = _closed_period_with_debt(chain)
    chain.op(chain.registry, "suspendMerchant", b.merchant_id)
    with reverts("RegistryInvalidStatus"):
        b.call_on(chain.clearing, "confirmOffChainPayment", p, a.merchant_id, 100)
    with reverts("ClearingUnauthorized", chain.operator.address):  # only for a suspended one
        chain.op(chain.clearing, "confirmOffChainPaymentFor", p, a.merchant_id,
                 c.merchant_id, 1)
    chain.op(chain.clearing, "confirmOffChainPaymentFor", p, a.merchant_id, b.merchant_id,
             100)
    with reverts("ClearingExceedsOutstanding", p, a.merchant_id, 200, 201):
        chain.op(chain.clearing, "confirmOffChainPaymentFor", p, a.merchant_id,
                 b.merchant_id, 201)
    assert chain.clearing.outstanding(p, b.merchant_id) == 300
    assert chain.clearing.outstanding(p, a.merchant_id) == -200
    _mint_and_deposit(chain, c, p, 100)
    _claim(chain, c, p, b)  # 200 of 400 paid: B's share 200, 100 of it received off chain
    assert chain.token.balance_of(b.payout) == 100


def test_deposits_beyond_the_debt_or_by_creditors_or_for_open_periods_change_nothing(
        chain: Chain) -> None:
    (a, b, _), p = _closed_period_with_debt(chain)
    chain.mint(a.account.address, 1_000)
    chain.mint(b.account.address, 1_000)
    data = abi_encode(["uint256"], [p])
    with reverts("ClearingExceedsOutstanding", p, a.merchant_id, 300, 301):
        a.call_on(chain.token, TRANSFER_AND_CALL, chain.clearing.address, 301, data)
    with reverts("ClearingExceedsOutstanding", p, b.merchant_id, 0, 1):
        b.call_on(chain.token, TRANSFER_AND_CALL, chain.clearing.address, 1, data)
    with reverts("ClearingPeriodNotClosed", p + 1):
        a.call_on(chain.token, TRANSFER_AND_CALL, chain.clearing.address, 1,
                  abi_encode(["uint256"], [p + 1]))
    with reverts("ClearingInvalidDeposit"):
        a.call_on(chain.clearing, "onTransferReceived", a.account.address, a.account.address,
                  1, data)
    assert chain.token.balance_of(a.account.address) == 1_000
    assert chain.clearing.period(p).escrow == 0


def test_a_creditor_confirms_an_off_chain_payment(chain: Chain) -> None:
    (a, b, c), p = _closed_period_with_debt(chain)
    b.call_on(chain.clearing, "confirmOffChainPayment", p, a.merchant_id, 300)
    assert chain.clearing.outstanding(p, a.merchant_id) == 0
    assert chain.clearing.outstanding(p, b.merchant_id) == 100
    with reverts("ClearingExceedsOutstanding", p, a.merchant_id, 0, 1):
        b.call_on(chain.clearing, "confirmOffChainPayment", p, a.merchant_id, 1)
    with reverts("ClearingExceedsOutstanding", p, c.merchant_id, 0, 1):
        c.call_on(chain.clearing, "confirmOffChainPayment", p, a.merchant_id, 1)
    _mint_and_deposit(chain, c, p, 100)
    _claim(chain, c, p, b)
    assert chain.clearing.outstanding(p, b.merchant_id) == 0
    assert chain.token.balance_of(b.payout) == 100


def test_a_statement_hash_is_anchored_once_for_a_closed_period(chain: Chain) -> None:
    (_, b, _), p = _closed_period_with_debt(chain)
    with reverts("ClearingPeriodNotClosed", p + 1):
        chain.op(chain.clearing, "anchorStatement", p + 1, b.merchant_id, b"\1" * 32)
    chain.op(chain.clearing, "anchorStatement", p, b.merchant_id, b"\2" * 32)
    assert chain.clearing.statement_hash(p, b.merchant_id) == b"\2" * 32
    with reverts("ClearingStatementAlreadyAnchored", p, b.merchant_id):
        chain.op(chain.clearing, "anchorStatement", p, b.merchant_id, b"\3" * 32)


def test_a_replayed_or_expired_foreign_redemption_changes_nothing(chain: Chain) -> None:
    a, b, _ = _alliance(chain)
    member = _member_with(chain, a, 100)
    r = Redemption(member.address, 10, b.merchant_id, ref("replay"), 0, chain.now() + 60)
    sig = sign(member, chain, a, r)
    b.call_on(a.program, "redeem", r.as_tuple(), sig)
    with reverts("PointsOrderRefUsed", ref("replay")):
        b.call_on(a.program, "redeem", r.as_tuple(), sig)
    late = Redemption(member.address, 10, b.merchant_id, ref("late"), 1, chain.now() + 60)
    late_sig = sign(member, chain, a, late)
    other_chain = sign(member, chain, a, late, chain_id=1)
    chain.travel(120)
    with reverts("PointsSignatureExpired", late.deadline):
        b.call_on(a.program, "redeem", late.as_tuple(), late_sig)
    fresh = Redemption(member.address, 10, b.merchant_id, ref("late"), 1, chain.now() + 60)
    with reverts("PointsInvalidSignature", member.address):
        b.call_on(a.program, "redeem", fresh.as_tuple(), other_chain)
    assert a.program.balance_of(member.address) == 90 and _net(chain, b) == 100


def test_a_refund_puts_points_back_where_they_expire_as_before(chain: Chain) -> None:
    """Redeem-and-refund cannot keep points alive: they return to the lot they came from."""
    expiring = ProgramConfig(period_length=30 * DAY, expiry_periods=2, max_pending_days=7)
    a = chain.admit(symbol="EXP", rate=10, config=expiring)
    b = chain.admit(symbol="B", rate=10)
    member = Account.create()
    a.call("issue", member.address, 100, ref("old-points"))
    chain.travel(60 * DAY + 3600)  # period 2: the period-0 lot is in its last live period
    a.call("issue", member.address, 5, ref("new-points"))
    _redeem_at(chain, a, b, member, 100, "spend-old")
    b.call_on(a.program, "refundRedemption", b.merchant_id, ref("spend-old"), 100)
    assert a.program.lots_of(member.address) == [(0, 100), (2, 5)]
    assert _net(chain, b) == 0
    chain.travel(30 * DAY)  # period 3: period 0 has expired
    assert a.program.spendable_of(member.address) == 5
    a.call("sweepExpired", [member.address])  # balanceOf follows the logs: swept, it drops
    assert a.program.balance_of(member.address) == 5 == a.program.total_supply()
    # A refund after the lot expired gives nothing back, but the value still moves back.
    chain.travel(50 * DAY)  # day 140, period 4: the period-2 lot is in its last live period
    _redeem_at(chain, a, b, member, 5, "spend-new")
    chain.travel(11 * DAY)  # day 151, period 5: period 2 has expired; still in the window
    b.call_on(a.program, "refundRedemption", b.merchant_id, ref("spend-new"), 5)
    assert a.program.spendable_of(member.address) == 0
    assert a.program.balance_of(member.address) == 0 == a.program.total_supply()
    assert _net(chain, b) == 0


def test_refunds_rebuild_lots_in_period_order(chain: Chain) -> None:
    expiring = ProgramConfig(period_length=30 * DAY, expiry_periods=3, max_pending_days=7)
    a = chain.admit(symbol="EXP", rate=10, config=expiring)
    b = chain.admit(symbol="B", rate=10)
    member = Account.create()
    for period in range(3):
        a.call("issue", member.address, 10 * (period + 1), ref(f"earn-{period}"))
        chain.travel(30 * DAY)
    _redeem_at(chain, a, b, member, 10, "r-0")  # all of the period-0 lot
    _redeem_at(chain, a, b, member, 20, "r-1")  # all of the period-1 lot
    assert a.program.lots_of(member.address) == [(2, 30)]
    b.call_on(a.program, "refundRedemption", b.merchant_id, ref("r-0"), 10)
    b.call_on(a.program, "refundRedemption", b.merchant_id, ref("r-1"), 20)
    assert a.program.lots_of(member.address) == [(0, 10), (1, 20), (2, 30)]
    assert a.program.total_supply() == a.program.balance_of(member.address) == 60


def test_the_operator_refunds_for_a_suspended_acceptor_and_nobody_else_can(
        chain: Chain) -> None:
    a, b, c = _alliance(chain)
    member = _member_with(chain, a, 100)
    _redeem_at(chain, a, b, member, 40, "b-sale")
    chain.op(chain.registry, "suspendMerchant", b.merchant_id)
    with reverts("RegistryInvalidStatus"):
        b.call_on(a.program, "refundRedemption", b.merchant_id, ref("b-sale"), 40)
    with reverts("RegistryInvalidStatus"):
        c.call_on(a.program, "refundRedemption", b.merchant_id, ref("b-sale"), 40)
    chain.op(a.program, "refundRedemption", b.merchant_id, ref("b-sale"), 40)
    assert a.program.balance_of(member.address) == 100 and _net(chain, b) == 0
