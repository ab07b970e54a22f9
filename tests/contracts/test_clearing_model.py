"""A stateful model of the whole clearing on a real anvil: random sequences of issuing,
spending at the issuer and elsewhere, converting, refunding, closing periods, depositing
(short, then topped up), confirming off-chain payments, creditors claiming in any order and
in part, stray token transfers and sweeps, checked after every step against a plain Python
model of balances, supplies, positions and settlements."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
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

from ledger.chain.sender import TransactionSender
from ledger.clearing.clients import PeriodInfo
from ledger.errors import ContractRevertError
from ledger.points.clients import Conversion, IssueItem
from ledger.settings import ANVIL_ADMIN_KEY, ANVIL_MINTER_KEY, ANVIL_OPERATOR_KEY

from .conftest import Chain, Merchant, read_views
from .test_clearing import _redeem_at, _sign_convert
from .test_point_program import ref, reverts

RATES = (10, 25, 4, 7)
MEMBERS = 4
TRANSFER_AND_CALL = "transferAndCall(address,uint256,bytes)"


@dataclass
class RedemptionRec:
    """A redemption the model remembers so it can be refunded."""

    issuer: int
    acceptor: int
    member: int
    order_ref: bytes
    remaining: int
    rate: int  # 0: spent at the issuer, nothing cleared


@dataclass
class ClosedPeriod:
    nets: list[int]
    total_owed: int
    paid: list[int] = field(default_factory=lambda: [0] * len(RATES))
    received: list[int] = field(default_factory=lambda: [0] * len(RATES))
    paid_out: list[int] = field(default_factory=lambda: [0] * len(RATES))  # from escrow
    confirmed: list[int] = field(default_factory=lambda: [0] * len(RATES))  # off chain
    total_received: int = 0
    total_paid: int = 0
    escrow: int = 0

    def share(self, m: int) -> int:
        """What creditor `m` may have received by now: its net pro rata of what debtors
        paid (escrow and off chain), rounded down."""
        return self.nets[m] * self.total_paid // self.total_owed if self.nets[m] > 0 else 0

    def claimable(self, m: int) -> int:
        return max(self.share(m) - self.received[m], 0)

    def owes(self, m: int) -> int:
        return -self.nets[m] - self.paid[m] if self.nets[m] < 0 else 0

    def due(self, m: int) -> int:
        return self.nets[m] - self.received[m] if self.nets[m] > 0 else 0


def quote(amount: int, rate_a: int, rate_b: int) -> tuple[int, int, int]:
    """IClearing.quoteConversion as documented: out floor, spent ceil, value out x rateB."""
    out = amount * rate_a // rate_b
    spent = -(-out * rate_b // rate_a)
    return out, spent, out * rate_b


def test_clearing_matches_the_model(chain: Chain) -> None:
    gw = chain.gateway
    clearing, token = chain.clearing, chain.token

    class ClearingMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snap = gw.rpc("evm_snapshot")
            try:
                # Nonces must follow the chain after the previous instance's revert.
                chain.operator = TransactionSender(gw, ANVIL_OPERATOR_KEY)
                chain.admin = TransactionSender(gw, ANVIL_ADMIN_KEY)
                chain.minter = TransactionSender(gw, ANVIL_MINTER_KEY)
                self.ms: list[Merchant] = [chain.admit(symbol=f"M{i}", rate=r)
                                           for i, r in enumerate(RATES)]
            except BaseException:
                gw.rpc("evm_revert", [self.snap])
                raise
            self.members: list[LocalAccount] = [Account.create() for _ in range(MEMBERS)]
            self.bal = [[0] * MEMBERS for _ in RATES]
            self.redemptions: list[RedemptionRec] = []
            self.period = clearing.current_period()
            self.nets = [0] * len(RATES)
            self.closed: dict[int, ClosedPeriod] = {}
            self.tokens = [0] * len(RATES)  # settlement tokens held by each relaying key
            self.payouts = [0] * len(RATES)  # ... and by each payout address
            self.stray = 0  # tokens sent to the clearing with a plain transfer
            self.serial = 0

        def teardown(self) -> None:
            try:
                if sys.exc_info()[0] is None:  # after a failed step, only clean up
                    self._drain()
            finally:
                gw.rpc("evm_revert", [self.snap])

        # ------------------------------------------------------------ helpers

        def _name(self, kind: str) -> str:
            self.serial += 1
            return f"{kind}-{self.serial}"

        def _ref(self, kind: str) -> bytes:
            return ref(self._name(kind))

        def _holders(self) -> list[tuple[int, int]]:
            return [(i, j) for i in range(len(RATES)) for j in range(MEMBERS)
                    if self.bal[i][j] > 0]

        def _value(self) -> int:
            """Outstanding points x rate, over every program, as the chain has them."""
            return sum(m.program.total_supply() * r for m, r in zip(self.ms, RATES, strict=True))

        def _redeem(self, issuer: int, acceptor: int, member: int, amount: int,
                    expect_ok: bool) -> None:
            name = self._name("sale")
            order = ref(name)
            before = self._value()
            try:
                _redeem_at(chain, self.ms[issuer], self.ms[acceptor], self.members[member],
                           amount, name)
            except ContractRevertError as exc:
                assert not expect_ok, f"redeem {amount} failed: {exc}"
                assert exc.name == "PointsInsufficientBalance", exc
                assert self._value() == before
                return
            assert expect_ok, f"redeem of {amount} > balance {self.bal[issuer][member]} passed"
            rate = RATES[issuer] if issuer != acceptor else 0
            self.bal[issuer][member] -= amount
            if rate:
                self.nets[issuer] -= amount * rate
                self.nets[acceptor] += amount * rate
            self.redemptions.append(RedemptionRec(issuer, acceptor, member, order, amount,
                                                  rate))
            after = self._value()
            assert after == before - amount * RATES[issuer] < before
            got = self.ms[issuer].program.redemption_of(self.ms[acceptor].merchant_id, order)
            assert got[:3] == (self.members[member].address, amount, rate)

        # ------------------------------------------------------------ points

        @initialize(amounts=st.lists(st.integers(0, 300), min_size=len(RATES) * MEMBERS,
                                     max_size=len(RATES) * MEMBERS))
        def fund(self, amounts: list[int]) -> None:
            """Start members with some points (one batch issue per program), so the first
            steps already have something to spend."""
            for i, m in enumerate(self.ms):
                row = amounts[i * MEMBERS:(i + 1) * MEMBERS]
                items = [IssueItem(x.address, a, self._ref("fund"))
                         for x, a in zip(self.members, row, strict=True) if a > 0]
                if items:
                    m.sender.transact(to=m.program.address,
                                      data=m.program.encode_issue_batch(items), gas=3_000_000)
                for j, a in enumerate(row):
                    self.bal[i][j] += a

        @rule(m=st.integers(0, len(RATES) - 1), member=st.integers(0, MEMBERS - 1),
              amount=st.integers(1, 500))
        def issue(self, m: int, member: int, amount: int) -> None:
            self.ms[m].call("issue", self.members[member].address, amount, self._ref("issue"))
            self.bal[m][member] += amount

        @precondition(lambda self: bool(self._holders()))
        @rule(data=st.data())
        def redeem_here(self, data: st.DataObject) -> None:
            i, j = data.draw(st.sampled_from(self._holders()), label="issuer, member")
            over = data.draw(st.integers(0, 9), label="over") == 0
            amount = (self.bal[i][j] + 1 if over
                      else data.draw(st.integers(1, self.bal[i][j]), label="amount"))
            self._redeem(i, i, j, amount, expect_ok=not over)

        @precondition(lambda self: bool(self._holders()))
        @rule(data=st.data())
        def redeem_elsewhere(self, data: st.DataObject) -> None:
            i, j = data.draw(st.sampled_from(self._holders()), label="issuer, member")
            k = data.draw(st.sampled_from([k for k in range(len(RATES)) if k != i]),
                          label="acceptor")
            over = data.draw(st.integers(0, 9), label="over") == 0
            amount = (self.bal[i][j] + 1 if over
                      else data.draw(st.integers(1, self.bal[i][j]), label="amount"))
            self._redeem(i, k, j, amount, expect_ok=not over)

        @precondition(lambda self: bool(self._holders()))
        @rule(data=st.data())
        def convert(self, data: st.DataObject) -> None:
            a, j = data.draw(st.sampled_from(self._holders()), label="from, member")
            b = data.draw(st.sampled_from([k for k in range(len(RATES)) if k != a]),
                          label="to")
            # A little past the balance too: only `spent` is burnt, so that may still work.
            amount = data.draw(st.integers(1, self.bal[a][j] + 3), label="amount")
            min_out = data.draw(st.sampled_from([0, 1]), label="min_out")
            frm, to, mem = self.ms[a], self.ms[b], self.members[j]
            out, spent, value = quote(amount, RATES[a], RATES[b])
            assert clearing.quote_conversion(frm.merchant_id, to.merchant_id, amount) == (
                out, spent, value)
            assert spent <= amount and value <= spent * RATES[a]
            c = Conversion(mem.address, amount, to.merchant_id, min_out, self._ref("conv"),
                           frm.program.nonce_of(mem.address), chain.now() + 600)
            sig = _sign_convert(chain, mem, frm, c)
            before = self._value()
            if out < 1:
                with reverts("ClearingConversionTooSmall", out, min_out):
                    to.call_on(frm.program, "convert", c.as_tuple(), sig)
                return
            if spent > self.bal[a][j]:
                with reverts("PointsInsufficientBalance"):
                    to.call_on(frm.program, "convert", c.as_tuple(), sig)
                return
            to.call_on(frm.program, "convert", c.as_tuple(), sig)
            self.bal[a][j] -= spent
            self.bal[b][j] += out
            self.nets[a] -= value
            self.nets[b] += value
            after = self._value()
            assert after == before - spent * RATES[a] + out * RATES[b] <= before

        @precondition(lambda self: any(r.remaining for r in self.redemptions))
        @rule(data=st.data())
        def refund(self, data: st.DataObject) -> None:
            rec = data.draw(st.sampled_from([r for r in self.redemptions if r.remaining]),
                            label="redemption")
            over = data.draw(st.integers(0, 9), label="over") == 0
            amount = (rec.remaining + 1 if over
                      else data.draw(st.integers(1, rec.remaining), label="amount"))
            iss, acc = self.ms[rec.issuer], self.ms[rec.acceptor]
            if over:
                with reverts("PointsReverseExceedsIssued", rec.order_ref, rec.remaining,
                             amount):
                    acc.call_on(iss.program, "refundRedemption", acc.merchant_id,
                                rec.order_ref, amount)
                return
            acc.call_on(iss.program, "refundRedemption", acc.merchant_id, rec.order_ref,
                        amount)
            rec.remaining -= amount
            self.bal[rec.issuer][rec.member] += amount
            if rec.rate:
                # The value moves back in the current period, at the redemption's rate.
                self.nets[rec.acceptor] -= amount * rec.rate
                self.nets[rec.issuer] += amount * rec.rate
            assert iss.program.redemption_of(acc.merchant_id, rec.order_ref)[1] == rec.remaining

        # ------------------------------------------------------------ clearing

        @precondition(lambda self: any(self.nets))
        @rule()
        def close_period(self) -> None:
            chain.op(clearing, "closePeriod")
            owed = sum(-n for n in self.nets if n < 0)
            self.closed[self.period] = ClosedPeriod(list(self.nets), owed)
            info = clearing.period(self.period)
            assert info.total_owed == owed and info.closed_at > 0
            assert info.merchants == chain.registry.merchant_count()
            self.period += 1
            self.nets = [0] * len(RATES)
            assert clearing.current_period() == self.period

        def _debts(self) -> list[tuple[int, int]]:
            return [(p, m) for p, cp in self.closed.items() for m in range(len(RATES))
                    if cp.owes(m) > 0]

        @precondition(lambda self: bool(self._debts()))
        @rule(data=st.data())
        def deposit(self, data: st.DataObject) -> None:
            p, m = data.draw(st.sampled_from(self._debts()), label="period, debtor")
            cp = self.closed[p]
            owes = cp.owes(m)
            over = data.draw(st.integers(0, 9), label="over") == 0
            amount = (owes + 1 if over
                      else data.draw(st.one_of(st.just(owes), st.integers(1, owes)),
                                     label="amount"))
            if over:
                merchant = self.ms[m]
                chain.mint(merchant.account.address, amount)
                self.tokens[m] += amount
                with reverts("ClearingExceedsOutstanding", p, merchant.merchant_id, owes,
                             amount):
                    merchant.call_on(token, TRANSFER_AND_CALL, clearing.address, amount,
                                     abi_encode(["uint256"], [p]))
                return
            self._deposit(p, m, amount)

        def _deposit(self, p: int, m: int, amount: int) -> None:
            """Mint `amount` settlement tokens to debtor `m` and pay them in for period `p`."""
            merchant, cp = self.ms[m], self.closed[p]
            chain.mint(merchant.account.address, amount)
            merchant.call_on(token, TRANSFER_AND_CALL, clearing.address, amount,
                             abi_encode(["uint256"], [p]))
            cp.paid[m] += amount
            cp.escrow += amount
            cp.total_paid += amount

        def _offchain(self) -> list[tuple[int, int, int]]:
            return [(p, c, d) for p, cp in self.closed.items() for c in range(len(RATES))
                    for d in range(len(RATES)) if cp.due(c) > 0 and cp.owes(d) > 0]

        @precondition(lambda self: bool(self._offchain()))
        @rule(data=st.data())
        def confirm_off_chain(self, data: st.DataObject) -> None:
            p, c, d = data.draw(st.sampled_from(self._offchain()),
                                label="period, creditor, debtor")
            cp = self.closed[p]
            amount = data.draw(st.integers(1, min(cp.due(c), cp.owes(d))), label="amount")
            self.ms[c].call_on(clearing, "confirmOffChainPayment", p, self.ms[d].merchant_id,
                               amount)
            cp.received[c] += amount
            cp.confirmed[c] += amount
            cp.paid[d] += amount
            cp.total_received += amount
            cp.total_paid += amount

        @precondition(lambda self: bool(self.closed))
        @rule(data=st.data())
        def claim(self, data: st.DataObject) -> None:
            """Any merchant claims for any list of merchants (creditors in any order, some
            of them only, debtors, repeats) of a closed period."""
            funded = sorted(p for p, cp in self.closed.items() if cp.escrow)
            use_funded: bool = bool(funded) and data.draw(st.booleans(), label="funded")
            p = data.draw(st.sampled_from(funded if use_funded else sorted(self.closed)),
                          label="period")
            ids = data.draw(st.lists(st.integers(0, len(RATES) - 1), min_size=1, max_size=6),
                            label="merchants")
            caller = data.draw(st.integers(0, len(RATES) - 1), label="caller")
            self._claim(p, ids, caller)

        def _claim(self, p: int, ids: list[int], caller: int = 0) -> None:
            """Claim for `ids` in period `p`; the model says what each is paid or why not."""
            cp = self.closed[p]
            escrow = cp.escrow
            expected: list[tuple[int, str, int]] = []
            got_paid = [0] * len(RATES)
            for m in ids:
                pay = min(max(cp.share(m) - cp.received[m] - got_paid[m], 0), escrow)
                if pay:
                    escrow -= pay
                    got_paid[m] += pay
                    expected.append((self.ms[m].merchant_id, self.ms[m].payout, pay))
            # Deposits are capped by what debtors owe: escrow never exceeds what is due.
            assert cp.escrow <= cp.total_owed - cp.total_received
            args = (p, [self.ms[m].merchant_id for m in ids])
            if not expected:
                with reverts("ClearingNothingToClaim", p):
                    self.ms[caller].call_on(clearing, "claim", *args)
                return
            receipt = self.ms[caller].call_on(clearing, "claim", *args)
            paid_out = [(int(a["merchantId"]), a["payout"], int(a["amount"]))
                        for n, a, _ in clearing.decode_logs(receipt["logs"])  # type: ignore[arg-type]
                        if n == "PaidOut"]
            assert paid_out == expected, (p, ids, paid_out, expected)
            for m, pay in enumerate(got_paid):
                cp.received[m] += pay
                cp.paid_out[m] += pay
                self.payouts[m] += pay
            cp.escrow -= sum(got_paid)
            cp.total_received += sum(got_paid)

        @rule(m=st.integers(0, len(RATES) - 1), amount=st.integers(1, 50))
        def stray_transfer(self, m: int, amount: int) -> None:
            """A merchant sends settlement tokens with a plain transfer: no deposit."""
            merchant = self.ms[m]
            chain.mint(merchant.account.address, amount)
            merchant.call_on(token, "transfer", clearing.address, amount)
            self.stray += amount

        @rule()
        def sweep(self) -> None:
            to = Account.create().address
            if not self.stray:
                with reverts("ClearingNothingToSweep"):
                    chain.op(clearing, "sweep", to)
                return
            chain.op(clearing, "sweep", to)
            assert token.balance_of(to) == self.stray
            self.stray = 0

        def _drain(self) -> None:
            """Close the open period; every debtor pays half of what it still owes, every
            creditor claims (pro rata), then the rest, claim again: then every creditor has
            exactly its net and the escrow is empty; only stray tokens are left to sweep."""
            if any(self.nets):
                self.close_period()
            everyone = list(range(len(RATES)))
            for p, cp in self.closed.items():
                for share in (2, 1):
                    for m in everyone:
                        if cp.owes(m) // share:
                            self._deposit(p, m, cp.owes(m) // share)
                    self._claim(p, everyone[::-1])
                assert cp.escrow == 0 and cp.total_received == cp.total_owed
                assert cp.received == [max(n, 0) for n in cp.nets]
                assert cp.paid == [max(-n, 0) for n in cp.nets]
                self._claim(p, everyone)  # now ClearingNothingToClaim
                assert [clearing.outstanding(p, m.merchant_id) for m in self.ms] == [0] * len(
                    RATES)
            self.sweep()
            assert token.balance_of(clearing.address) == 0
            self.points_match()
            self.positions_match_and_sum_to_zero()
            self.settlements_match()

        # ------------------------------------------------------------ invariants

        # The invariants read every view they check in one JSON-RPC batch (read_views):
        # dozens of calls one by one cost more than the step itself.

        @invariant()
        def points_match(self) -> None:
            n = len(self.members)
            got = [int(v[0]) for v in read_views(gw, [
                *((m.program, "balanceOf", (x.address,)) for m in self.ms
                  for x in self.members),
                *((m.program, "totalSupply", ()) for m in self.ms)])]
            for i in range(len(self.ms)):
                balances = got[i * n:(i + 1) * n]
                assert balances == self.bal[i], (i, balances, self.bal[i])
                supply = got[len(self.ms) * n + i]
                assert supply == sum(balances) == sum(self.bal[i])

        @invariant()
        def positions_match_and_sum_to_zero(self) -> None:
            nets = {self.period: self.nets} | {p: cp.nets for p, cp in self.closed.items()}
            read = iter(read_views(gw, [(clearing, "positionOf", (p, m.merchant_id))
                                        for p in nets for m in self.ms]))
            for p, expected in nets.items():
                got = [int(next(read)[0][0]) for _ in self.ms]
                assert got == expected, (p, got, expected)
                assert sum(got) == 0, (p, got)

        @invariant()
        def settlements_match(self) -> None:
            escrow_total = 0
            ids = [m.merchant_id for m in self.ms]
            read = iter(read_views(gw, [
                *((clearing, fn, args) for p in self.closed
                  for fn, args in [("period", (p,)),
                                   *(("settlementOf", (p, i)) for i in ids),
                                   *(("claimable", (p, i)) for i in ids),
                                   *(("outstanding", (p, i)) for i in ids)]),
                (clearing, "escrowed", ()), (token, "balanceOf", (clearing.address,)),
                *((token, "balanceOf", (m.account.address,)) for m in self.ms),
                *((token, "balanceOf", (m.payout,)) for m in self.ms)]))
            for p, cp in self.closed.items():
                closed_at, merchants, owed, paid_, received_, escrow = next(read)[0]
                info = PeriodInfo(p, int(closed_at), int(merchants), int(owed), int(received_),
                                  int(escrow), int(paid_))
                assert (info.total_owed, info.total_paid, info.total_received, info.escrow) == (
                    cp.total_owed, cp.total_paid, cp.total_received, cp.escrow), (p, info, cp)
                got = [(int(q), int(r)) for q, r in (next(read)[0] for _ in ids)]
                claimable = [int(next(read)[0]) for _ in ids]
                outstanding = [int(next(read)[0]) for _ in ids]
                assert got == list(zip(cp.paid, cp.received, strict=True)), (p, got, cp)
                # What each creditor received is what escrow paid it out plus what it
                # confirmed off chain.
                assert [r for _, r in got] == [
                    o + c for o, c in zip(cp.paid_out, cp.confirmed, strict=True)], (p, got, cp)
                received = sum(r for _, r in got)
                paid = sum(q for q, _ in got)
                assert received == paid - info.escrow, (p, got, info)
                assert received == info.total_received <= info.total_owed
                for m, ((q, r), net) in enumerate(zip(got, cp.nets, strict=True)):
                    # Nobody receives more than its net, nor from escrow more than its share.
                    assert r <= max(net, 0) and q <= max(-net, 0), (p, got, cp.nets)
                    assert cp.paid_out[m] <= cp.share(m), (p, m, cp)
                    assert claimable[m] == min(cp.claimable(m), cp.escrow), (p, m, cp)
                for m in range(len(self.ms)):
                    expect = cp.nets[m] - cp.received[m] if cp.nets[m] >= 0 else (
                        cp.nets[m] + cp.paid[m])
                    assert outstanding[m] == expect
                escrow_total += info.escrow
            escrowed, held = int(next(read)[0]), int(next(read)[0])
            tokens = [int(next(read)[0]) for _ in self.ms]
            payouts = [int(next(read)[0]) for _ in self.ms]
            # Escrow is the token balance less what was sent by plain transfer (stray).
            assert escrowed == escrow_total
            assert held == escrow_total + self.stray
            assert tokens == self.tokens
            assert payouts == self.payouts

    run_state_machine_as_test(ClearingMachine, settings=settings(
        max_examples=12, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
