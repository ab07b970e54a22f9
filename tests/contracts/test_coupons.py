"""CouponBook behaviour on a real anvil: campaigns, grants, vouchers, redemption, clearing of
a coupon used at another merchant, rollback, and every refusal with nothing changed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger.contracts.client import ContractClient
from ledger.contracts.compiler import Artifact, compile_sources
from ledger.coupons.clients import (
    CampaignTerms,
    CouponBookClient,
    CouponKind,
    Refusal,
    campaign_of,
    granted_at_of,
)
from ledger.coupons.signing import redeem_coupon_typed_data, voucher_typed_data
from ledger.errors import ContractRevertError

from .conftest import DAY, FIXTURES, Chain, Merchant


@contextmanager
def reverts(name: str, *args: object) -> Iterator[None]:
    with pytest.raises(ContractRevertError) as info:
        yield
    assert info.value.name == name, info.value
    if args:
        assert info.value.args_ == args, info.value.args_


def ref(s: str) -> bytes:
    return keccak(text=s)


@dataclass
class Book:
    chain: Chain
    client: CouponBookClient
    issuer: Merchant
    acceptor: Merchant
    outsider: Merchant
    member: LocalAccount
    # Every (acceptor, order ref) a redemption was signed for: where records can be.
    orders: set[tuple[int, bytes]] = field(default_factory=set)

    def call(self, m: Merchant, fn: str, *args: object) -> dict[str, Any]:
        return m.sender.transact(to=self.client.address, data=self.client.encode(fn, *args),
                                 gas=8_000_000)

    def create(self, **kw: Any) -> int:
        terms = CampaignTerms(**{"issuer": self.issuer.merchant_id, "kind": CouponKind.FIXED_OFF,
                                 "value": 500, "budget": 10_000,
                                 "acceptors": (self.acceptor.merchant_id,), **kw})
        receipt = self.call(self.issuer, "createCampaign", terms.as_tuple())
        (cid,) = [int(a["campaignId"]) for n, a, _ in self.client.decode_logs(receipt["logs"])
                  if n == "CampaignCreated"]
        return cid

    def grant(self, campaign_id: int, to: str | None = None) -> int:
        receipt = self.call(self.issuer, "grant", campaign_id, to or self.member.address)
        (tid,) = [int(a["tokenId"]) for n, a, _ in self.client.decode_logs(receipt["logs"])
                  if n == "Transfer"]
        return tid

    def sign(self, coupon_id: int, acceptor: int, order: bytes, amount: int, *,
             nonce: int | None = None, deadline: int | None = None,
             signer: LocalAccount | None = None, holder: str | None = None) -> tuple[Any, bytes]:
        nonce = int.from_bytes(os.urandom(8)) if nonce is None else nonce
        deadline = deadline or self.chain.now() + DAY
        self.orders.add((acceptor, order))
        typed = redeem_coupon_typed_data(
            chain_id=self.chain.gateway.chain_id, book=self.client.address,
            registry=self.chain.registry.address, holder=holder or self.member.address,
            coupon_id=coupon_id, acceptor=acceptor, order_ref=order, order_amount=amount,
            nonce=nonce, deadline=deadline)
        sig = bytes(Account.sign_typed_data((signer or self.member).key,
                                            full_message=typed).signature)
        return (coupon_id, acceptor, order, amount, nonce, deadline), sig

    def redeem(self, coupon_id: int, *, at: Merchant | None = None, order: str = "o-1",
               amount: int = 10_000, **kw: Any) -> dict[str, Any]:
        at = at or self.acceptor
        r, sig = self.sign(coupon_id, at.merchant_id, ref(order), amount, **kw)
        return self.call(at, "redeem", r, sig)

    def voucher(self, campaign_id: int, voucher_id: int, *, expires_at: int | None = None,
                signer: LocalAccount | None = None) -> tuple[tuple[int, int, int], bytes]:
        expires_at = expires_at or self.chain.now() + DAY
        typed = voucher_typed_data(chain_id=self.chain.gateway.chain_id,
                                   book=self.client.address,
                                   registry=self.chain.registry.address,
                                   campaign_id=campaign_id, voucher_id=voucher_id,
                                   expires_at=expires_at)
        sig = bytes(Account.sign_typed_data((signer or self.issuer.account).key,
                                            full_message=typed).signature)
        return (campaign_id, voucher_id, expires_at), sig

    def state(self, campaign_id: int, *coupons: int) -> tuple[object, ...]:
        """Everything a refused call must leave as it was."""
        c, clr = self.client, self.chain.clearing
        p = clr.current_period()
        # Records and order slots at every order signed for so far (empty ones left out, so
        # a state taken before an order was first signed compares equal).
        orders = sorted(self.orders)
        records = [[(a, o, rec) for a, o in orders
                    if (rec := c.redemption_of(t, acceptor=a, order_ref=o))[1] != 0]
                   for t in coupons]
        return (c.campaign(campaign_id), [c.is_used(t) for t in coupons], records,
                clr.position_of(p, self.issuer.merchant_id),
                clr.position_of(p, self.acceptor.merchant_id),
                int(c.view1("balanceOf", self.member.address)),
                [(a, o, st) for a, o in orders if (st := c.order_state(a, o)) != 0])


@pytest.fixture
def book(chain: Chain) -> Book:
    address = chain.clearing.view1("couponBook")
    client = CouponBookClient(chain.gateway, chain.artifacts["CouponBook"].abi, str(address))
    return Book(chain, client, chain.admit(symbol="ISS"), chain.admit(symbol="ACC"),
                chain.admit(symbol="OUT"), Account.create())


# ---------------------------------------------------------------------- happy paths


def test_redeem_at_another_merchant_clears_the_discount_from_issuer_to_acceptor(
        book: Book) -> None:
    cid = book.create()
    tid = book.grant(cid)
    assert campaign_of(tid) == cid and abs(granted_at_of(tid) - book.chain.now()) <= 1
    assert book.client.validate(coupon_id=tid, acceptor=book.acceptor.merchant_id,
                                order_ref=ref("o-1"), order_amount=10_000) == (Refusal.NONE, 500)
    receipt = book.redeem(tid)
    names = [n for n, _, _ in book.client.decode_logs(receipt["logs"])]
    assert "CouponRedeemed" in names
    p = book.chain.clearing.current_period()
    assert book.chain.clearing.position_of(p, book.issuer.merchant_id) == (-500, 0)
    assert book.chain.clearing.position_of(p, book.acceptor.merchant_id) == (500, 500)
    assert book.client.is_used(tid)
    assert book.client.campaign(cid).budget_used == 500
    # Still held: a used coupon stays in the wallet and its history.
    assert book.client.owner_of(tid) == book.member.address


def test_redeem_batch_uses_every_coupon_and_clears_their_sum_or_reverts_whole(
        book: Book) -> None:
    cid = book.create()
    t1, t2, t3 = book.grant(cid), book.grant(cid), book.grant(cid)
    lines = [book.sign(t, book.acceptor.merchant_id, ref(f"b-{i}"), 10_000)
             for i, t in enumerate((t1, t2))]
    receipt = book.call(book.acceptor, "redeemBatch", [r for r, _ in lines],
                        [s for _, s in lines])
    names = [n for n, _, _ in book.client.decode_logs(receipt["logs"])]
    assert names.count("CouponRedeemed") == 2
    assert book.client.is_used(t1) and book.client.is_used(t2)
    p = book.chain.clearing.current_period()
    assert book.chain.clearing.position_of(p, book.acceptor.merchant_id) == (1000, 1000)
    assert book.client.campaign(cid).budget_used == 1000
    # One bad line (t1 again) reverts the batch with that line's error: t3 stays unused.
    good = book.sign(t3, book.acceptor.merchant_id, ref("b-3"), 10_000)
    again = book.sign(t1, book.acceptor.merchant_id, ref("b-4"), 10_000)
    before = book.state(cid, t1, t2, t3)
    with reverts("CouponAlreadyUsed", t1):
        book.call(book.acceptor, "redeemBatch", [good[0], again[0]], [good[1], again[1]])
    with reverts("CouponInvalidBatch", 1, 0):
        book.call(book.acceptor, "redeemBatch", [good[0]], [])
    with reverts("CouponInvalidBatch", 0, 0):
        book.call(book.acceptor, "redeemBatch", [], [])
    # Another merchant cannot relay a batch of lines at this acceptor.
    with reverts("CouponUnauthorized"):
        book.call(book.outsider, "redeemBatch", [good[0]], [good[1]])
    assert book.state(cid, t1, t2, t3) == before


def test_redeem_at_the_issuer_gives_the_discount_without_clearing(book: Book) -> None:
    cid = book.create()
    tid = book.grant(cid)
    book.redeem(tid, at=book.issuer)
    p = book.chain.clearing.current_period()
    assert book.chain.clearing.position_of(p, book.issuer.merchant_id) == (0, 0)
    assert book.client.campaign(cid).budget_used == 500


def test_percent_off_is_capped_and_fixed_off_never_exceeds_the_order(book: Book) -> None:
    pct = book.create(kind=CouponKind.PERCENT_OFF, value=1000, max_discount=300)
    t1, t2 = book.grant(pct), book.grant(pct)
    acc = book.acceptor.merchant_id
    assert book.client.validate(coupon_id=t1, acceptor=acc, order_ref=ref("a"),
                                order_amount=2000)[1] == 200
    assert book.client.validate(coupon_id=t1, acceptor=acc, order_ref=ref("a"),
                                order_amount=9000)[1] == 300
    fixed = book.create(value=800)
    t3 = book.grant(fixed)
    assert book.client.validate(coupon_id=t3, acceptor=acc, order_ref=ref("a"),
                                order_amount=600)[1] == 600
    book.redeem(t2, amount=2500, order="p")
    assert book.client.campaign(pct).budget_used == 250


def test_batch_grant_mints_consecutive_ids_in_one_transaction(book: Book) -> None:
    cid = book.create(supply_cap=3)
    members = [Account.create().address for _ in range(3)]
    receipt = book.call(book.issuer, "grantBatch", cid, members)
    ids = [int(a["tokenId"]) for n, a, _ in book.client.decode_logs(receipt["logs"])
           if n == "Transfer"]
    assert [book.client.owner_of(t) for t in ids] == members
    assert [t & 0xFFFFFFFF for t in ids] == [1, 2, 3]
    assert book.client.campaign(cid).granted == 3


def test_rollback_restores_the_coupon_the_budget_and_the_clearing(book: Book) -> None:
    cid = book.create()
    tid = book.grant(cid)
    before = book.state(cid, tid)
    book.redeem(tid)
    book.call(book.acceptor, "rollback", tid, ref("o-1"))
    assert book.state(cid, tid)[:3] == before[:3]
    p = book.chain.clearing.current_period()
    assert book.chain.clearing.position_of(p, book.issuer.merchant_id)[0] == 0
    assert book.chain.clearing.position_of(p, book.acceptor.merchant_id)[0] == 0
    # Usable again, on the same order too.
    book.redeem(tid)
    assert book.client.is_used(tid)


def test_stackable_coupons_share_an_order_and_an_exclusive_one_does_not(book: Book) -> None:
    stack = book.create(stackable=True)
    solo = book.create()
    s1, s2, x = book.grant(stack), book.grant(stack), book.grant(solo)
    book.redeem(s1, order="o")
    book.redeem(s2, order="o")
    before = book.state(solo, x)
    with reverts("CouponOrderHasCoupon"):
        book.redeem(x, order="o")
    assert book.state(solo, x) == before
    book.redeem(x, order="other")
    y = book.grant(stack)
    with reverts("CouponOrderHasCoupon"):
        book.redeem(y, order="other")
    # Rolling back the exclusive coupon frees the order for a stackable one.
    book.call(book.acceptor, "rollback", x, ref("other"))
    book.redeem(y, order="other")


def test_whole_alliance_campaign_follows_the_registry_acceptance_matrix(book: Book) -> None:
    cid = book.create(all_merchants=True, acceptors=())
    t1, t2 = book.grant(cid), book.grant(cid)
    book.redeem(t1, at=book.outsider)
    book.chain.gov(book.chain.registry, "setAcceptance", book.outsider.merchant_id,
                   book.issuer.merchant_id, False)
    with reverts("CouponNotAccepted", t2, book.outsider.merchant_id):
        book.redeem(t2, at=book.outsider)


# ---------------------------------------------------------------------- refusals


def test_every_redemption_refusal_is_its_own_error_and_changes_nothing(book: Book) -> None:
    now = book.chain.now()
    cid = book.create(min_spend=1000, budget=700)
    tid = book.grant(cid)
    before = book.state(cid, tid)
    with reverts("CouponUnderMinimumSpend", tid, 1000, 999):
        book.redeem(tid, amount=999)
    with reverts("CouponNotAccepted", tid, book.outsider.merchant_id):
        book.redeem(tid, at=book.outsider)
    with reverts("PointsInvalidSignature", book.member.address):
        book.redeem(tid, signer=Account.create())
    with reverts("CouponUnauthorized"):
        r, sig = book.sign(tid, book.acceptor.merchant_id, ref("o"), 5000)
        book.call(book.outsider, "redeem", r, sig)
    with reverts("CouponUnknownCoupon"):
        book.redeem(tid + 1)
    assert book.state(cid, tid) == before

    later = book.create(starts_at=now + 10 * DAY)
    t_later = book.grant(later)
    with reverts("CouponNotYetValid", t_later, now + 10 * DAY):
        book.redeem(t_later)
    short = book.create(valid_days=2)
    t_short = book.grant(short)
    book.chain.travel(3 * DAY)
    with reverts("CouponExpired"):
        book.redeem(t_short)


def test_used_twice_and_replayed_signature_are_refused(book: Book) -> None:
    cid = book.create()
    tid = book.grant(cid)
    r, sig = book.sign(tid, book.acceptor.merchant_id, ref("o"), 5000, nonce=7)
    book.call(book.acceptor, "redeem", r, sig)
    before = book.state(cid, tid)
    with reverts("PointsNonceUsed"):
        book.call(book.acceptor, "redeem", r, sig)
    with reverts("CouponAlreadyUsed", tid):
        book.redeem(tid, order="o-2")
    assert book.state(cid, tid) == before


def test_budget_supply_and_member_caps_are_enforced(book: Book) -> None:
    cid = book.create(budget=700, supply_cap=3, per_member_cap=2)
    t1, t2 = book.grant(cid), book.grant(cid)
    with reverts("CouponMemberCapExceeded", cid, book.member.address, 2):
        book.grant(cid)
    book.grant(cid, Account.create().address)
    with reverts("CouponSupplyCapExceeded", cid, 3, 4):
        book.grant(cid, Account.create().address)
    with reverts("CouponSupplyCapExceeded", cid, 3, 4):
        book.call(book.issuer, "grantBatch", cid, [Account.create().address])
    book.redeem(t1, order="a")
    before = book.state(cid, t1, t2)
    with reverts("CouponBudgetExhausted", cid, 200, 500):
        book.redeem(t2, order="b")
    assert book.state(cid, t1, t2) == before
    assert book.client.validate(coupon_id=t2, acceptor=book.acceptor.merchant_id,
                                order_ref=ref("b"), order_amount=10_000) == (
        Refusal.BUDGET_EXHAUSTED, 500)


def test_paused_campaign_refuses_grants_and_redemptions_until_resumed(book: Book) -> None:
    cid = book.create()
    tid = book.grant(cid)
    with reverts("CouponUnauthorized"):
        book.call(book.acceptor, "setCampaignPaused", cid, True)
    book.call(book.issuer, "setCampaignPaused", cid, True)
    with reverts("CouponCampaignPauseUnchanged", cid, True):
        book.call(book.issuer, "setCampaignPaused", cid, True)
    with reverts("CouponCampaignPaused", cid):
        book.grant(cid)
    with reverts("CouponCampaignPaused", cid):
        book.redeem(tid)
    book.call(book.issuer, "setCampaignPaused", cid, False)
    book.redeem(tid)


def test_suspended_issuer_cannot_grant_and_its_coupons_are_refused(book: Book) -> None:
    cid = book.create()
    tid = book.grant(cid)
    book.chain.op(book.chain.registry, "suspendMerchant", book.issuer.merchant_id)
    before = book.state(cid, tid)
    with reverts("CouponMerchantNotActive", book.issuer.merchant_id):
        book.grant(cid)
    with reverts("CouponIssuerSuspended", book.issuer.merchant_id):
        book.redeem(tid)
    assert book.state(cid, tid) == before


def test_rollback_after_the_refund_window_or_by_another_merchant_is_refused(book: Book) -> None:
    cid = book.create()
    tid = book.grant(cid)
    with reverts("CouponNotRedeemed", tid):
        book.call(book.acceptor, "rollback", tid, ref("o-1"))
    book.redeem(tid)
    used = book.state(cid, tid)
    # The record rides in the order's slot at the acceptor: another merchant naming the
    # order finds no redemption of the coupon on its own order (the service answers 403 from
    # the redemption's log before anything is sent).
    with reverts("CouponNotRedeemed", tid):
        book.call(book.issuer, "rollback", tid, ref("o-1"))
    with reverts("CouponNotRedeemed", tid):
        book.call(book.outsider, "rollback", tid, ref("o-1"))
    assert book.state(cid, tid) == used
    with reverts("CouponNotRedeemed", tid):
        book.call(book.acceptor, "rollback", tid, ref("another order"))
    book.chain.travel(book.chain.registry.refund_window() + 10)
    before = book.state(cid, tid)
    with reverts("CouponRefundWindowClosed"):
        book.call(book.acceptor, "rollback", tid, ref("o-1"))
    assert book.state(cid, tid) == before


def test_non_transferable_coupons_cannot_move_and_transferable_ones_can(book: Book) -> None:
    fixed = book.create(transferable=False)
    free = book.create()
    t1, t2 = book.grant(fixed), book.grant(free)
    holder = book.chain.sender(book.member)
    other = Account.create().address
    with reverts("CouponNotTransferable", t1):
        holder.transact(to=book.client.address, data=book.client.encode(
            "transferFrom", book.member.address, other, t1), gas=300_000)
    holder.transact(to=book.client.address, data=book.client.encode(
        "transferFrom", book.member.address, other, t2), gas=300_000)
    assert book.client.owner_of(t2) == other


def test_campaign_terms_are_checked(book: Book) -> None:
    with reverts("CouponInvalidTerms", "value"):
        book.create(kind=CouponKind.PERCENT_OFF, value=10_001)
    with reverts("CouponInvalidTerms", "budget"):
        book.create(budget=0)
    with reverts("CouponInvalidTerms", "acceptors"):
        book.create(acceptors=(999,))
    with reverts("CouponUnauthorized"):
        terms = CampaignTerms(issuer=book.issuer.merchant_id, kind=CouponKind.FIXED_OFF,
                              value=1, budget=1)
        book.call(book.acceptor, "createCampaign", terms.as_tuple())


# ---------------------------------------------------------------------- vouchers


def test_voucher_claims_once_and_forged_expired_or_cancelled_vouchers_are_refused(
        book: Book) -> None:
    cid = book.create()
    v, sig = book.voucher(cid, 1)
    receipt = book.call(book.issuer, "claimVoucher", v, book.member.address, sig)
    assert "VoucherClaimed" in [n for n, _, _ in book.client.decode_logs(receipt["logs"])]
    before = book.state(cid)
    with reverts("CouponVoucherUsed", cid, 1):
        book.call(book.issuer, "claimVoucher", v, Account.create().address, sig)
    forged, fsig = book.voucher(cid, 2, signer=Account.create())
    with reverts("CouponVoucherInvalidSignature", cid, 2):
        book.call(book.issuer, "claimVoucher", forged, book.member.address, fsig)
    # A voucher of one campaign does not claim another campaign's coupon.
    other = book.create()
    with reverts("CouponVoucherInvalidSignature", other, 1):
        book.call(book.issuer, "claimVoucher", (other, 1, v[2]), book.member.address, sig)
    v3, sig3 = book.voucher(cid, 3)
    book.call(book.issuer, "cancelVoucher", cid, 3)
    with reverts("CouponVoucherCancelled", cid, 3):
        book.call(book.issuer, "claimVoucher", v3, book.member.address, sig3)
    v4, sig4 = book.voucher(cid, 4, expires_at=book.chain.now() + 100)
    book.chain.travel(200)
    with reverts("CouponVoucherExpired"):
        book.call(book.issuer, "claimVoucher", v4, book.member.address, sig4)
    assert book.state(cid) == before
    assert book.client.voucher_state(cid, 1) == 1 and book.client.voucher_state(cid, 3) == 2


# ---------------------------------------------------------------------- reentrancy


@pytest.fixture(scope="module")
def hostile_artifact() -> Artifact:
    src = (FIXTURES / "HostileReceiver.sol").read_text()
    return compile_sources({"tests/contracts/fixtures/HostileReceiver.sol": src}
                           )["HostileReceiver"]


def _deploy_hostile(book: Book, art: Artifact) -> ContractClient:
    receipt = book.chain.operator.transact(
        to=None, data=book.chain.gateway.encode_deploy(art.abi, art.bytecode, []))
    return ContractClient(book.chain.gateway, art.abi, str(receipt["contractAddress"]))


def test_a_reentrant_receiver_cannot_reenter_grant_or_redemption(
        book: Book, hostile_artifact: Artifact) -> None:
    cid = book.create()
    hostile = _deploy_hostile(book, hostile_artifact)
    victim = book.grant(cid)
    r, sig = book.sign(victim, book.acceptor.merchant_id, ref("o"), 5000)
    before = book.state(cid, victim)
    for attack in (book.client.encode("grant", cid, hostile.address),
                   book.client.encode("redeem", r, sig)):
        book.chain.op(hostile, "arm", book.client.address, attack)
        with reverts("ReentrancyGuardReentrantCall"):
            book.grant(cid, hostile.address)
        assert book.state(cid, victim) == before
    # A safe transfer into the receiver cannot re-enter either.
    book.chain.op(hostile, "arm", book.client.address, book.client.encode("redeem", r, sig))
    holder = book.chain.sender(book.member)
    # safeTransferFrom is overloaded; the 4-argument one, encoded by its own selector.
    data = keccak(text="safeTransferFrom(address,address,uint256,bytes)")[:4] + abi_encode(
        ["address", "address", "uint256", "bytes"],
        [book.member.address, hostile.address, victim, b""])
    with reverts("ReentrancyGuardReentrantCall"):
        holder.transact(to=book.client.address, data=data, gas=500_000)
    assert book.state(cid, victim) == before
    # Disarmed, it receives coupons like any holder.
    book.chain.op(hostile, "arm", book.client.address, b"")
    book.grant(cid, hostile.address)
    assert int(hostile.view1("received")) == 1


# ---------------------------------------------------------------------- clearing


def test_only_the_coupon_book_records_coupon_clearing_and_it_is_named_once(book: Book) -> None:
    clr = book.chain.clearing
    with reverts("ClearingNotCouponBook"):
        book.issuer.call_on(clr, "recordCouponRedemption", book.issuer.merchant_id,
                            book.acceptor.merchant_id, 100)
    with reverts("ClearingUnauthorized"):
        book.chain.op(clr, "setCouponBook", book.client.address)
    with reverts("ClearingCouponBookAlreadySet"):
        book.chain.gov(clr, "setCouponBook", book.client.address)


def test_campaign_terms_round_trip_in_field_order(book: Book) -> None:
    # The Python terms and the Solidity struct agree on field order.
    cid = book.create(min_spend=7, valid_days=3, supply_cap=9, per_member_cap=4,
                      stackable=True, transferable=False, max_discount=11)
    c = book.client.campaign(cid)
    assert (c.min_spend, c.valid_days, c.supply_cap, c.per_member_cap, c.stackable,
            c.transferable, c.max_discount) == (7, 3, 9, 4, True, False, 11)


def test_stacked_coupons_keep_their_records_and_roll_back_in_any_order(book: Book) -> None:
    """The first coupon of an order keeps its record in the order's slot, a stacked one in its
    own: both roll back, in either order, and the order is empty afterwards."""
    stack = book.create(stackable=True)
    s1, s2 = book.grant(stack), book.grant(stack)
    before = book.state(stack, s1, s2)
    book.redeem(s1, order="o")
    book.redeem(s2, order="o")
    acc = book.acceptor.merchant_id
    r1 = book.client.redemption_of(s1, acceptor=acc, order_ref=ref("o"))
    r2 = book.client.redemption_of(s2, acceptor=acc, order_ref=ref("o"))
    assert (r1[0], r1[2]) == (acc, 500) and (r2[0], r2[2]) == (acc, 500)
    assert r1[1] != 0 and r2[1] != 0
    assert book.client.order_state(acc, ref("o")) >> 1 & 0xFF == 2
    book.call(book.acceptor, "rollback", s1, ref("o"))
    with reverts("CouponNotRedeemed", s1):
        book.call(book.acceptor, "rollback", s1, ref("o"))
    # The freed in-order record takes the next coupon redeemed on the order.
    book.redeem(s1, order="o")
    book.call(book.acceptor, "rollback", s2, ref("o"))
    book.call(book.acceptor, "rollback", s1, ref("o"))
    assert book.state(stack, s1, s2)[:3] == before[:3]
    assert book.client.order_state(acc, ref("o")) == 0


def test_revoke_burns_an_unused_coupon_only_by_its_issuer_and_a_used_one_stays(
        book: Book) -> None:
    cid = book.create(transferable=True)
    kept, taken = book.grant(cid), book.grant(cid)
    book.redeem(kept)
    before = book.state(cid, kept, taken)
    # Only the issuer's account: not the acceptor, not the holder.
    with reverts("CouponUnauthorized", book.acceptor.account.address,
                 book.issuer.merchant_id):
        book.call(book.acceptor, "revokeUnused", taken)
    with reverts("CouponAlreadyUsed", kept):
        book.call(book.issuer, "revokeUnused", kept)
    with reverts("CouponUnknownCoupon", taken + 1):
        book.call(book.issuer, "revokeUnused", taken + 1)
    assert book.state(cid, kept, taken) == before
    receipt = book.call(book.issuer, "revokeUnused", taken)
    logs = [(n, a) for n, a, _ in book.client.decode_logs(receipt["logs"])]
    assert ("CouponRevoked", {"couponId": taken, "holder": book.member.address}) in [
        (n, dict(a)) for n, a in logs]
    with reverts("ERC721NonexistentToken", taken):
        book.client.owner_of(taken)
    assert int(book.client.view1("balanceOf", book.member.address)) == 1
    # Revoked twice: it no longer exists. The supply counter keeps its serial.
    with reverts("CouponUnknownCoupon", taken):
        book.call(book.issuer, "revokeUnused", taken)
    assert book.client.campaign(cid).granted == 2
    # A suspended issuer cannot revoke.
    other = book.grant(cid)
    book.chain.op(book.chain.registry, "suspendMerchant", book.issuer.merchant_id)
    with reverts("CouponMerchantNotActive", book.issuer.merchant_id):
        book.call(book.issuer, "revokeUnused", other)


def test_coupon_book_fits_the_eip170_code_size_limit(book: Book) -> None:
    assert len(book.chain.gateway.code(book.client.address)) <= 24_576
