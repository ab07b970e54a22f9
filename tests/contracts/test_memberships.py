"""MembershipCards on a real anvil: a card per member per merchant (or alliance-wide), issued
by the merchant's account against a payment reference used once, renewed later, expiring
with chain time, and never transferable; every refusal a custom error with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from ledger.chain.sender import TransactionSender
from ledger.errors import ContractRevertError
from ledger.memberships.clients import MembershipCardsClient, card_id
from ledger.memberships.kinds import GAS_ISSUE, GAS_RENEW

from .conftest import DAY, Chain, Merchant


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
class Cards:
    chain: Chain
    client: MembershipCardsClient
    merchant: Merchant
    other: Merchant
    member: LocalAccount

    def call(self, sender: TransactionSender, fn: str, *args: object) -> dict[str, Any]:
        return sender.transact(to=self.client.address, data=self.client.encode(fn, *args),
                               gas=1_000_000)

    def issue(self, m: Merchant | None = None, *, member: str | None = None, tier: int = 1,
              expires_at: int | None = None, payment: str = "pay-1") -> tuple[int, Any]:
        m = m or self.merchant
        receipt = self.call(m.sender, "issue", m.merchant_id, member or self.member.address,
                            tier, expires_at or self.chain.now() + 365 * DAY, ref(payment))
        (tid,) = [int(a["tokenId"]) for n, a, _ in self.client.decode_logs(receipt["logs"])
                  if n == "CardIssued"]
        return tid, receipt

    def names(self, receipt: Any) -> list[str]:
        return [n for n, _, _ in self.client.decode_logs(receipt["logs"])]


@pytest.fixture(scope="module")
def cards_contract(chain: Chain) -> MembershipCardsClient:
    art = chain.artifacts["MembershipCards"]
    receipt = chain.admin.transact(to=None, data=chain.gateway.encode_deploy(
        art.abi, art.bytecode, [chain.registry.address]))
    return MembershipCardsClient(chain.gateway, art.abi, str(receipt["contractAddress"]))


@pytest.fixture(scope="module")
def merchants(chain: Chain) -> tuple[Merchant, Merchant]:
    return chain.admit(symbol="CAFE"), chain.admit(symbol="BOOK")


@pytest.fixture
def cards(chain: Chain, cards_contract: MembershipCardsClient,
          merchants: tuple[Merchant, Merchant]) -> Cards:
    m, o = merchants
    # Fresh senders: nonces follow the chain after each test's revert.
    m.sender = TransactionSender(chain.gateway, m.account.key)
    o.sender = TransactionSender(chain.gateway, o.account.key)
    return Cards(chain, cards_contract, m, o, Account.create())


def test_issue_mints_a_locked_card_with_its_tier_and_expiry(cards: Cards) -> None:
    expires = cards.chain.now() + 30 * DAY
    tid, receipt = cards.issue(tier=2, expires_at=expires)
    assert tid == card_id(cards.merchant.merchant_id, cards.member.address)
    assert cards.client.owner_of(tid) == cards.member.address
    c = cards.client.card(tid)
    assert (c.merchant_id, c.tier, c.expires_at) == (cards.merchant.merchant_id, 2, expires)
    assert cards.client.is_valid(tid)
    assert cards.client.view1("locked", tid) is True
    assert cards.client.view1("supportsInterface", bytes.fromhex("b45a3c0e")) is True
    assert cards.names(receipt) == ["Transfer", "Locked", "CardIssued"]
    assert cards.client.payment_ref_used(cards.merchant.merchant_id, ref("pay-1"))


def test_card_is_not_transferable_nor_approvable(cards: Cards) -> None:
    tid, _ = cards.issue()
    holder = cards.chain.sender(cards.member)
    to = Account.create().address
    for fn, args in (("transferFrom", (cards.member.address, to, tid)),
                     ("safeTransferFrom", (cards.member.address, to, tid)),
                     ("approve", (to, tid))):
        with reverts("MembershipNonTransferable", tid):
            cards.call(holder, fn, *args)
    with reverts("MembershipNonTransferable", 0):
        cards.call(holder, "setApprovalForAll", to, True)
    assert cards.client.owner_of(tid) == cards.member.address


def test_payment_ref_used_twice_is_refused(cards: Cards) -> None:
    tid, _ = cards.issue(payment="order-77")
    other_member = Account.create().address
    with reverts("MembershipPaymentRefUsed", cards.merchant.merchant_id, ref("order-77")):
        cards.issue(member=other_member, payment="order-77")
    with reverts("MembershipPaymentRefUsed"):
        cards.call(cards.merchant.sender, "renew", tid, 1, cards.chain.now() + 800 * DAY,
                   ref("order-77"))
    assert cards.client.view1("balanceOf", other_member) == 0
    # Another merchant's references are its own.
    cards.issue(cards.other, member=other_member, payment="order-77")


def test_second_card_at_one_merchant_is_refused_but_another_merchant_may_issue(
        cards: Cards) -> None:
    tid, _ = cards.issue()
    with reverts("MembershipCardExists", tid):
        cards.issue(payment="pay-2")
    tid2, _ = cards.issue(cards.other, payment="pay-2")
    assert tid2 != tid and cards.client.view1("balanceOf", cards.member.address) == 2


def test_card_expires_when_chain_time_passes_and_renewal_extends_it(cards: Cards) -> None:
    now = cards.chain.now()
    tid, _ = cards.issue(expires_at=now + 10 * DAY)
    cards.chain.travel(10 * DAY + 10)
    assert not cards.client.is_valid(tid)
    # Renewal must move the expiry later than now (the old expiry is past).
    with reverts("MembershipInvalidExpiry"):
        cards.call(cards.merchant.sender, "renew", tid, 1, now + 10 * DAY + 5, ref("renew-0"))
    new_expiry = cards.chain.now() + 365 * DAY
    receipt = cards.call(cards.merchant.sender, "renew", tid, 3, new_expiry, ref("renew-1"))
    assert cards.names(receipt) == ["CardRenewed"]
    c = cards.client.card(tid)
    assert (c.tier, c.expires_at) == (3, new_expiry)
    assert cards.client.is_valid(tid)


def test_renewal_cannot_shorten_a_valid_card(cards: Cards) -> None:
    expiry = cards.chain.now() + 100 * DAY
    tid, _ = cards.issue(expires_at=expiry)
    with reverts("MembershipInvalidExpiry", expiry):
        cards.call(cards.merchant.sender, "renew", tid, 1, expiry, ref("renew"))
    assert not cards.client.payment_ref_used(cards.merchant.merchant_id, ref("renew"))


def test_only_the_merchants_active_account_issues_and_renews(cards: Cards) -> None:
    m = cards.merchant
    with reverts("MembershipUnauthorized", cards.other.account.address, m.merchant_id):
        cards.call(cards.other.sender, "issue", m.merchant_id, cards.member.address, 1,
                   cards.chain.now() + DAY, ref("x"))
    tid, _ = cards.issue()
    with reverts("MembershipUnauthorized"):
        cards.call(cards.other.sender, "renew", tid, 1, cards.chain.now() + 900 * DAY, ref("y"))
    cards.chain.op(cards.chain.registry, "suspendMerchant", m.merchant_id)
    with reverts("MembershipMerchantNotActive", m.merchant_id):
        cards.issue(member=Account.create().address, payment="z")


def test_alliance_wide_card_is_the_operators(cards: Cards) -> None:
    with reverts("MembershipUnauthorized", cards.merchant.account.address, 0):
        cards.call(cards.merchant.sender, "issue", 0, cards.member.address, 1,
                   cards.chain.now() + DAY, ref("a"))
    receipt = cards.call(cards.chain.operator, "issue", 0, cards.member.address, 1,
                         cards.chain.now() + DAY, ref("a"))
    assert "CardIssued" in cards.names(receipt)
    assert cards.client.card(card_id(0, cards.member.address)).merchant_id == 0


@pytest.mark.parametrize(("tier", "days", "payment", "error"), [
    (0, 10, "p", "MembershipInvalidTier"),
    (256, 10, "p", "MembershipInvalidTier"),
    (1, 0, "p", "MembershipInvalidExpiry"),
    (1, 10, "", "MembershipInvalidPaymentRef"),
])
def test_bad_terms_are_refused_with_nothing_minted(cards: Cards, tier: int, days: int,
                                                   payment: str, error: str) -> None:
    pref = ref(payment) if payment else b"\0" * 32
    with reverts(error):
        cards.call(cards.merchant.sender, "issue", cards.merchant.merchant_id,
                   cards.member.address, tier, cards.chain.now() + days * DAY, pref)
    assert cards.client.view1("balanceOf", cards.member.address) == 0


def test_unknown_card_reads_and_renewals_are_refused(cards: Cards) -> None:
    tid = card_id(cards.merchant.merchant_id, cards.member.address)
    with reverts("MembershipUnknownCard", tid):
        cards.client.card(tid)
    with reverts("MembershipUnknownCard", tid):
        cards.call(cards.merchant.sender, "renew", tid, 1, cards.chain.now() + DAY, ref("r"))
    assert not cards.client.is_valid(tid)


def test_issue_and_renew_gas_stay_under_the_outbox_bounds(cards: Cards) -> None:
    tid, receipt = cards.issue()
    renewed = cards.call(cards.merchant.sender, "renew", tid, 2, cards.chain.now() + 900 * DAY,
                         ref("r2"))
    assert int(receipt["gasUsed"]) < GAS_ISSUE
    assert int(renewed["gasUsed"]) < GAS_RENEW
