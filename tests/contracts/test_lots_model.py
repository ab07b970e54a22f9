"""Random sequences of issue / issue pending / reverse (pending, spendable or expired orders) /
redeem / sweep / time travel (through pending release and expiry), checked after every step
against a plain Python model of lots - spendable and pending points per member - and against
what an outside ERC-20 reader sees: each balanceOf equals the sum of the member's Transfer
logs, totalSupply equals the sum of balances, and spendable + pending + expired = balanceOf
(expired = 0 right after a sweep)."""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain.sender import TransactionSender
from ledger.contracts.clients import ProgramConfig, Redemption
from ledger.errors import ContractRevertError
from ledger.signing import redeem_typed_data

from .conftest import DAY, Chain

EXPIRY = 2
CONFIG = ProgramConfig(period_length=10 * DAY, expiry_periods=EXPIRY, max_pending_days=14)


@dataclass
class Order:
    member: int
    remaining: int
    period: int
    release_day: int  # 0: spendable at once


@dataclass
class Model:
    lots: list[dict[int, int]] = field(default_factory=lambda: [{}, {}, {}])
    orders: dict[str, Order] = field(default_factory=dict)

    def pending_in(self, member: int, period: int, today: int) -> int:
        return sum(o.remaining for o in self.orders.values()
                   if o.member == member and o.period == period and o.release_day > today)

    def pending(self, member: int, today: int) -> int:
        return sum(o.remaining for o in self.orders.values()
                   if o.member == member and o.release_day > today)

    def live(self, member: int, cur: int) -> dict[int, int]:
        return {p: a for p, a in self.lots[member].items() if p + EXPIRY >= cur}

    def spendable(self, member: int, cur: int, today: int) -> int:
        return sum(self.live(member, cur).values()) - self.pending(member, today)

    def take(self, member: int, amount: int, cur: int, today: int,
             prefer: int | None = None) -> None:
        lots = self.lots[member]
        order = sorted(p for p in lots if p + EXPIRY >= cur)
        if prefer is not None and prefer in order:
            order.remove(prefer)
            order.insert(0, prefer)
        need = amount
        for p in order:
            t = min(lots[p] - self.pending_in(member, p, today), need)
            lots[p] -= t
            need -= t
        assert need == 0


actions = st.lists(st.one_of(
    st.tuples(st.just("issue"), st.integers(0, 2), st.integers(1, 500)),
    st.tuples(st.just("pending"), st.integers(0, 2), st.integers(1, 500), st.integers(1, 14)),
    st.tuples(st.just("reverse"), st.integers(0, 40), st.integers(1, 600)),
    st.tuples(st.just("redeem"), st.integers(0, 2), st.integers(1, 800)),
    st.tuples(st.just("travel"), st.integers(1, 25)),
    st.tuples(st.just("sweep")),
), min_size=5, max_size=30)

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


def _hex(v: object) -> str:
    return v if isinstance(v, str) else "0x" + bytes(v).hex()  # type: ignore[arg-type]


def log_balances(chain: Chain, program: str) -> dict[str, int]:
    """Balances as an outside ERC-20 reader rebuilds them: Transfer logs alone."""
    logs = chain.gateway.rpc("eth_getLogs", [{"address": program, "fromBlock": "0x0",
                                              "toBlock": "latest", "topics": [TRANSFER_TOPIC]}])
    out: dict[str, int] = {}
    for log in logs:
        topics = [_hex(t) for t in log["topics"]]
        value = int(_hex(log["data"]), 16)
        for who, sign in ((topics[1], -1), (topics[2], 1)):
            addr = to_checksum_address("0x" + who[-40:])
            out[addr] = out.get(addr, 0) + sign * value
    out.pop(to_checksum_address("0x" + "00" * 20), None)
    return out


def test_contract_lots_match_the_model(chain: Chain) -> None:
    m = chain.admit(config=CONFIG)
    members: list[LocalAccount] = [Account.create() for _ in range(3)]
    gw = chain.gateway

    @settings(max_examples=20, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(actions)
    def run(steps: list[tuple[object, ...]]) -> None:
        snap = gw.rpc("evm_snapshot")
        sender = TransactionSender(gw, m.account.key)  # nonces follow the reverted chain
        model = Model()
        serial = 0
        try:
            for step in steps:
                cur = m.program.view1("currentPeriod")
                today = m.program.view1("currentDay")
                kind = step[0]
                serial += 1
                if kind in ("issue", "pending"):
                    who, amount = int(step[1]), int(step[2])  # type: ignore[call-overload]
                    ref = f"o{serial}"
                    if kind == "issue":
                        data = m.program.encode("issue", members[who].address, amount,
                                                keccak(text=ref))
                        release_day = 0
                    else:
                        days = int(step[3])  # type: ignore[call-overload]
                        release_at = chain.now() + days * DAY
                        origin = m.program.origin()
                        release_day = -(-(release_at - origin) // DAY)
                        data = m.program.encode("issuePending", members[who].address, amount,
                                                keccak(text=ref), release_at)
                    sender.transact(to=m.program.address, data=data, gas=1_000_000)
                    model.orders[ref] = Order(who, amount, cur, release_day)
                    model.lots[who][cur] = model.lots[who].get(cur, 0) + amount
                elif kind == "reverse":
                    refs = sorted(model.orders)
                    if not refs:
                        continue
                    ref = refs[int(step[1]) % len(refs)]  # type: ignore[call-overload]
                    o = model.orders[ref]
                    amount = int(step[2])  # type: ignore[call-overload]
                    expired = o.period + EXPIRY < cur  # nothing to take, nothing else taken
                    pending = not expired and o.release_day > today
                    spendable = model.spendable(o.member, cur, today)
                    ok = amount <= o.remaining and (expired or pending or amount <= spendable)
                    try:
                        sender.transact(to=m.program.address, data=m.program.encode(
                            "reverse", keccak(text=ref), amount), gas=1_000_000)
                        assert ok, f"reverse {amount} of {o} should have failed"
                    except ContractRevertError as exc:
                        assert not ok, f"reverse {amount} of {o} failed: {exc}"
                        continue
                    o.remaining -= amount
                    if expired:
                        pass
                    elif pending:
                        model.lots[o.member][o.period] -= amount
                    else:
                        model.take(o.member, amount, cur, today, prefer=o.period)
                elif kind == "redeem":
                    who, amount = int(step[1]), int(step[2])  # type: ignore[call-overload]
                    member = members[who]
                    r = Redemption(member.address, amount, m.merchant_id,
                                   keccak(text=f"sale{serial}"),
                                   m.program.nonce_of(member.address), chain.now() + 6 * DAY)
                    typed = redeem_typed_data(
                        chain_id=gw.chain_id, program=m.program.address,
                        registry=chain.registry.address, member=r.member,
                        amount=r.amount, merchant_id=r.merchant_id, order_ref=r.order_ref,
                        nonce=r.nonce, deadline=r.deadline)
                    sig = bytes(Account.sign_typed_data(member.key,
                                                        full_message=typed).signature)
                    ok = amount <= model.spendable(who, cur, today)
                    try:
                        sender.transact(to=m.program.address, data=m.program.encode(
                            "redeem", r.as_tuple(), sig), gas=2_000_000)
                        assert ok, "redeem beyond the balance went through"
                    except ContractRevertError as exc:
                        assert not ok and exc.name == "PointsInsufficientBalance", exc
                        continue
                    model.take(who, amount, cur, today)
                elif kind == "sweep":
                    sender.transact(to=m.program.address, data=m.program.encode(
                        "sweepExpired", [x.address for x in members]), gas=2_000_000)
                else:
                    chain.travel(int(step[1]) * DAY)  # type: ignore[call-overload]
                cur = m.program.view1("currentPeriod")
                today = m.program.view1("currentDay")
                spendable = [m.program.spendable_of(x.address) for x in members]
                assert spendable == [model.spendable(i, cur, today) for i in range(3)], step
                pending = [m.program.pending_of(x.address) for x in members]
                assert pending == [model.pending(i, today) for i in range(3)], step
                expired = [m.program.expired_of(x.address) for x in members]
                balances = [m.program.balance_of(x.address) for x in members]
                logs = log_balances(chain, m.program.address)
                assert balances == [logs.get(x.address, 0) for x in members], step
                assert m.program.total_supply() == sum(balances) == sum(logs.values())
                assert [s + p + e for s, p, e in zip(spendable, pending, expired,
                                                     strict=True)] == balances, step
                if kind == "sweep":
                    assert expired == [0, 0, 0], step
        finally:
            gw.rpc("evm_revert", [snap])

    run()
