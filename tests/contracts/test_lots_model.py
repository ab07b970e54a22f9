"""Random sequences of issue / issue pending / reverse (pending, spendable or expired orders) /
redeem / sweep / time travel (through pending release and expiry) on two programs A and B of
the same config, and conversions between them (convert_out: A points into B, convert_in: B
points into A), checked after every step against a plain Python model of lots - spendable and
pending points per member and program - and against what an outside ERC-20 reader sees: each
balanceOf equals the sum of the member's Transfer logs, totalSupply equals the sum of
balances, and spendable + pending + expired = balanceOf (expired = 0 right after a sweep).

Conversions keep their expiry (issue 8): the debit takes the soonest-expiring spendable
points first; the converted points land in the target's newest live lot that expires no
later than the soonest-expiring points taken, or the conversion is refused with
PointsConversionOutlivesSource. B is admitted 0-9 days after A (drawn per example), so the
two programs' periods do not line up and both outcomes happen."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ledger.chain.sender import TransactionSender
from ledger.errors import ContractRevertError
from ledger.merchants.clients import ProgramConfig
from ledger.points.clients import Conversion, Redemption
from ledger.settings import ANVIL_ADMIN_KEY
from ledger.signing import convert_typed_data, redeem_typed_data

from .conftest import DAY, Chain, Merchant, read_views

EXPIRY = 2
CONFIG = ProgramConfig(period_length=10 * DAY, expiry_periods=EXPIRY, max_pending_days=14)
RATE = 10  # both programs: conversions are 1:1


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
             prefer: int | None = None) -> list[tuple[int, int]]:
        """Takes ``amount`` spendable points (lot ``prefer`` first, then soonest-expiring
        first); gives the (period, points) taken, in the order taken."""
        lots = self.lots[member]
        order = sorted(p for p in lots if p + EXPIRY >= cur)
        if prefer is not None and prefer in order:
            order.remove(prefer)
            order.insert(0, prefer)
        need = amount
        taken = []
        for p in order:
            t = min(lots[p] - self.pending_in(member, p, today), need)
            lots[p] -= t
            need -= t
            if t:
                taken.append((p, t))
        assert need == 0
        return taken


def expiry(origin: int, period: int) -> int:
    """When points of ``period`` expire (contracts/PointProgram.sol expiryOf)."""
    return origin + (period + EXPIRY + 1) * CONFIG.period_length


def landing(origin: int, cur: int, expires_at: int) -> int | None:
    """The newest live period of a program (origin, current period) whose points expire no
    later than ``expires_at``; None: the conversion must be refused."""
    fits = [p for p in range(max(cur - EXPIRY, 0), cur + 1) if expiry(origin, p) <= expires_at]
    return max(fits) if fits else None


PROG = st.integers(0, 1)
WHO = st.integers(0, 2)
actions = st.lists(st.one_of(
    st.tuples(st.just("issue"), PROG, WHO, st.integers(1, 500)),
    st.tuples(st.just("pending"), PROG, WHO, st.integers(1, 500), st.integers(1, 14)),
    st.tuples(st.just("reverse"), PROG, st.integers(0, 40), st.integers(1, 600)),
    st.tuples(st.just("redeem"), PROG, WHO, st.integers(1, 800)),
    # conversions: a share (percent, > 100: more than spendable) of the member's spendable points
    st.tuples(st.just("convert_out"), WHO, st.integers(1, 110)),
    st.tuples(st.just("convert_in"), WHO, st.integers(1, 110)),
    st.tuples(st.just("travel"), st.integers(1, 25)),
    st.tuples(st.just("sweep")),
), min_size=5, max_size=30)

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()


def _hex(v: object) -> str:
    return v if isinstance(v, str) else "0x" + bytes(cast(bytes, v)).hex()


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
    a = chain.admit(symbol="A", rate=RATE, config=CONFIG)
    members: list[LocalAccount] = [Account.create() for _ in range(3)]
    gw = chain.gateway

    @settings(max_examples=20, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.integers(0, 9), actions)
    # B's periods start 3 days after A's. B points from two lots (B0, B1) land in A's lot 0;
    # A points from A1 and A2 land back-dated in B's lot 0 (B's current period is 2); A0's
    # points (expiring 30 days after A's origin) fit no live B lot: refused.
    @example(3, [("issue", 1, 0, 100), ("travel", 10), ("issue", 1, 0, 50),
                 ("issue", 0, 1, 100), ("convert_in", 0, 100), ("travel", 10),
                 ("issue", 0, 1, 50), ("convert_out", 1, 100), ("convert_out", 0, 100),
                 ("travel", 10), ("sweep",)])
    # B's current period 2, A's 3: B0's points expire before A's oldest live lot (A1) does,
    # with or without B2's points taken along - refused; once B0 expired, B2's land in A2.
    @example(3, [("issue", 1, 2, 80), ("travel", 27), ("convert_in", 2, 100),
                 ("issue", 1, 2, 40), ("convert_in", 2, 100), ("travel", 4),
                 ("convert_in", 2, 100)])
    def run(b_offset_days: int, steps: list[tuple[object, ...]]) -> None:
        snap = gw.rpc("evm_snapshot")
        chain.admin = TransactionSender(gw, ANVIL_ADMIN_KEY)  # nonces follow the reverted chain
        try:
            if b_offset_days:
                chain.travel(b_offset_days * DAY)
            b = chain.admit(symbol="B", rate=RATE, config=CONFIG)
            progs: list[Merchant] = [a, b]
            senders = [TransactionSender(gw, x.account.key) for x in progs]
            origins = [x.program.origin() for x in progs]
            models = [Model(), Model()]
            serial = 0
            for step in steps:
                curs = [x.program.view1("currentPeriod") for x in progs]
                todays = [x.program.view1("currentDay") for x in progs]
                kind = step[0]
                serial += 1
                if kind in ("issue", "pending"):
                    i, who, amount = (int(v) for v in step[1:4])  # type: ignore[call-overload]
                    m, model, cur = progs[i], models[i], curs[i]
                    ref = f"o{serial}"
                    if kind == "issue":
                        data = m.program.encode("issue", members[who].address, amount,
                                                keccak(text=ref))
                        release_day = 0
                    else:
                        days = int(step[4])  # type: ignore[call-overload]
                        release_at = chain.now() + days * DAY
                        release_day = -(-(release_at - origins[i]) // DAY)
                        data = m.program.encode("issuePending", members[who].address, amount,
                                                keccak(text=ref), release_at)
                    senders[i].transact(to=m.program.address, data=data, gas=1_000_000)
                    model.orders[ref] = Order(who, amount, cur, release_day)
                    model.lots[who][cur] = model.lots[who].get(cur, 0) + amount
                elif kind == "reverse":
                    i = int(step[1])  # type: ignore[call-overload]
                    m, model, cur, today = progs[i], models[i], curs[i], todays[i]
                    refs = sorted(model.orders)
                    if not refs:
                        continue
                    ref = refs[int(step[2]) % len(refs)]  # type: ignore[call-overload]
                    o = model.orders[ref]
                    amount = int(step[3])  # type: ignore[call-overload]
                    expired = o.period + EXPIRY < cur  # nothing to take, nothing else taken
                    pending = not expired and o.release_day > today
                    spendable = model.spendable(o.member, cur, today)
                    ok = amount <= o.remaining and (expired or pending or amount <= spendable)
                    try:
                        senders[i].transact(to=m.program.address, data=m.program.encode(
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
                    i, who, amount = (int(v) for v in step[1:4])  # type: ignore[call-overload]
                    m, model = progs[i], models[i]
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
                    ok = amount <= model.spendable(who, curs[i], todays[i])
                    try:
                        senders[i].transact(to=m.program.address, data=m.program.encode(
                            "redeem", r.as_tuple(), sig), gas=2_000_000)
                        assert ok, "redeem beyond the balance went through"
                    except ContractRevertError as exc:
                        assert not ok and exc.name == "PointsInsufficientBalance", exc
                        continue
                    model.take(who, amount, curs[i], todays[i])
                elif kind in ("convert_out", "convert_in"):
                    s, t = (0, 1) if kind == "convert_out" else (1, 0)
                    who, share = int(step[1]), int(step[2])  # type: ignore[call-overload]
                    # A member with spendable points in the source, if there is one.
                    rich = [i for i in range(3) if models[s].spendable(i, curs[s], todays[s])]
                    who = rich[who % len(rich)] if rich else who
                    member = members[who]
                    frm, to = progs[s], progs[t]
                    have = models[s].spendable(who, curs[s], todays[s])
                    amount = max(1, -(-have * share // 100))
                    c = Conversion(member.address, amount, to.merchant_id, 1,
                                   keccak(text=f"conv{serial}"),
                                   frm.program.nonce_of(member.address), chain.now() + 600)
                    typed = convert_typed_data(
                        chain_id=gw.chain_id, program=frm.program.address,
                        registry=chain.registry.address, member=c.member, amount=c.amount,
                        to_merchant_id=c.to_merchant_id, min_out=c.min_out,
                        order_ref=c.order_ref, nonce=c.nonce, deadline=c.deadline)
                    sig = bytes(Account.sign_typed_data(member.key,
                                                        full_message=typed).signature)
                    src = copy.deepcopy(models[s])
                    into: int | None = None
                    expires_at = 0
                    if amount <= src.spendable(who, curs[s], todays[s]):
                        taken = src.take(who, amount, curs[s], todays[s])
                        expires_at = min(expiry(origins[s], p) for p, _ in taken)
                        into = landing(origins[t], curs[t], expires_at)
                        want = "PointsConversionOutlivesSource" if into is None else None
                    else:
                        want = "PointsInsufficientBalance"
                    try:  # relayed by the target merchant
                        receipt = senders[t].transact(to=frm.program.address, data=(
                            frm.program.encode("convert", c.as_tuple(), sig)), gas=3_000_000)
                        assert want is None, f"{kind} {amount}: expected {want}, went through"
                    except ContractRevertError as exc:
                        assert exc.name == want, (kind, amount, into, exc)
                        if want == "PointsConversionOutlivesSource":
                            assert exc.args_ == (expires_at,), exc
                        continue
                    assert into is not None
                    (arrived,) = [x for n, x, _ in to.program.decode_logs(receipt["logs"])
                                  if n == "PointsConvertedIn"]
                    assert (arrived["period"], arrived["amount"]) == (into, amount), arrived
                    # The promise itself: no later than any of the points paid with.
                    assert to.program.expiry_of(into) <= min(
                        frm.program.expiry_of(p) for p, _ in taken)
                    models[s] = src
                    models[t].lots[who][into] = models[t].lots[who].get(into, 0) + amount
                elif kind == "sweep":
                    for i, m in enumerate(progs):
                        senders[i].transact(to=m.program.address, data=m.program.encode(
                            "sweepExpired", [x.address for x in members]), gas=2_000_000)
                else:
                    chain.travel(int(step[1]) * DAY)  # type: ignore[call-overload]
                for i, m in enumerate(progs):
                    check(chain, m, models[i], members, kind, step)
        finally:
            gw.rpc("evm_revert", [snap])

    run()


def check(chain: Chain, m: Merchant, model: Model, members: list[LocalAccount], kind: object,
          step: tuple[object, ...]) -> None:
    """One program against its model and its Transfer logs."""
    # Every view read in one JSON-RPC batch (read_views), decoded as the client decodes it.
    prog = m.program
    read = iter(read_views(chain.gateway, [
        (prog, "currentPeriod", ()), (prog, "currentDay", ()),
        *((prog, fn, (x.address,)) for fn in ("spendableOf", "pendingOf", "lotsOf",
                                              "expiredOf", "balanceOf") for x in members),
        (prog, "totalSupply", ())]))
    cur, today = int(next(read)[0]), int(next(read)[0])
    spendable, pending = ([int(next(read)[0]) for _ in members] for _ in range(2))
    lots_raw = [next(read) for _ in members]
    expired, balances = ([int(next(read)[0]) for _ in members] for _ in range(2))
    supply = int(next(read)[0])
    at = (m.program.address, step)
    assert spendable == [model.spendable(i, cur, today) for i in range(3)], at
    assert pending == [model.pending(i, today) for i in range(3)], at
    lots = [[(int(p), int(v)) for p, v in zip(periods, amounts, strict=True) if v]
            for periods, amounts in lots_raw]
    assert lots == [sorted((p, v) for p, v in model.live(i, cur).items() if v)
                    for i in range(3)], at
    logs = log_balances(chain, m.program.address)
    assert balances == [logs.get(x.address, 0) for x in members], at
    assert supply == sum(balances) == sum(logs.values()), at
    assert [s + p + e for s, p, e in zip(spendable, pending, expired, strict=True)] == balances, at
    if kind == "sweep":
        assert expired == [0, 0, 0], at
