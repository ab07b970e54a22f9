"""The audit of the coupon book: campaigns, grants, the used bitmap, budgets, redemptions and
their rollbacks, vouchers, rebuilt from the book's logs (and the clearing's coupon acts),
compared with the book's own views.

Invariants: a coupon is used at most once at a time (a rollback frees it); a rollback undoes a
live redemption, for what it gave; a campaign's budget used never exceeds its budget and is the
sum of its live redemptions' discounts; grants stay within the supply cap and the per-member
cap; a coupon is used only at its issuer or a merchant its campaign lists (unless it is
accepted at every merchant); a fixed discount never exceeds its order; every redemption at a
merchant other than the issuer is cleared in its transaction for its discount (issuer to
acceptor), and every rollback cleared back, and the clearing books no coupon act without one;
grants, redemptions and rollbacks are sent by the merchant account the book requires.
A revoke (``revokeUnused``: the issuer burns an unused coupon, a ``Transfer`` to zero then
``CouponRevoked``) leaves the coupon neither live nor used; a revoke of a used coupon, a
burn without a revoke, and a revoked coupon used are findings.

A coupon id packs its campaign and serial (``campaignId << 72 | grantedAt << 32 | serial``),
so grants need no event of their own: an ERC-721 ``Transfer`` from zero.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..errors import ChainError
from .governance import GovernanceRule
from .model import Checks, Finding, Severity
from .source import ZERO_ADDRESS, Event, Kind

NAME = "coupons"
# The clearing's act kinds for coupons (see ``ledger/audit/clearing.py``).
COUPON_ACT, COUPON_ROLLBACK_ACT = 4, 5
FIXED_OFF = 1
VOUCHER_CLAIMED, VOUCHER_CANCELLED = 1, 2
ORDER_TAG_BITS = 88


@dataclass
class CampaignBook:
    """One campaign as its logs build it."""

    issuer: int
    kind: int
    supply_cap: int
    per_member_cap: int
    budget: int
    all_merchants: bool
    acceptors: frozenset[int]
    block: int
    paused: bool = False
    granted: int = 0
    budget_used: int = 0
    redeemed: int = 0
    rolled_back: int = 0
    discounts: int = 0
    per_member: Counter[str] = field(default_factory=Counter)


@dataclass
class Live:
    """A coupon's live redemption."""

    acceptor: int
    order_ref: str
    discount: int
    block: int


@dataclass
class CouponBook:
    owner: str
    campaign: int
    redemption: Live | None = None
    # Who held it when it was burned (a Transfer to zero); revoked once CouponRevoked says.
    burned_from: str | None = None
    revoked: bool = False


def campaign_of(coupon_id: int) -> int:
    return coupon_id >> 72


class CouponsRule:
    """The alliance's coupon book (one contract for every campaign)."""

    name = NAME
    events = frozenset({(Kind.COUPONS, e) for e in (
        "CampaignCreated", "CampaignPauseSet", "Transfer", "CouponRedeemed",
        "CouponRedemptionRolledBack", "VoucherClaimed", "VoucherCancelled",
        "CouponRevoked")}
        | {(Kind.CLEARING, "Cleared")})

    def __init__(self, governance: GovernanceRule) -> None:
        self.governance = governance
        self.book: str | None = None
        self.campaigns: dict[int, CampaignBook] = {}
        self.coupons: dict[int, CouponBook] = {}
        self.vouchers: dict[tuple[int, int], int] = {}
        self.findings: list[Finding] = []
        # Per transaction: the coupon acts the book's events call for, and those the
        # clearing booked, as (kind, debtor, creditor, value).
        self.acts_wanted: dict[str, Counter[tuple[int, int, int, int]]] = defaultdict(Counter)
        self.acts_booked: dict[str, Counter[tuple[int, int, int, int]]] = defaultdict(Counter)
        self.act_block: dict[str, int] = {}
        # Writes a merchant's account must have sent: tx -> ((block, log index), merchant).
        self.merchant_txs: dict[str, tuple[tuple[int, int], int]] = {}
        self.voucher_txs: set[str] = set()
        self.redeemed_by_block: dict[int, int] = defaultdict(int)

    # ------------------------------------------------------------------ rebuild

    def apply(self, ev: Event) -> None:
        a = ev.args
        if ev.kind == Kind.CLEARING:
            if a["kind"] in (COUPON_ACT, COUPON_ROLLBACK_ACT):
                self.acts_booked[ev.tx][(a["kind"], a["debtor"], a["creditor"], a["value"])] += 1
                self.act_block.setdefault(ev.tx, ev.block)
            return
        self.book = ev.address
        name = ev.name
        if name == "Transfer":
            self._transfer(ev)
        elif name == "CampaignCreated":
            t = a["terms"]
            if isinstance(t, dict):
                t = tuple(t.values())
            cid = a["campaignId"]
            if cid in self.campaigns:
                self._violation("CampaignCreatedTwice", f"campaign {cid} created again", ev)
            self.campaigns[cid] = CampaignBook(
                issuer=int(t[0]), kind=int(t[1]), supply_cap=int(t[8]),
                per_member_cap=int(t[9]), budget=int(t[10]), all_merchants=bool(t[13]),
                acceptors=frozenset(int(x) for x in t[14]), block=ev.block)
            self.merchant_txs.setdefault(ev.tx, (ev.position, int(t[0])))
        elif name == "CampaignPauseSet":
            c = self.campaigns.get(a["campaignId"])
            if c is None:
                self._violation("UnknownCampaign", f"campaign {a['campaignId']} paused, never "
                                "created", ev)
                return
            c.paused = bool(a["paused"])
            self.merchant_txs.setdefault(ev.tx, (ev.position, c.issuer))
        elif name == "CouponRedeemed":
            self._redeemed(ev)
        elif name == "CouponRedemptionRolledBack":
            self._rolled_back(ev)
        elif name == "CouponRevoked":
            self._revoked(ev)
        elif name == "VoucherClaimed":
            key = (a["campaignId"], a["voucherId"])
            if key in self.vouchers:
                self._violation("VoucherUsedTwice", f"voucher {key[1]} of campaign {key[0]} "
                                f"claimed after being {_voucher(self.vouchers[key])}", ev)
            self.vouchers[key] = VOUCHER_CLAIMED
            self.voucher_txs.add(ev.tx)
        elif name == "VoucherCancelled":
            key = (a["campaignId"], a["voucherId"])
            if key in self.vouchers:
                self._violation("VoucherUsedTwice", f"voucher {key[1]} of campaign {key[0]} "
                                f"cancelled after being {_voucher(self.vouchers[key])}", ev)
            self.vouchers[key] = VOUCHER_CANCELLED
            c = self.campaigns.get(a["campaignId"])
            if c is not None:
                self.merchant_txs.setdefault(ev.tx, (ev.position, c.issuer))

    def _transfer(self, ev: Event) -> None:
        a = ev.args
        token = a["tokenId"]
        if a["from"] == ZERO_ADDRESS:
            cid = campaign_of(token)
            c = self.campaigns.get(cid)
            if c is None:
                self._violation("UnknownCampaign", f"coupon {token} minted in campaign {cid}, "
                                "never created", ev)
                return
            if token in self.coupons:
                self._violation("CouponMintedTwice", f"coupon {token} minted again", ev)
            c.granted += 1
            c.per_member[a["to"]] += 1
            if c.supply_cap and c.granted > c.supply_cap:
                self._violation("SupplyCapExceeded", f"campaign {cid} granted {c.granted} "
                                f"coupons, its cap is {c.supply_cap}", ev)
            if c.per_member_cap and c.per_member[a["to"]] == c.per_member_cap + 1:
                self._violation("MemberCapExceeded", f"{a['to']} granted more than "
                                f"{c.per_member_cap} coupons of campaign {cid}", ev)
            self.coupons[token] = CouponBook(a["to"], cid)
            self.merchant_txs.setdefault(ev.tx, (ev.position, c.issuer))
            return
        coupon = self.coupons.get(token)
        if coupon is None or coupon.owner != a["from"]:
            self._violation("TransferOfUnheldCoupon", f"coupon {token} moved from {a['from']}, "
                            "who did not hold it", ev)
            return
        if a["to"] == ZERO_ADDRESS:
            coupon.burned_from = a["from"]
        coupon.owner = a["to"]

    def _revoked(self, ev: Event) -> None:
        a = ev.args
        token = a["couponId"]
        coupon = self.coupons.get(token)
        if coupon is None or coupon.burned_from is None or coupon.revoked:
            self._violation("RevokeOfUnheldCoupon", f"coupon {token} revoked from "
                            f"{a['holder']}, but no burn of it precedes", ev, coupon_id=token)
            return
        coupon.revoked = True
        c = self.campaigns[coupon.campaign]
        self.merchant_txs.setdefault(ev.tx, (ev.position, c.issuer))
        if coupon.burned_from != a["holder"]:
            self._violation("RevokeOfUnheldCoupon", f"coupon {token} revoked from "
                            f"{a['holder']}, burned from {coupon.burned_from}", ev,
                            coupon_id=token)
        if coupon.redemption is not None:
            self._violation("UsedCouponRevoked", f"coupon {token} revoked while used at "
                            f"merchant {coupon.redemption.acceptor} (block "
                            f"{coupon.redemption.block})", ev, coupon_id=token)

    def _redeemed(self, ev: Event) -> None:
        a = ev.args
        token, acceptor, discount = a["couponId"], a["acceptor"], a["discount"]
        coupon = self.coupons.get(token)
        self.merchant_txs[ev.tx] = (ev.position, acceptor)
        if coupon is None:
            self._violation("RedemptionOfUnknownCoupon", f"coupon {token} redeemed, never "
                            "granted", ev)
            return
        if coupon.owner == ZERO_ADDRESS:
            self._violation("RevokedCouponUsed", f"coupon {token} redeemed after it was "
                            "burned", ev, coupon_id=token)
        c = self.campaigns[coupon.campaign]
        if coupon.redemption is not None:
            self._violation("CouponUsedTwice", f"coupon {token} redeemed again (first at block "
                            f"{coupon.redemption.block})", ev, coupon_id=token)
        if not c.all_merchants and acceptor != c.issuer and acceptor not in c.acceptors:
            self._violation("CouponUsedAtNonAcceptor", f"coupon {token} of merchant {c.issuer} "
                            f"used at merchant {acceptor}, whom its campaign does not list",
                            ev, coupon_id=token)
        if c.kind == FIXED_OFF and discount > a["orderAmount"]:
            self._violation("DiscountExceedsOrder", f"coupon {token} gave {discount} off an "
                            f"order of {a['orderAmount']}", ev, coupon_id=token)
        coupon.redemption = Live(acceptor, a["orderRef"], discount, ev.block)
        c.budget_used += discount
        c.redeemed += 1
        c.discounts += discount
        if c.budget_used > c.budget:
            self._violation("BudgetExceeded", f"campaign {coupon.campaign} used "
                            f"{c.budget_used} of a budget of {c.budget}", ev)
        if acceptor != c.issuer and discount:
            self.acts_wanted[ev.tx][(COUPON_ACT, c.issuer, acceptor, discount)] += 1
            self.act_block.setdefault(ev.tx, ev.block)
        self.redeemed_by_block[ev.block] += discount

    def _rolled_back(self, ev: Event) -> None:
        a = ev.args
        token = a["couponId"]
        coupon = self.coupons.get(token)
        live = coupon.redemption if coupon else None
        self.merchant_txs[ev.tx] = (ev.position, a["acceptor"])
        if coupon is None or live is None or live.acceptor != a["acceptor"] \
                or live.discount != a["discount"] or live.order_ref != a["orderRef"]:
            self._violation("RollbackOfNoRedemption", f"coupon {token} rolled back at merchant "
                            f"{a['acceptor']} for {a['discount']}, which no live redemption "
                            "gave", ev, coupon_id=token)
            return
        assert coupon is not None
        c = self.campaigns[coupon.campaign]
        coupon.redemption = None
        c.budget_used -= live.discount
        c.rolled_back += 1
        c.discounts -= live.discount
        if live.acceptor != c.issuer and live.discount:
            self.acts_wanted[ev.tx][(COUPON_ROLLBACK_ACT, live.acceptor, c.issuer,
                                     live.discount)] += 1
            self.act_block.setdefault(ev.tx, ev.block)

    def _violation(self, code: str, message: str, ev: Event, **details: Any) -> None:
        self.findings.append(Finding(NAME, code, Severity.VIOLATION, message,
                                     contract=ev.address, block=ev.block, tx=ev.tx,
                                     details=details))

    # ------------------------------------------------------------------ check

    def check(self, checks: Checks) -> list[Finding]:
        out = list(self.findings) + self.burns_without_revoke()
        out += self.match_acts(checks.addresses.clearing)
        book = checks.addresses.coupon_book
        if book is None:
            return out
        out += self._check_views(checks, book)
        out += self._check_senders(checks, book)
        return out

    def burns_without_revoke(self) -> list[Finding]:
        """Coupons burned (a Transfer to zero) that no ``CouponRevoked`` explains: the book
        burns only in ``revokeUnused``."""
        return [Finding(NAME, "BurnWithoutRevoke", Severity.VIOLATION,
                        f"coupon {t} was burned without a CouponRevoked", contract=self.book,
                        details={"coupon_id": t})
                for t, coupon in sorted(self.coupons.items())
                if coupon.burned_from is not None and not coupon.revoked]

    def match_acts(self, clearing: str) -> list[Finding]:
        """Each transaction's coupon acts booked by the clearing against those its coupon
        events call for."""
        out = []
        for tx in sorted(set(self.acts_wanted) | set(self.acts_booked)):
            wanted, booked = self.acts_wanted.get(tx, Counter()), self.acts_booked.get(tx,
                                                                                       Counter())
            for act in sorted((wanted - booked).elements()):
                what = "redemption" if act[0] == COUPON_ACT else "rollback"
                out.append(Finding(NAME, "CouponActNotCleared", Severity.VIOLATION,
                                   f"a coupon {what} worth {act[3]} (merchant {act[1]} to "
                                   f"{act[2]}) is not cleared in its transaction",
                                   contract=clearing, block=self.act_block.get(tx), tx=tx))
            for act in sorted((booked - wanted).elements()):
                out.append(Finding(NAME, "CouponActWithoutCoupon", Severity.VIOLATION,
                                   f"the clearing booked a coupon act worth {act[3]} (merchant "
                                   f"{act[1]} to {act[2]}) no coupon event calls for",
                                   contract=clearing, block=self.act_block.get(tx), tx=tx))
        return out

    def _check_views(self, checks: Checks, book: str) -> list[Finding]:
        out: list[Finding] = []

        def mismatch(what: str, want: Any, got: Any) -> None:
            out.append(Finding(NAME, "ViewMismatch", Severity.VIOLATION,
                               f"{what}: the logs give {want}, the coupon book says {got}",
                               contract=book, details={"view": what}))

        count = checks.views([(Kind.COUPONS, book, "campaignCount", ())])[0]
        if _one(count) != len(self.campaigns):
            mismatch("campaignCount()", len(self.campaigns), _one(count))
        ids = sorted(self.campaigns)
        live: dict[int, int] = defaultdict(int)
        for coupon in self.coupons.values():
            if coupon.redemption is not None:
                live[coupon.campaign] += coupon.redemption.discount
        for cid, got in zip(ids, checks.views([(Kind.COUPONS, book, "campaign", (cid,))
                                               for cid in ids]), strict=True):
            c = self.campaigns[cid]
            if live[cid] != c.budget_used:
                out.append(Finding(NAME, "BudgetUsedNotSumOfRedemptions", Severity.VIOLATION,
                                   f"campaign {cid}: budget used {c.budget_used}, its live "
                                   f"redemptions gave {live[cid]}", contract=book))
            v = _one(got)
            want = (c.issuer, c.paused, c.granted, c.budget, live[cid])
            have = v if isinstance(v, ChainError) else (v[0], v[5], v[14], v[15], v[16])
            if have != want:
                mismatch(f"campaign({cid}) (issuer, paused, granted, budget, budgetUsed)",
                         want, have)
        tokens = sorted(self.coupons)
        calls: list[tuple[str, str, str, tuple[Any, ...]]] = []
        for t in tokens:
            calls += [(Kind.COUPONS, book, f, (t,)) for f in ("ownerOf", "isUsed")]
        # The book keeps a redemption's record with its order (acceptor, order ref): asked
        # for each live redemption where it was made.
        redeemed = [t for t in tokens if self.coupons[t].redemption is not None]
        for t in redeemed:
            r = self.coupons[t].redemption
            assert r is not None
            calls.append((Kind.COUPONS, book, "redemptionOf",
                          (t, r.acceptor, bytes.fromhex(r.order_ref.removeprefix("0x")))))
        answers = [_one(x) for x in checks.views(calls)]
        for i, t in enumerate(tokens):
            owner, used = answers[2 * i: 2 * i + 2]
            coupon = self.coupons[t]
            if coupon.owner == ZERO_ADDRESS:
                # Burned: ownerOf reverts (ERC721NonexistentToken).
                if not isinstance(owner, ChainError):
                    mismatch(f"ownerOf({t})", "none (burned)", owner)
            elif owner != coupon.owner:
                mismatch(f"ownerOf({t})", coupon.owner, owner)
            if used is not (coupon.redemption is not None):
                mismatch(f"isUsed({t})", coupon.redemption is not None, used)
        for t, record in zip(redeemed, answers[2 * len(tokens):], strict=True):
            r = self.coupons[t].redemption
            assert r is not None
            want_rec = (r.acceptor, r.discount,
                        int(r.order_ref, 16) & ((1 << ORDER_TAG_BITS) - 1))
            have_rec = record if isinstance(record, ChainError) else (record[0], record[2],
                                                                      record[3])
            if have_rec != want_rec:
                mismatch(f"redemptionOf({t}, {r.acceptor}, {r.order_ref}) "
                         "(acceptor, discount, orderTag)", want_rec, have_rec)
        # The book counts a member's grants only in campaigns with a per-member cap.
        members = sorted((cid, m) for cid, c in self.campaigns.items() if c.per_member_cap
                         for m in c.per_member)
        for (cid, m), got in zip(members, checks.views(
                [(Kind.COUPONS, book, "grantedTo", (cid, m)) for cid, m in members]),
                strict=True):
            want_n = self.campaigns[cid].per_member[m]
            if _one(got) != want_n:
                mismatch(f"grantedTo({cid}, {m})", want_n, _one(got))
        keys = sorted(self.vouchers)
        for key, got in zip(keys, checks.views([(Kind.COUPONS, book, "voucherState", k)
                                                for k in keys]), strict=True):
            if _one(got) != self.vouchers[key]:
                mismatch(f"voucherState{key}", self.vouchers[key], _one(got))
        return out

    def _check_senders(self, checks: Checks, book: str) -> list[Finding]:
        """Campaigns, pauses, grants and cancellations come from the issuer's account of the
        time; redemptions and rollbacks from the acceptor's (which relays the holder's
        signature). A voucher's coupon may be claimed by anyone holding the voucher."""
        txs = {tx: need for tx, need in self.merchant_txs.items()
               if tx not in self.voucher_txs}
        senders = checks.senders(sorted(txs))
        out = []
        for tx, (pos, merchant) in sorted(txs.items()):
            account = self.governance.account_of(merchant, pos)
            sender = senders.get(tx)
            if sender is not None and account is not None and sender == account.lower():
                continue
            out.append(Finding(NAME, "WriteByNonMerchant", Severity.VIOLATION,
                               f"a coupon write of merchant {merchant} sent by {sender}, while "
                               f"it signed with {account}", contract=book, block=pos[0], tx=tx))
        return out

    def section(self) -> dict[str, Any]:
        campaigns = []
        for cid, c in sorted(self.campaigns.items()):
            mine = [x for x in self.coupons.values() if x.campaign == cid]
            used = sum(1 for x in mine if x.redemption is not None)
            revoked = sum(1 for x in mine if x.revoked)
            campaigns.append({
                "campaign_id": cid, "issuer": c.issuer, "granted": c.granted,
                "supply_cap": c.supply_cap, "used": used, "revoked": revoked,
                "live": c.granted - used - revoked, "redeemed": c.redeemed,
                "rolled_back": c.rolled_back, "budget": c.budget,
                "budget_used": c.budget_used, "paused": c.paused})
        vouchers = Counter(_voucher(s) for s in self.vouchers.values())
        return {"book": self.book, "campaigns": campaigns, "coupons": len(self.coupons),
                "vouchers": dict(sorted(vouchers.items()))}


def _voucher(state: int) -> str:
    return {VOUCHER_CLAIMED: "claimed", VOUCHER_CANCELLED: "cancelled"}.get(state, "open")


def _one(x: tuple[Any, ...] | ChainError) -> Any:
    if isinstance(x, ChainError):
        return x
    return x[0] if len(x) == 1 else x
