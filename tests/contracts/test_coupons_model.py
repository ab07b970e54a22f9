"""A stateful model of the coupon book on a real anvil: random grants, vouchers claimed,
redemptions at several merchants (inside and outside windows, under the minimum spend, past
the budget), rollbacks and time passing, checked after every step: each coupon used at most
once, no campaign past its budget, and the discount given at other merchants equal to what
the clearing moved."""

from __future__ import annotations

import os
from dataclasses import dataclass

from eth_account import Account
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.coupons.clients import CampaignTerms, CouponBookClient, CouponKind
from ledger.errors import ContractRevertError

from .conftest import DAY, Chain, read_views
from .test_coupons import Book, ref

MEMBERS = 3


@dataclass
class Coupon:
    coupon_id: int
    campaign: int  # index into the machine's campaigns
    holder: int
    granted_at: int
    redeemed: tuple[int, int, int, bytes] | None = None  # acceptor, discount, at, order ref


@dataclass
class Campaign:
    campaign_id: int
    issuer: int  # index into merchants
    value: int
    min_spend: int
    valid_days: int
    budget: int
    used: int = 0


def test_coupon_book_matches_the_model(chain: Chain) -> None:
    address = chain.clearing.view1("couponBook")
    client = CouponBookClient(chain.gateway, chain.artifacts["CouponBook"].abi, str(address))
    merchants = [chain.admit(symbol=s) for s in ("MA", "MB", "MC")]
    gw = chain.gateway
    members = [Account.create() for _ in range(MEMBERS)]
    book = Book(chain, client, merchants[0], merchants[1], merchants[2], members[0])
    window = chain.registry.refund_window()

    class CouponMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snap = chain.gateway.rpc("evm_snapshot")
            for m in merchants:
                m.sender = chain.sender(m.account)
            self.campaigns: list[Campaign] = []
            self.coupons: list[Coupon] = []
            self.nets = [0] * len(merchants)
            self.period = chain.clearing.current_period()
            self.orders = 0

        def teardown(self) -> None:
            chain.gateway.rpc("evm_revert", [self.snap])

        def _next_block_time(self) -> int:
            at = chain.now() + 1
            chain.gateway.rpc("evm_setNextBlockTimestamp", [at])
            return at

        def _order(self) -> bytes:
            self.orders += 1
            return ref(f"order-{self.orders}-{os.urandom(4).hex()}")

        @initialize(specs=st.lists(st.tuples(st.integers(0, 2), st.integers(100, 900),
                                             st.integers(0, 3000), st.integers(0, 3),
                                             st.integers(500, 3000)),
                                   min_size=1, max_size=3))
        def campaigns_created(self, specs: list[tuple[int, int, int, int, int]]) -> None:
            for issuer, value, min_spend, days, budget in specs:
                terms = CampaignTerms(issuer=merchants[issuer].merchant_id,
                                      kind=CouponKind.FIXED_OFF, value=value, budget=budget,
                                      min_spend=min_spend, valid_days=days,
                                      all_merchants=True)
                book.issuer = merchants[issuer]
                receipt = book.call(merchants[issuer], "createCampaign", terms.as_tuple())
                (cid,) = [int(a["campaignId"]) for n, a, _ in client.decode_logs(
                    receipt["logs"]) if n == "CampaignCreated"]
                self.campaigns.append(Campaign(cid, issuer, value, min_spend, days, budget))

        @rule(data=st.data(), member=st.integers(0, MEMBERS - 1), n=st.integers(1, 3))
        def grant(self, data: st.DataObject, member: int, n: int) -> None:
            c = data.draw(st.integers(0, len(self.campaigns) - 1), label="campaign")
            camp = self.campaigns[c]
            receipt = book.call(merchants[camp.issuer], "grantBatch", camp.campaign_id,
                                [members[member].address] * n)
            ids = [int(a["tokenId"]) for nm, a, _ in client.decode_logs(receipt["logs"])
                   if nm == "Transfer"]
            now = chain.now()
            self.coupons += [Coupon(t, c, member, now) for t in ids]

        @rule(data=st.data(), member=st.integers(0, MEMBERS - 1))
        def claim_voucher(self, data: st.DataObject, member: int) -> None:
            c = data.draw(st.integers(0, len(self.campaigns) - 1), label="campaign")
            camp = self.campaigns[c]
            book.issuer = merchants[camp.issuer]
            v, sig = book.voucher(camp.campaign_id, int.from_bytes(os.urandom(6)))
            receipt = book.call(merchants[camp.issuer], "claimVoucher", v,
                                members[member].address, sig)
            (t,) = [int(a["tokenId"]) for nm, a, _ in client.decode_logs(receipt["logs"])
                    if nm == "Transfer"]
            self.coupons.append(Coupon(t, c, member, chain.now()))
            # Claimed once: the same voucher again changes nothing.
            try:
                book.call(merchants[camp.issuer], "claimVoucher", v, members[member].address,
                          sig)
                raise AssertionError("a voucher claimed twice")
            except ContractRevertError as exc:
                assert exc.name == "CouponVoucherUsed"

        @precondition(lambda self: bool(self.coupons))
        @rule(data=st.data(), at=st.integers(0, 2), amount=st.integers(1, 5000))
        def redeem(self, data: st.DataObject, at: int, amount: int) -> None:
            k = data.draw(st.integers(0, len(self.coupons) - 1), label="coupon")
            cp = self.coupons[k]
            camp = self.campaigns[cp.campaign]
            # The block that takes the redemption is pinned to the next second: anvil may
            # otherwise mine it in the same second as the last block, and the model would
            # call a coupon expired one second early.
            now = self._next_block_time()
            end = cp.granted_at + camp.valid_days * DAY if camp.valid_days else None
            discount = min(camp.value, amount)
            expected: str | None = None
            if cp.redeemed is not None:
                expected = "CouponAlreadyUsed"
            elif end is not None and now > end:
                expected = "CouponExpired"
            elif amount < camp.min_spend:
                expected = "CouponUnderMinimumSpend"
            elif camp.used + discount > camp.budget:
                expected = "CouponBudgetExhausted"
            order = self._order()
            book.member = members[cp.holder]
            r, sig = book.sign(cp.coupon_id, merchants[at].merchant_id, order, amount)
            try:
                book.call(merchants[at], "redeem", r, sig)
            except ContractRevertError as exc:
                assert exc.name == expected, (exc.name, expected)
                return
            assert expected is None, expected
            cp.redeemed = (at, discount, chain.now(), order)
            camp.used += discount
            if at != camp.issuer:
                self.nets[camp.issuer] -= discount
                self.nets[at] += discount

        @precondition(lambda self: any(c.redeemed for c in self.coupons))
        @rule(data=st.data())
        def rollback(self, data: st.DataObject) -> None:
            used = [c for c in self.coupons if c.redeemed]
            cp = data.draw(st.sampled_from(used), label="redeemed coupon")
            assert cp.redeemed is not None
            at, discount, when, order = cp.redeemed
            camp = self.campaigns[cp.campaign]
            now = self._next_block_time()
            try:
                book.call(merchants[at], "rollback", cp.coupon_id, order)
            except ContractRevertError as exc:
                assert exc.name == "CouponRefundWindowClosed" and now > when + window
                return
            assert now <= when + window, "a rollback after the refund window"
            cp.redeemed = None
            camp.used -= discount
            if at != camp.issuer:
                self.nets[camp.issuer] += discount
                self.nets[at] -= discount

        @rule(seconds=st.sampled_from([60, 3600, DAY, 2 * DAY, 8 * DAY]))
        def time_passes(self, seconds: int) -> None:
            chain.travel(seconds)

        # Each invariant reads its views in one JSON-RPC batch (read_views).

        @invariant()
        def each_coupon_used_at_most_once_and_as_modelled(self) -> None:
            used = read_views(gw, [(client, "isUsed", (cp.coupon_id,)) for cp in self.coupons])
            for cp, (is_used,) in zip(self.coupons, used, strict=True):
                assert bool(is_used) == (cp.redeemed is not None)

        @invariant()
        def budgets_hold_and_match(self) -> None:
            raw = read_views(gw, [(client, "campaign", (camp.campaign_id,))
                                  for camp in self.campaigns])
            for camp, (state,) in zip(self.campaigns, raw, strict=True):
                budget_used = int(state[-1])  # CouponBookClient.campaign's budget_used
                assert budget_used == camp.used <= camp.budget

        @invariant()
        def discounts_given_elsewhere_equal_the_clearing_moves(self) -> None:
            nets = [int(pos[0][0]) for pos in read_views(gw, [
                (chain.clearing, "positionOf", (self.period, m.merchant_id))
                for m in merchants])]
            assert nets == self.nets and sum(nets) == 0

    run_state_machine_as_test(CouponMachine, settings=settings(
        max_examples=10, stateful_step_count=25, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
