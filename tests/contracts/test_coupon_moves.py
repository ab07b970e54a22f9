"""CouponBook.moveCoupons on a real anvil (issue 12's claim): a custodial account's coupons
move to the member's wallet - non-transferable and used ones too, each with its ERC-721
``Transfer`` - authorised by the custodial key's EIP-712 signature and relayed by an alliance
merchant; every refusal is its own error and changes nothing; a replay fails."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.contracts.compiler import Artifact, compile_sources
from ledger.coupons.clients import CouponBookClient
from ledger.coupons.signing import coupon_move_typed_data

from .conftest import DAY, FIXTURES, Chain, Merchant
from .test_coupons import Book, _deploy_hostile, ref, reverts


@pytest.fixture(name="book")
def book_fixture(chain: Chain) -> Book:
    address = chain.clearing.view1("couponBook")
    client = CouponBookClient(chain.gateway, chain.artifacts["CouponBook"].abi, str(address))
    return Book(chain, client, chain.admit(symbol="ISS"), chain.admit(symbol="ACC"),
                chain.admit(symbol="OUT"), Account.create())


@pytest.fixture(name="hostile_artifact", scope="module")
def hostile_artifact_fixture() -> Artifact:
    src = (FIXTURES / "HostileReceiver.sol").read_text()
    return compile_sources({"tests/contracts/fixtures/HostileReceiver.sol": src}
                           )["HostileReceiver"]


def sign_move(b: Book, key: LocalAccount, frm: str, to: str, ids: list[int],
              deadline: int) -> bytes:
    typed = coupon_move_typed_data(chain_id=b.chain.gateway.chain_id, book=b.client.address,
                                   registry=b.chain.registry.address, from_=frm, to=to,
                                   ids=ids, deadline=deadline)
    return bytes(Account.sign_typed_data(key.key, full_message=typed).signature)


def move(b: Book, ids: list[int], to: str, *, relayer: Merchant | None = None,
         signer: LocalAccount | None = None, frm: str | None = None,
         deadline: int | None = None) -> dict[str, Any]:
    frm = frm or b.member.address
    deadline = deadline if deadline is not None else b.chain.now() + 600
    sig = sign_move(b, signer or b.member, frm, to, ids, deadline)
    return b.call(relayer or b.acceptor, "moveCoupons", (frm, to, ids, deadline), sig)


def _holdings(b: Book, *ids: int) -> tuple[object, ...]:
    wallet_count = int(b.client.view1("balanceOf", b.member.address))
    return tuple(b.client.owner_of(i) for i in ids) + (wallet_count,)


def test_a_move_takes_non_transferable_and_used_coupons_with_their_transfers(
        book: Book) -> None:
    fixed = book.create(transferable=False, per_member_cap=2)
    free = book.create()
    t1, t2, t3 = book.grant(fixed), book.grant(fixed), book.grant(free)
    book.redeem(t2)  # used: it moves too, and stays used
    wallet = Account.create().address
    receipt = move(book, [t1, t2, t3], wallet, relayer=book.outsider)
    assert [book.client.owner_of(t) for t in (t1, t2, t3)] == [wallet] * 3
    assert int(book.client.view1("balanceOf", book.member.address)) == 0
    assert int(book.client.view1("balanceOf", wallet)) == 3
    assert book.client.is_used(t2) and not book.client.is_used(t1)
    logs = [(n, dict(a)) for n, a, _ in book.client.decode_logs(receipt["logs"])]
    assert logs == [("Transfer", {"from": book.member.address, "to": wallet, "tokenId": t})
                    for t in (t1, t2, t3)] + [
        ("CouponsMoved", {"from": book.member.address, "to": wallet, "count": 3})]
    # The per-member cap follows the member: the wallet has had its 2 of the capped campaign.
    assert int(book.client.view1("grantedTo", fixed, wallet)) == 2
    assert int(book.client.view1("grantedTo", fixed, book.member.address)) == 0
    with reverts("CouponMemberCapExceeded", fixed, wallet, 2):
        book.grant(fixed, wallet)
    # A moved coupon is the wallet's to use: the wallet's key signs its redemption.
    t4 = book.grant(free)
    owner = Account.create()
    move(book, [t4], owner.address)
    book.member = owner
    book.redeem(t4, order="o-2")
    assert book.client.is_used(t4) and book.client.owner_of(t4) == owner.address


def test_every_move_refusal_is_its_own_error_and_changes_nothing(book: Book) -> None:
    cid = book.create(transferable=False)
    t1, t2 = book.grant(cid), book.grant(cid)
    other = book.grant(cid, Account.create().address)
    wallet = Account.create().address
    now = book.chain.now()
    before = _holdings(book, t1, t2, other)
    stranger = Account.create()
    with reverts("PointsInvalidSignature", book.member.address):
        move(book, [t1, t2], wallet, signer=stranger)
    with reverts("PointsSignatureExpired", now - 1):
        move(book, [t1, t2], wallet, deadline=now - 1)
    with reverts("PointsDeadlineTooFar"):
        move(book, [t1, t2], wallet, deadline=now + 8 * DAY)
    with reverts("CouponInvalidRecipient", "0x" + "00" * 20):
        move(book, [t1], "0x" + "00" * 20)
    with reverts("CouponInvalidRecipient", book.member.address):
        move(book, [t1], book.member.address)
    with reverts("CouponNotHeld", other, book.member.address):
        move(book, [t1, other], wallet)
    with reverts("CouponNotHeld", t2 + 1000, book.member.address):
        move(book, [t2 + 1000], wallet)
    with reverts("CouponInvalidMoveSize", 0):
        move(book, [], wallet)
    # The relayer must be an active merchant account: not the member, not a suspended one.
    deadline = now + 600
    sig = sign_move(book, book.member, book.member.address, wallet, [t1], deadline)
    member = book.chain.sender(book.member)
    with reverts("CouponUnauthorized", book.member.address, 0):
        member.transact(to=book.client.address, data=book.client.encode(
            "moveCoupons", (book.member.address, wallet, [t1], deadline), sig), gas=500_000)
    book.chain.op(book.chain.registry, "suspendMerchant", book.outsider.merchant_id)
    with reverts("CouponMerchantNotActive", book.outsider.merchant_id):
        move(book, [t1], wallet, relayer=book.outsider)
    assert _holdings(book, t1, t2, other) == before
    # The signature binds the list: a relayer cannot add a coupon to a signed move.
    with reverts("PointsInvalidSignature", book.member.address):
        book.call(book.acceptor, "moveCoupons",
                  (book.member.address, wallet, [t1, t2], deadline), sig)
    # Signed once, relayed twice: the second finds the coupons gone.
    book.call(book.acceptor, "moveCoupons", (book.member.address, wallet, [t1], deadline), sig)
    with reverts("CouponNotHeld", t1, book.member.address):
        book.call(book.acceptor, "moveCoupons", (book.member.address, wallet, [t1], deadline),
                  sig)
    assert book.client.owner_of(t1) == wallet and book.client.owner_of(t2) == book.member.address


def test_a_move_to_a_contract_calls_no_receiver_hook(book: Book,
                                                    hostile_artifact: Artifact) -> None:
    cid = book.create()
    t = book.grant(cid)
    hostile = _deploy_hostile(book, hostile_artifact)
    r, sig = book.sign(t, book.acceptor.merchant_id, ref("o"), 5000)
    # Armed to redeem on receipt: a hook call would re-enter (and fail the whole move).
    book.chain.op(hostile, "arm", book.client.address, book.client.encode("redeem", r, sig))
    move(book, [t], hostile.address)
    assert book.client.owner_of(t) == hostile.address
    assert int(hostile.view1("received")) == 0 and not book.client.is_used(t)
