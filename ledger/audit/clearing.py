"""The audit of the clearing and the settlement token: positions, closed periods, deposits,
payouts, off-chain payments, anchored statements and token balances rebuilt from logs.

Invariants: every period's positions sum to zero; each closed period's recorded nets are the
rebuilt positions and its total owed their negative part; every cross-merchant redemption,
conversion and refund of a program is cleared in its transaction at the registry's rate of
the time; a redemption or refund is worth points x rate, and no conversion is worth more than
the points it burnt; no settlement exceeds the period's nets (paid <= owed, received <= due,
received <= paid overall); escrow is deposits less payouts; settlement tokens are minted only
by the minter role, never by a holder granted it after the deployment; operator acts come
from operator-role holders.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak

from ..errors import ChainError
from .governance import OPERATOR_ROLE, GovernanceRule
from .model import Checks, Finding, Severity
from .source import ZERO_ADDRESS, Event, Kind

NAME = "clearing"
# The Clearing's act kinds. Coupon acts (a coupon used at another merchant, and its rollback)
# move value between positions and are summed with the rest here; the coupon rule
# (``ledger/audit/coupons.py``) matches each with its coupon book event. As in the contract, a
# coupon adds to the acceptor's foreign value accepted (no cap is enforced on it) and a
# rollback takes nothing off.
KINDS = {1: "redemption", 2: "conversion", 3: "refund", 4: "coupon", 5: "coupon_rollback"}
# The Clearing's constructor opens period 1.
FIRST_PERIOD = 1
MINTER_ROLE = "0x" + keccak(text="MINTER_ROLE").hex()


@dataclass
class PeriodBook:
    nets: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    accepted: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    closed_block: int | None = None
    recorded: dict[int, int] = field(default_factory=dict)
    total_owed: int = 0
    merchants: int = 0
    paid: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    received: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    escrow: int = 0
    anchored: dict[int, str] = field(default_factory=dict)


@dataclass
class _TxActs:
    """One transaction's program acts across merchants and its Cleared events, to match."""

    program_points: dict[tuple[str, int, int], int] = field(default_factory=lambda:
                                                            defaultdict(int))
    cleared_points: dict[tuple[str, int, int], int] = field(default_factory=lambda:
                                                            defaultdict(int))
    position: tuple[int, int] = (0, 0)


class ClearingRule:
    """The Clearing and the settlement token."""

    name = NAME
    events = frozenset(
        {(Kind.CLEARING, e) for e in ("Cleared", "PeriodClosed", "NetRecorded", "Deposited",
                                      "PaidOut", "StraySwept", "OffChainPaymentConfirmed",
                                      "StatementAnchored")}
        | {(Kind.PROGRAM, e) for e in ("PointsRedeemed", "RedemptionRefunded",
                                       "PointsConverted", "PointsConvertedIn")}
        | {(Kind.TOKEN, "Transfer")})

    def __init__(self, governance: GovernanceRule, merchant_of: dict[str, int],
                 registry: str) -> None:
        self.governance = governance
        self.merchant_of = merchant_of
        self.registry = registry
        self.periods: dict[int, PeriodBook] = defaultdict(PeriodBook)
        self.current = FIRST_PERIOD
        self.findings: list[Finding] = []
        self.txs: dict[str, _TxActs] = {}
        self.operator_txs: dict[str, tuple[tuple[int, int], str]] = {}
        self.mints: list[tuple[str, tuple[int, int], int, str]] = []
        self.token_balances: dict[str, int] = defaultdict(int)
        self.token_supply = 0
        self.stray_swept = 0

    def apply(self, ev: Event) -> None:
        a = ev.args
        if ev.kind == Kind.PROGRAM:
            self._program_act(ev)
            return
        if ev.kind == Kind.TOKEN:
            value = a["value"]
            if a["from"] == ZERO_ADDRESS:
                self.token_supply += value
                self.mints.append((ev.tx, ev.position, value, a["to"]))
            else:
                self.token_balances[a["from"]] -= value
            if a["to"] == ZERO_ADDRESS:
                self.token_supply -= value
            else:
                self.token_balances[a["to"]] += value
            return
        name = ev.name
        if name == "Cleared":
            self._cleared(ev)
        elif name == "NetRecorded":
            self.periods[a["period"]].recorded[a["merchantId"]] = a["net"]
        elif name == "PeriodClosed":
            p = a["period"]
            book = self.periods[p]
            self.operator_txs[ev.tx] = (ev.position, "closePeriod")
            if p != self.current:
                self._violation("PeriodClosedOutOfOrder",
                                f"period {p} closed while {self.current} was open", ev)
            book.closed_block = ev.block
            book.total_owed = a["totalOwed"]
            book.merchants = a["merchants"]
            self.current = p + 1
            if sum(book.nets.values()) != 0:
                self._violation("PositionsDoNotSumToZero",
                                f"period {p} positions sum to {sum(book.nets.values())}", ev)
            nonzero = {m: n for m, n in book.nets.items() if n}
            if nonzero != book.recorded:
                self._violation("RecordedNetsMismatch",
                                f"period {p}: recorded nets {book.recorded} != rebuilt "
                                f"positions {nonzero}", ev)
            owed = sum(-n for n in book.nets.values() if n < 0)
            if owed != a["totalOwed"]:
                self._violation("TotalOwedMismatch",
                                f"period {p}: total owed {a['totalOwed']} != rebuilt {owed}", ev)
        elif name == "Deposited":
            book = self._closed(ev)
            m, amount = a["merchantId"], a["amount"]
            book.paid[m] += amount
            book.escrow += amount
            if book.paid[m] > max(0, -book.nets.get(m, 0)):
                self._violation("SettlementExceedsNet",
                                f"merchant {m} paid {book.paid[m]} for period {a['period']} "
                                f"owing {max(0, -book.nets.get(m, 0))}", ev)
        elif name == "PaidOut":
            book = self._closed(ev)
            m, amount = a["merchantId"], a["amount"]
            book.received[m] += amount
            book.escrow -= amount
            self._check_received(ev, book, m)
            payout = self.governance.payout_of(m, ev.position)
            if payout is not None and a["payout"] != payout.lower():
                self._violation("PaidOutElsewhere",
                                f"merchant {m} paid {amount} at {a['payout']}, its payout "
                                f"address was {payout}", ev)
            if book.escrow < 0:
                self._violation("EscrowOverdrawn", f"period {a['period']} escrow went to "
                                f"{book.escrow}", ev)
        elif name == "OffChainPaymentConfirmed":
            book = self._closed(ev)
            d, c, amount = a["debtor"], a["creditor"], a["amount"]
            book.paid[d] += amount
            book.received[c] += amount
            self._check_received(ev, book, c)
            if book.paid[d] > max(0, -book.nets.get(d, 0)):
                self._violation("SettlementExceedsNet",
                                f"merchant {d} paid {book.paid[d]} for period {a['period']} "
                                f"owing {max(0, -book.nets.get(d, 0))}", ev)
            self.operator_txs.setdefault(ev.tx, (ev.position, f"creditor:{c}"))
        elif name == "StatementAnchored":
            self.periods[a["period"]].anchored[a["merchantId"]] = a["statementHash"]
            self.operator_txs[ev.tx] = (ev.position, "anchorStatement")
        elif name == "StraySwept":
            self.stray_swept += a["amount"]
            self.operator_txs[ev.tx] = (ev.position, "sweep")

    def _closed(self, ev: Event) -> PeriodBook:
        book = self.periods[ev.args["period"]]
        if book.closed_block is None:
            self._violation("SettlementOfOpenPeriod",
                            f"{ev.name} for period {ev.args['period']}, not closed", ev)
        return book

    def _check_received(self, ev: Event, book: PeriodBook, m: int) -> None:
        due = max(0, book.nets.get(m, 0))
        if book.received[m] > due:
            self._violation("SettlementExceedsNet",
                            f"merchant {m} received {book.received[m]} for period "
                            f"{ev.args['period']}, owed {due}", ev)

    def _program_act(self, ev: Event) -> None:
        a = ev.args
        program_merchant = self.merchant_of.get(ev.address, 0)
        acts = self.txs.setdefault(ev.tx, _TxActs(position=ev.position))
        if ev.name == "PointsRedeemed":
            if a["merchantId"] != program_merchant:
                acts.program_points[("redemption", program_merchant, a["merchantId"])] += \
                    a["amount"]
        elif ev.name == "RedemptionRefunded":
            if a["merchantId"] != program_merchant:
                acts.program_points[("refund", a["merchantId"], program_merchant)] += a["amount"]
        elif ev.name == "PointsConverted":
            acts.program_points[("conversion", program_merchant, a["toMerchantId"])] += \
                a["spent"]
            acts.program_points[("conversion-out", program_merchant, a["toMerchantId"])] += \
                a["out"]
        elif ev.name == "PointsConvertedIn":
            acts.program_points[("conversion-in", a["fromMerchantId"], program_merchant)] += \
                a["amount"]

    def _cleared(self, ev: Event) -> None:
        a = ev.args
        p, debtor, creditor = a["period"], a["debtor"], a["creditor"]
        kind = KINDS.get(a["kind"], "none")
        points, rate, value = a["points"], a["rate"], a["value"]
        book = self.periods[p]
        if p != self.current:
            self._violation("ClearedOutsideOpenPeriod",
                            f"act cleared into period {p} while {self.current} is open", ev)
        book.nets[debtor] -= value
        book.nets[creditor] += value
        book.by_kind[kind] += value
        if kind == "refund":
            book.accepted[debtor] = max(0, book.accepted[debtor] - value)
        elif kind in ("redemption", "conversion", "coupon"):
            book.accepted[creditor] += value
        acts = self.txs.setdefault(ev.tx, _TxActs(position=ev.position))
        acts.cleared_points[(kind, debtor, creditor)] += points
        pos = ev.position
        program_merchant = creditor if kind == "refund" else debtor
        if kind in ("redemption", "refund") and value != points * rate:
            self._violation("ClearedValueNotPointsTimesRate",
                            f"{kind} of {points} points at {rate} cleared as {value}", ev)
        if kind == "conversion":
            target_rate = self.governance.rate_of(creditor, pos)
            acts.cleared_points[("conversion-value", debtor, creditor)] += value
            if value > points * rate:
                self._violation("ConversionCreatedValue",
                                f"conversion of {points} points at {rate} ({points * rate}) "
                                f"cleared as {value}", ev)
            if target_rate and value % target_rate:
                self._violation("ConversionValueNotWholePoints",
                                f"conversion value {value} is not whole points at the target "
                                f"rate {target_rate}", ev)
        if kind in ("redemption", "conversion"):
            want = self.governance.rate_of(program_merchant, pos)
            if want != rate:
                self._violation("ClearedAtWrongRate",
                                f"{kind} of merchant {program_merchant}'s points cleared at "
                                f"{rate}, the registry's rate was {want}", ev)

    def _violation(self, code: str, message: str, ev: Event) -> None:
        self.findings.append(Finding(NAME, code, Severity.VIOLATION, message,
                                     contract=ev.address, block=ev.block, tx=ev.tx))

    # ------------------------------------------------------------------ check

    def check(self, checks: Checks) -> list[Finding]:
        out = list(self.findings)
        out += self._match_acts(checks)
        out += self._check_senders(checks)
        out += self._check_views(checks)
        for p, book in self.periods.items():
            if sum(book.nets.values()) != 0:
                out.append(Finding(NAME, "PositionsDoNotSumToZero", Severity.VIOLATION,
                                   f"period {p} positions sum to {sum(book.nets.values())}"))
            if sum(book.received.values()) > sum(book.paid.values()):
                out.append(Finding(NAME, "ReceivedMoreThanPaid", Severity.VIOLATION,
                                   f"period {p}: creditors received "
                                   f"{sum(book.received.values())}, debtors paid "
                                   f"{sum(book.paid.values())}"))
        return out

    def _match_acts(self, checks: Checks) -> list[Finding]:
        out = []
        clearing = checks.addresses.clearing
        for tx, acts in self.txs.items():
            keys = {k for k in acts.program_points if k[0] in ("redemption", "refund",
                                                                "conversion")}
            keys |= {k for k in acts.cleared_points if k[0] in ("redemption", "refund",
                                                                "conversion")}
            for key in sorted(keys):
                have, cleared = acts.program_points.get(key, 0), acts.cleared_points.get(key, 0)
                if have != cleared:
                    out.append(Finding(NAME, "ActNotCleared", Severity.VIOLATION,
                                       f"{key[0]} of merchant {key[1]} -> {key[2]}: "
                                       f"{have} points in the program, {cleared} cleared",
                                       contract=clearing, block=acts.position[0], tx=tx))
            for key, out_points in acts.program_points.items():
                if key[0] != "conversion-out":
                    continue
                credited = acts.program_points.get(("conversion-in", key[1], key[2]), 0)
                value = acts.cleared_points.get(("conversion-value", key[1], key[2]), 0)
                rate = self.governance.rate_of(key[2], acts.position)
                if credited != out_points or value != out_points * rate:
                    out.append(Finding(NAME, "ConversionMismatch", Severity.VIOLATION,
                                       f"conversion {key[1]} -> {key[2]}: {out_points} out, "
                                       f"{credited} credited, {value} cleared at rate {rate}",
                                       contract=clearing, block=acts.position[0], tx=tx))
        return out

    def _check_senders(self, checks: Checks) -> list[Finding]:
        out = []
        token = checks.addresses.settlement_token
        txs = sorted({*self.operator_txs, *(m[0] for m in self.mints)})
        senders = checks.senders(txs)
        reg = self.registry
        for tx, (pos, what) in sorted(self.operator_txs.items()):
            sender = senders.get(tx, "")
            if what.startswith("creditor:"):
                account = self.governance.account_of(int(what.split(":")[1]), pos)
                if account is not None and sender == account.lower():
                    continue
            if not self.governance.holds(reg, OPERATOR_ROLE, sender, pos):
                out.append(Finding(NAME, "OperatorActWithoutRole", Severity.VIOLATION,
                                   f"{what} sent by {sender}, which lacks OPERATOR_ROLE",
                                   contract=checks.addresses.clearing, block=pos[0], tx=tx))
            elif self.governance.granted_after_wiring(reg, OPERATOR_ROLE, sender, pos):
                out.append(Finding(NAME, "OperatorActByNewHolder", Severity.VIOLATION,
                                   f"{what} sent by {sender}, granted OPERATOR_ROLE after the "
                                   "deployment", contract=checks.addresses.clearing,
                                   block=pos[0], tx=tx))
        for tx, pos, value, to in self.mints:
            sender = senders.get(tx, "")
            if not self.governance.holds(token, MINTER_ROLE, sender, pos):
                out.append(Finding(NAME, "MintWithoutRole", Severity.VIOLATION,
                                   f"{value} settlement units minted to {to} by {sender}, "
                                   "which lacks MINTER_ROLE", contract=token, block=pos[0],
                                   tx=tx))
            elif self.governance.granted_after_wiring(token, MINTER_ROLE, sender, pos):
                out.append(Finding(NAME, "MintByNewMinter", Severity.VIOLATION,
                                   f"{value} settlement units minted to {to} by {sender}, "
                                   "granted MINTER_ROLE after the deployment", contract=token,
                                   block=pos[0], tx=tx, details={"minter": sender}))
        return out

    def _check_views(self, checks: Checks) -> list[Finding]:
        out: list[Finding] = []
        clearing = checks.addresses.clearing
        token = checks.addresses.settlement_token
        merchants = sorted(self.governance.merchants)
        calls: list[tuple[str, str, str, tuple[Any, ...]]] = []
        want: list[tuple[str, Any]] = []
        for p in range(FIRST_PERIOD, self.current + 1):
            book = self.periods.get(p, PeriodBook())
            for m in merchants:
                calls.append((Kind.CLEARING, clearing, "positionOf", (p, m)))
                want.append((f"positionOf({p}, {m})",
                             ((book.nets.get(m, 0), book.accepted.get(m, 0)),)))
                if book.closed_block is not None:
                    calls.append((Kind.CLEARING, clearing, "settlementOf", (p, m)))
                    want.append((f"settlementOf({p}, {m})",
                                 ((book.paid.get(m, 0), book.received.get(m, 0)),)))
            if book.closed_block is not None:
                calls.append((Kind.CLEARING, clearing, "period", (p,)))
                want.append((f"period({p}) merchants, owed, paid, received, escrow",
                             (book.merchants, book.total_owed, sum(book.paid.values()),
                              sum(book.received.values()), book.escrow)))
            for m, h in book.anchored.items():
                calls.append((Kind.CLEARING, clearing, "statementHash", (p, m)))
                want.append((f"statementHash({p}, {m})", (h,)))
        calls.append((Kind.CLEARING, clearing, "currentPeriod", ()))
        want.append(("currentPeriod()", (self.current,)))
        calls.append((Kind.CLEARING, clearing, "escrowed", ()))
        want.append(("escrowed()", (sum(b.escrow for b in self.periods.values()),)))
        calls.append((Kind.TOKEN, token, "totalSupply", ()))
        want.append(("settlement token totalSupply()", (self.token_supply,)))
        for holder, bal in sorted(self.token_balances.items()):
            calls.append((Kind.TOKEN, token, "balanceOf", (holder,)))
            want.append((f"settlement token balanceOf({holder})", (bal,)))
        for (what, expect), got in zip(want, checks.views(calls), strict=True):
            value: Any = got
            if what.startswith("period(") and isinstance(got, tuple):
                closed_at, n, owed, paid, received, escrow = got[0]
                value = (n, owed, paid, received, escrow)
            if isinstance(got, ChainError) or tuple(value) != tuple(expect):
                out.append(Finding(NAME, "ViewMismatch", Severity.VIOLATION,
                                   f"{what}: the logs give {expect}, the contract says {value}",
                                   contract=clearing, details={"view": what}))
        return out

    def section(self) -> dict[str, Any]:
        periods = []
        for p in range(FIRST_PERIOD, self.current + 1):
            book = self.periods.get(p, PeriodBook())
            periods.append({
                "period": p, "closed": book.closed_block is not None,
                "closed_block": book.closed_block, "total_owed": book.total_owed,
                "paid": sum(book.paid.values()), "received": sum(book.received.values()),
                "escrow": book.escrow, "by_kind": dict(book.by_kind),
                "positions": dict(sorted(book.nets.items())),
                "settlement": {m: {"paid": book.paid.get(m, 0),
                                   "received": book.received.get(m, 0)}
                               for m in sorted({*book.paid, *book.received})},
                "anchored": dict(book.anchored)})
        return {"current_period": self.current, "periods": periods,
                "settlement_token": {"supply": self.token_supply, "mints": len(self.mints),
                                     "stray_swept": self.stray_swept}}
