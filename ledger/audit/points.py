"""The audit of the point programs: balances, supply, orders, pending points, redemptions and
refunds rebuilt from each program's logs, compared with the program's own views.

Invariants: supply equals the sum of balances; each order reference mints once; a reversal
never takes more than its order issued; a refund never gives back more than its redemption
took; every issue and reversal was sent by the account signing for the program's merchant
at that block; each member's balance is spendable + pending + expired-not-swept; an account
moves (``PointsMoved``: a custodial account's points to the member's wallet) at most once, sent
by the program's merchant, and its orders' pending points count at the wallet from then on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..errors import ChainError
from .governance import OPERATOR_ROLE, GovernanceRule
from .model import Checks, Finding, Severity
from .source import ZERO_ADDRESS, Event, Kind

NAME = "points"
DAY = 86_400


@dataclass
class Order:
    member: str
    issued: int
    remaining: int
    earn_period: int
    release_day: int
    block: int


@dataclass
class Redeemed:
    member: str
    amount: int
    remaining: int
    block: int
    conversion: bool = False


class ProgramBook:
    """One program's state as its logs build it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.balances: dict[str, int] = defaultdict(int)
        self.supply = 0
        self.orders: dict[str, Order] = {}
        self.redemptions: dict[tuple[int, str], Redeemed] = {}
        self.totals: dict[str, int] = defaultdict(int)
        # Writes a merchant's account must have sent: tx -> (block, log index) of one event,
        # the merchant, whether the operator may send it instead (a suspended acceptor's
        # refund).
        self.merchant_txs: dict[str, tuple[tuple[int, int], int, bool]] = {}
        self.issued_by_block: dict[int, int] = defaultdict(int)
        self.redeemed_by_block: dict[int, int] = defaultdict(int)
        # Accounts whose points moved (``moveAccount``): from -> to.
        self.moved: dict[str, str] = {}


class PointsRule:
    """Every admitted merchant's point program."""

    name = NAME
    events = frozenset((Kind.PROGRAM, e) for e in (
        "Transfer", "PointsIssued", "PointsReversed", "PointsRedeemed", "RedemptionRefunded",
        "PointsConverted", "PointsConvertedIn", "PointsExpired", "PointsMoved"))

    def __init__(self, governance: GovernanceRule, merchant_of: dict[str, int]) -> None:
        self.governance = governance
        self.merchant_of = merchant_of
        self.books: dict[str, ProgramBook] = {a: ProgramBook(a) for a in merchant_of}
        self.findings: list[Finding] = []
        self.series: dict[str, list[tuple[int, int, int]]] = {}

    def apply(self, ev: Event) -> None:
        book = self.books.get(ev.address)
        if book is None:
            book = self.books[ev.address] = ProgramBook(ev.address)
        a = ev.args
        name = ev.name
        if name == "Transfer":
            value = a["value"]
            if a["from"] == ZERO_ADDRESS:
                book.supply += value
            else:
                book.balances[a["from"]] -= value
            if a["to"] == ZERO_ADDRESS:
                book.supply -= value
            else:
                book.balances[a["to"]] += value
            return
        if name == "PointsIssued":
            ref = a["orderRef"]
            if ref in book.orders:
                self._violation("OrderRefMintedTwice",
                                f"order {ref} minted again (first at block "
                                f"{book.orders[ref].block})", ev, order_ref=ref)
            amount = a["amount"]
            book.orders[ref] = Order(a["member"], amount, amount, a["earnPeriod"],
                                     a["releaseDay"], ev.block)
            book.totals["issued"] += amount
            book.issued_by_block[ev.block] += amount
            book.merchant_txs.setdefault(ev.tx, (ev.position, self._own(ev), False))
        elif name == "PointsReversed":
            ref = a["orderRef"]
            order = book.orders.get(ref)
            book.merchant_txs.setdefault(ev.tx, (ev.position, self._own(ev), False))
            book.totals["reversed"] += a["amount"]
            if order is None:
                self._violation("ReversalOfUnknownOrder", f"order {ref} reversed, never issued",
                                ev, order_ref=ref)
                return
            if a["amount"] > order.remaining:
                self._violation("ReversalExceedsIssued",
                                f"order {ref} reversed {a['amount']} with {order.remaining} "
                                "left", ev, order_ref=ref)
            if a["burned"] > a["amount"]:
                self._violation("ReversalBurnedTooMuch",
                                f"order {ref}: {a['burned']} burned for {a['amount']} reversed",
                                ev, order_ref=ref)
            order.remaining -= a["amount"]
        elif name == "PointsRedeemed":
            key = (a["merchantId"], a["orderRef"])
            if key in book.redemptions:
                self._violation("RedemptionRefUsedTwice",
                                f"order {a['orderRef']} of merchant {a['merchantId']} redeemed "
                                "twice", ev, order_ref=a["orderRef"])
            book.redemptions[key] = Redeemed(a["member"], a["amount"], a["amount"], ev.block)
            book.merchant_txs.setdefault(ev.tx, (ev.position, a["merchantId"], False))
            own = a["merchantId"] == self.merchant_of.get(ev.address)
            book.totals["redeemed_here" if own else "redeemed_elsewhere"] += a["amount"]
            book.redeemed_by_block[ev.block] += a["amount"]
        elif name == "RedemptionRefunded":
            key = (a["merchantId"], a["orderRef"])
            red = book.redemptions.get(key)
            book.totals["refunded"] += a["amount"]
            book.merchant_txs.setdefault(ev.tx, (ev.position, a["merchantId"], True))
            if red is None or red.conversion or a["amount"] > red.remaining:
                self._violation("RefundExceedsRedemption",
                                f"refund of {a['amount']} for order {a['orderRef']} of merchant "
                                f"{a['merchantId']}, which has "
                                f"{0 if red is None else red.remaining} left to refund",
                                ev, order_ref=a["orderRef"])
            if red is not None:
                red.remaining -= a["amount"]
        elif name == "PointsConverted":
            key = (a["toMerchantId"], a["orderRef"])
            if key in book.redemptions:
                self._violation("RedemptionRefUsedTwice",
                                f"order {a['orderRef']} of merchant {a['toMerchantId']} "
                                "redeemed twice", ev, order_ref=a["orderRef"])
            book.totals["converted_out"] += a["spent"]
            book.redemptions[key] = Redeemed(a["member"], a["spent"], a["spent"], ev.block,
                                             conversion=True)
            book.merchant_txs.setdefault(ev.tx, (ev.position, a["toMerchantId"], False))
        elif name == "PointsConvertedIn":
            book.totals["converted_in"] += a["amount"]
        elif name == "PointsExpired":
            book.totals["expired"] += a["amount"]
        elif name == "PointsMoved":
            if a["from"] in book.moved:
                self._violation("AccountMovedTwice",
                                f"{a['from']} moved again (to {a['to']}; first to "
                                f"{book.moved[a['from']]})", ev)
            book.moved[a["from"]] = a["to"]
            book.totals["moved"] += a["amount"]
            book.merchant_txs.setdefault(ev.tx, (ev.position, self._own(ev), False))

    def _own(self, ev: Event) -> int:
        return self.merchant_of.get(ev.address, 0)

    def _violation(self, code: str, message: str, ev: Event, **details: Any) -> None:
        self.findings.append(Finding(NAME, code, Severity.VIOLATION, message,
                                     contract=ev.address, block=ev.block, tx=ev.tx,
                                     details=details))

    # ------------------------------------------------------------------ check

    def check(self, checks: Checks) -> list[Finding]:
        out = list(self.findings)
        for address, book in sorted(self.books.items()):
            out += self._check_program(checks, address, book)
        out += self._check_senders(checks)
        blocks = {b for book in self.books.values()
                  for b in (*book.issued_by_block, *book.redeemed_by_block)}
        times = checks.block_times(sorted(blocks))
        for address, book in self.books.items():
            days: dict[int, list[int]] = defaultdict(lambda: [0, 0])
            for b, v in book.issued_by_block.items():
                if b in times:
                    days[times[b] // DAY][0] += v
            for b, v in book.redeemed_by_block.items():
                if b in times:
                    days[times[b] // DAY][1] += v
            self.series[address] = [(d * DAY, i, r) for d, (i, r) in sorted(days.items())]
        return out

    def _check_program(self, checks: Checks, address: str, book: ProgramBook) -> list[Finding]:
        out: list[Finding] = []

        def mismatch(what: str, want: Any, got: Any) -> None:
            out.append(Finding(NAME, "ViewMismatch", Severity.VIOLATION,
                               f"{what}: the logs give {want}, the program says {got}",
                               contract=address, details={"view": what}))

        if sum(book.balances.values()) != book.supply:
            out.append(Finding(NAME, "SupplyNotSumOfBalances", Severity.VIOLATION,
                               f"supply {book.supply} != sum of balances "
                               f"{sum(book.balances.values())}", contract=address))
        negative = [m for m, b in book.balances.items() if b < 0]
        for m in negative:
            out.append(Finding(NAME, "NegativeBalance", Severity.VIOLATION,
                               f"{m} holds {book.balances[m]}", contract=address))
        head = checks.views([(Kind.PROGRAM, address, "totalSupply", ()),
                             (Kind.PROGRAM, address, "currentDay", ()),
                             (Kind.PROGRAM, address, "pendingSupply", ())])
        supply, day, pending_supply = (_one(x) for x in head)
        if supply != book.supply:
            mismatch("totalSupply()", book.supply, supply)
        # Pending: what is left of every order whose release day is still ahead (a reversal
        # takes an order's pending points first; nothing else touches them).
        pending: dict[str, int] = defaultdict(int)
        for o in book.orders.values():
            if isinstance(day, int) and o.release_day > day and o.remaining > 0:
                pending[book.moved.get(o.member, o.member)] += o.remaining
        if pending_supply != sum(pending.values()):
            mismatch("pendingSupply()", sum(pending.values()), pending_supply)
        members = sorted(book.balances)
        calls: list[tuple[str, str, str, tuple[Any, ...]]] = []
        for m in members:
            calls += [(Kind.PROGRAM, address, f, (m,))
                      for f in ("balanceOf", "spendableOf", "pendingOf", "expiredOf")]
        answers = [_one(x) for x in checks.views(calls)]
        for i, m in enumerate(members):
            bal, spendable, pend, expired = answers[4 * i: 4 * i + 4]
            if bal != book.balances[m]:
                mismatch(f"balanceOf({m})", book.balances[m], bal)
            if pend != pending.get(m, 0):
                mismatch(f"pendingOf({m})", pending.get(m, 0), pend)
            if isinstance(bal, int) and bal != _sum(spendable, pend, expired):
                out.append(Finding(NAME, "BalanceSplitMismatch", Severity.VIOLATION,
                                   f"{m}: balance {bal} != spendable {spendable} + pending "
                                   f"{pend} + expired {expired}", contract=address))
        # Orders: what each has left after reversals (0 once its lot expired).
        refs = sorted(book.orders)
        periods = sorted({o.earn_period for o in book.orders.values()})
        expiry = dict(zip(periods, (_one(x) for x in checks.views(
            [(Kind.PROGRAM, address, "expiryOf", (p,)) for p in periods])), strict=True))
        now = checks.block_times([checks.source.head]).get(checks.source.head, 0)
        got_orders = checks.views([(Kind.PROGRAM, address, "orderOf",
                                    (bytes.fromhex(r[2:]),)) for r in refs])
        for ref, got in zip(refs, got_orders, strict=True):
            o = book.orders[ref]
            lapsed = isinstance(expiry.get(o.earn_period), int) and expiry[o.earn_period] <= now
            want = (o.member, 0 if lapsed else o.remaining, o.earn_period, o.release_day)
            if isinstance(got, ChainError) or tuple(got) != want:
                mismatch(f"orderOf({ref})", want, got)
        reds = sorted(book.redemptions)
        got_reds = checks.views([(Kind.PROGRAM, address, "redemptionOf",
                                  (mid, bytes.fromhex(ref[2:]))) for mid, ref in reds])
        for (mid, ref), got in zip(reds, got_reds, strict=True):
            r = book.redemptions[(mid, ref)]
            if isinstance(got, ChainError) or got[0] != r.member or got[1] != r.remaining:
                mismatch(f"redemptionOf({mid}, {ref})", (r.member, r.remaining), got)
        return out

    def _check_senders(self, checks: Checks) -> list[Finding]:
        """Issues and reversals come from the program's merchant's account of the time;
        redemptions and conversions from the accepting merchant's, which relays them; refunds
        from the acceptor's, or the operator's for a suspended acceptor."""
        txs = {tx: (address, *need) for address, book in self.books.items()
               for tx, need in book.merchant_txs.items()}
        senders = checks.senders(sorted(txs))
        registry = checks.addresses.registry
        out = []
        for tx, (address, pos, merchant, operator_ok) in sorted(txs.items()):
            account = self.governance.account_of(merchant, pos)
            sender = senders.get(tx)
            if sender is not None and account is not None and sender == account.lower():
                continue
            if operator_ok and sender is not None and self.governance.holds(
                    registry, OPERATOR_ROLE, sender, pos):
                continue
            out.append(Finding(NAME, "WriteByNonMerchant", Severity.VIOLATION,
                               f"a write of merchant {merchant} sent by {sender}, while it "
                               f"signed with {account}", contract=address, block=pos[0],
                               tx=tx))
        return out

    def section(self) -> dict[str, Any]:
        programs = []
        for address, book in sorted(self.books.items(),
                                    key=lambda kv: self.merchant_of.get(kv[0], 0)):
            programs.append({
                "merchant_id": self.merchant_of.get(address), "program": address,
                "supply": book.supply, "holders": sum(1 for b in book.balances.values() if b),
                "orders": len(book.orders), **{k: book.totals.get(k, 0) for k in (
                    "issued", "reversed", "redeemed_here", "redeemed_elsewhere", "refunded",
                    "converted_out", "converted_in", "expired", "moved")}})
        return {"programs": programs,
                "daily": {self.merchant_of.get(a, 0): s for a, s in self.series.items()}}


def _one(x: tuple[Any, ...] | ChainError) -> Any:
    if isinstance(x, ChainError):
        return x
    return x[0] if len(x) == 1 else x


def _sum(*xs: Any) -> int | None:
    return sum(xs) if all(isinstance(x, int) for x in xs) else None
