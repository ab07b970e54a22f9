"""PointProgram and AllianceRegistry behaviour on a real anvil."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.chain.sender import TransactionSender
from ledger.contracts.compiler import Artifact
from ledger.errors import ContractRevertError
from ledger.merchants.clients import ProgramConfig
from ledger.points.clients import Conversion, IssueItem, Redemption
from ledger.signing import cancel_nonces_typed_data, convert_typed_data, redeem_typed_data

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


def sign(member: LocalAccount, chain: Chain, m: Merchant, r: Redemption, *,
         chain_id: int | None = None, program: str | None = None,
         registry: str | None = None) -> bytes:
    typed = redeem_typed_data(chain_id=chain_id or chain.gateway.chain_id,
                              program=program or m.program.address,
                              registry=registry or chain.registry.address, member=r.member,
                              amount=r.amount, merchant_id=r.merchant_id, order_ref=r.order_ref,
                              nonce=r.nonce, deadline=r.deadline)
    return bytes(Account.sign_typed_data(member.key, full_message=typed).signature)


# ---------------------------------------------------------------------- registry and roles


def test_only_the_operator_admits_suspends_and_sets_rates(chain: Chain) -> None:
    m = chain.admit()
    reg = chain.registry
    for fn, args in [("admitMerchant", (Account.create().address, Account.create().address,
                                        b"\0" * 32)),
                     ("suspendMerchant", (m.merchant_id,)), ("setRate", (m.merchant_id, 9))]:
        with reverts("AccessControlUnauthorizedAccount"):
            m.sender.transact(to=reg.address, data=reg.encode(fn, *args), gas=500_000)
    with reverts("FactoryUnauthorized"):
        m.sender.transact(to=chain.factory.address, data=chain.factory.encode(
            "createProgram", m.merchant_id, "x", "X", ProgramConfig().as_tuple()),
            gas=1_000_000)
    assert reg.rate_of(m.merchant_id) == 1


def test_registry_rejects_reused_accounts_zero_rates_and_bad_transitions(chain: Chain) -> None:
    m = chain.admit()
    reg, op = chain.registry, chain.operator
    with reverts("RegistryInvalidAccount", m.account.address):
        chain.gov(reg, "admitMerchant", m.account.address, Account.create().address,
                  b"\0" * 32)
    with reverts("RegistryInvalidRate", 0):
        chain.gov(reg, "setRate", m.merchant_id, 0)
    with reverts("RegistryInvalidStatus"):
        chain.gov(reg, "reinstateMerchant", m.merchant_id)
    with reverts("RegistryUnknownMerchant", 999):
        op.transact(to=reg.address, data=reg.encode("suspendMerchant", 999), gas=500_000)
    with reverts("RegistryProgramAlreadySet", m.merchant_id):
        chain.gov(chain.factory, "createProgram", m.merchant_id, "x", "X",
                  ProgramConfig().as_tuple())
    with reverts("RegistryNotFactory"):
        op.transact(to=reg.address, data=reg.encode("registerProgram", m.merchant_id,
                                                     m.account.address), gas=500_000)
    with reverts("RegistryFactoryAlreadySet"):
        chain.gov(reg, "setFactory", m.account.address)


def test_program_lives_at_its_predicted_address_and_cannot_be_initialised_again(
        chain: Chain) -> None:
    m = chain.admit()
    assert chain.factory.program_address(m.merchant_id) == m.program.address
    assert m.program.merchant_id() == m.merchant_id
    with reverts("InvalidInitialization"):
        chain.operator.transact(to=m.program.address, data=m.program.encode(
            "initialize", chain.registry.address, 77, "x", "X", (86400, 0, 0)), gas=500_000)


@pytest.mark.parametrize("config", [(600, 3, 7), (30 * DAY, 1, 367), (DAY, 601, 7)])
def test_factory_rejects_configs_that_cannot_work(chain: Chain,
                                                  config: tuple[int, int, int]) -> None:
    mid = chain.admit_account(Account.create())
    with reverts("PointsInvalidConfig"):
        chain.gov(chain.factory, "createProgram", mid, "x", "X", config)


# ---------------------------------------------------------------------- issue


def test_issue_emits_events_that_rebuild_the_balance(chain: Chain) -> None:
    m = chain.admit()
    member = Account.create().address
    receipt = m.call("issue", member, 250, ref("o-1"))
    events = {n: a for n, a, _ in m.program.decode_logs(receipt["logs"])}
    assert events["Transfer"]["to"] == member and events["Transfer"]["value"] == 250
    assert int(events["Transfer"]["from"], 16) == 0
    assert events["PointsIssued"]["member"] == member
    assert events["PointsIssued"]["amount"] == 250
    assert events["PointsIssued"]["orderRef"] == ref("o-1")
    assert m.program.balance_of(member) == 250 and m.program.total_supply() == 250
    assert m.program.view1("decimals") == 0


def test_issue_rejects_duplicate_order_ref(chain: Chain) -> None:
    m = chain.admit()
    member = Account.create().address
    m.call("issue", member, 5, ref("dup"))
    with reverts("PointsOrderRefUsed", ref("dup")):
        m.call("issue", member, 7, ref("dup"))
    assert m.program.balance_of(member) == 5


def test_batch_with_a_duplicate_inside_changes_nothing(chain: Chain) -> None:
    m = chain.admit()
    a, b = Account.create().address, Account.create().address
    items = [IssueItem(a, 5, ref("x1")).as_tuple(), IssueItem(b, 6, ref("x1")).as_tuple()]
    with reverts("PointsOrderRefUsed"):
        m.call("issueBatch", items)
    assert m.program.balance_of(a) == 0 and m.program.total_supply() == 0
    with reverts("PointsEmptyBatch"):
        m.call("issueBatch", [])


def test_batch_of_200_members_lands_and_supply_equals_balances(chain: Chain) -> None:
    m = chain.admit()
    members = [Account.create().address for _ in range(200)]
    items = [IssueItem(x, i + 1, ref(f"b{i}")).as_tuple() for i, x in enumerate(members)]
    m.sender.transact(to=m.program.address, data=m.program.encode("issueBatch", items))
    assert sum(m.program.balance_of(x) for x in members) == m.program.total_supply() == 20100


@pytest.mark.parametrize("amount", [0, 2**48])
def test_issue_rejects_zero_and_too_large_amounts(chain: Chain, amount: int) -> None:
    m = chain.admit()
    with reverts("PointsInvalidAmount", amount):
        m.call("issue", Account.create().address, amount, ref("a"))


def test_issue_rejects_the_zero_member(chain: Chain) -> None:
    m = chain.admit()
    with reverts("PointsInvalidMember"):
        m.call("issue", "0x" + "00" * 20, 1, ref("z"))


def test_only_the_merchants_account_can_issue(chain: Chain) -> None:
    m, other = chain.admit(), chain.admit()
    with reverts("PointsUnauthorized", other.account.address, m.merchant_id):
        other.sender.transact(to=m.program.address, data=m.program.encode(
            "issue", Account.create().address, 1, ref("u")), gas=500_000)


def test_suspended_merchant_cannot_issue_until_reinstated(chain: Chain) -> None:
    m = chain.admit()
    reg = chain.registry
    chain.operator.transact(to=reg.address, data=reg.encode("suspendMerchant", m.merchant_id))
    with reverts("RegistryInvalidStatus", m.merchant_id, 2):
        m.call("issue", Account.create().address, 1, ref("s1"))
    chain.gov(reg, "reinstateMerchant", m.merchant_id)
    m.call("issue", Account.create().address, 1, ref("s2"))


def test_points_cannot_be_transferred_or_approved(chain: Chain) -> None:
    m = chain.admit()
    member = Account.create()
    m.call("issue", member.address, 10, ref("t"))
    holder = chain.sender(member)
    for fn, args in [("transfer", (Account.create().address, 1)),
                     ("approve", (Account.create().address, 1))]:
        with reverts("PointsNonTransferable"):
            holder.transact(to=m.program.address, data=m.program.encode(fn, *args),
                            gas=200_000)
    assert m.program.balance_of(member.address) == 10


# ---------------------------------------------------------------------- reverse


def test_reverse_is_bounded_by_what_the_order_has_left(chain: Chain) -> None:
    m = chain.admit()
    member = Account.create().address
    m.call("issue", member, 100, ref("r"))
    m.call("reverse", ref("r"), 30)
    m.call("reverse", ref("r"), 50)
    with reverts("PointsReverseExceedsIssued", ref("r"), 20, 21):
        m.call("reverse", ref("r"), 21)
    m.call("reverse", ref("r"), 20)
    assert m.program.balance_of(member) == 0 and m.program.order_of(ref("r"))[1] == 0
    with reverts("PointsUnknownOrder", ref("nope")):
        m.call("reverse", ref("nope"), 1)
    with reverts("PointsInvalidAmount", 0):
        m.call("reverse", ref("r"), 0)


def test_another_merchant_cannot_reverse_an_order(chain: Chain) -> None:
    m, other = chain.admit(), chain.admit()
    m.call("issue", Account.create().address, 10, ref("o"))
    with reverts("PointsUnauthorized"):
        other.sender.transact(to=m.program.address, data=m.program.encode(
            "reverse", ref("o"), 1), gas=500_000)


def test_reverse_after_the_member_spent_fails_and_changes_nothing(chain: Chain) -> None:
    m = chain.admit()
    member = Account.create()
    m.call("issue", member.address, 50, ref("spent"))
    r = Redemption(member.address, 40, m.merchant_id, ref("sale"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    with reverts("PointsInsufficientBalance", member.address, 10, 50):
        m.call("reverse", ref("spent"), 50)
    assert m.program.order_of(ref("spent"))[1] == 50
    assert m.program.balance_of(member.address) == 10


# ---------------------------------------------------------------------- redeem


def _funded(chain: Chain, points: int = 100) -> tuple[Merchant, LocalAccount]:
    m = chain.admit()
    member = Account.create()
    m.call("issue", member.address, points, ref("fund"))
    return m, member


def test_redeem_digest_matches_eip712_and_burns_points(chain: Chain) -> None:
    m, member = _funded(chain)
    r = Redemption(member.address, 30, m.merchant_id, ref("sale-1"), 0, chain.now() + 600)
    typed = redeem_typed_data(chain_id=chain.gateway.chain_id, program=m.program.address,
                              registry=chain.registry.address, member=r.member,
                              amount=r.amount, merchant_id=r.merchant_id,
                              order_ref=r.order_ref, nonce=r.nonce, deadline=r.deadline)
    signed = Account.sign_typed_data(member.key, full_message=typed)
    assert bytes(signed.message_hash) == m.program.redemption_digest(r)
    receipt = m.call("redeem", r.as_tuple(), bytes(signed.signature))
    names = [n for n, _, _ in m.program.decode_logs(receipt["logs"])]
    assert "PointsRedeemed" in names and "Transfer" in names
    assert m.program.balance_of(member.address) == 70 and m.program.nonce_of(member.address) == 1


def test_redeem_rejects_a_replayed_signature(chain: Chain) -> None:
    m, member = _funded(chain)
    r = Redemption(member.address, 10, m.merchant_id, ref("s1"), 0, chain.now() + 600)
    sig = sign(member, chain, m, r)
    m.call("redeem", r.as_tuple(), sig)
    with reverts("PointsOrderRefUsed"):
        m.call("redeem", r.as_tuple(), sig)
    r2 = Redemption(member.address, 10, m.merchant_id, ref("s2"), 0, chain.now() + 600)
    # Nonces are unordered now: the replayed signature's nonce 0 is the one already used.
    with reverts("PointsNonceUsed", member.address, 0):
        m.call("redeem", r2.as_tuple(), sig)


def test_redeem_rejects_an_expired_deadline(chain: Chain) -> None:
    m, member = _funded(chain)
    r = Redemption(member.address, 10, m.merchant_id, ref("late"), 0, chain.now() + 60)
    sig = sign(member, chain, m, r)
    chain.travel(120)
    with reverts("PointsSignatureExpired", r.deadline):
        m.call("redeem", r.as_tuple(), sig)


@pytest.mark.parametrize("tamper", ["amount", "order", "chain", "program"])
def test_redeem_rejects_a_signature_over_something_else(chain: Chain, tamper: str) -> None:
    m, member = _funded(chain)
    r = Redemption(member.address, 10, m.merchant_id, ref("t"), 0, chain.now() + 600)
    if tamper == "chain":
        sig = sign(member, chain, m, r, chain_id=1)
    elif tamper == "program":
        sig = sign(member, chain, m, r, program=chain.registry.address)
    else:
        sig = sign(member, chain, m, r)
        r = Redemption(r.member, 11 if tamper == "amount" else 10, r.merchant_id,
                       ref("t2") if tamper == "order" else r.order_ref, 0, r.deadline)
    with reverts("PointsInvalidSignature", member.address):
        m.call("redeem", r.as_tuple(), sig)
    assert m.program.balance_of(member.address) == 100


def test_redeem_relayed_by_another_merchant_than_signed_is_rejected(chain: Chain) -> None:
    m, member = _funded(chain)
    other = chain.admit()
    r = Redemption(member.address, 10, m.merchant_id, ref("y"), 0, chain.now() + 600)
    with reverts("PointsUnauthorized", other.account.address, m.merchant_id):
        other.sender.transact(to=m.program.address, data=m.program.encode(
            "redeem", r.as_tuple(), sign(member, chain, m, r)), gas=500_000)
    assert m.program.balance_of(member.address) == 100


def test_redeem_more_than_the_balance_fails(chain: Chain) -> None:
    m, member = _funded(chain, 10)
    r = Redemption(member.address, 11, m.merchant_id, ref("big"), 0, chain.now() + 600)
    with reverts("PointsInsufficientBalance", member.address, 10, 11):
        m.call("redeem", r.as_tuple(), sign(member, chain, m, r))


def test_a_contract_wallet_can_authorise_a_redemption(chain: Chain,
                                                      wallet_artifact: Artifact) -> None:
    m = chain.admit()
    owner = Account.create()
    receipt = chain.operator.transact(to=None, data=chain.gateway.encode_deploy(
        wallet_artifact.abi, wallet_artifact.bytecode, [owner.address]))
    wallet = str(receipt["contractAddress"])
    m.call("issue", wallet, 40, ref("w"))
    r = Redemption(wallet, 15, m.merchant_id, ref("w-sale"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(owner, chain, m, r))
    assert m.program.balance_of(wallet) == 25
    stranger = Account.create()
    r2 = Redemption(wallet, 5, m.merchant_id, ref("w-sale-2"), 1, chain.now() + 600)
    with reverts("PointsInvalidSignature", wallet):
        m.call("redeem", r2.as_tuple(), sign(stranger, chain, m, r2))


# ---------------------------------------------------------------------- expiry and pending

EXPIRING = ProgramConfig(period_length=30 * DAY, expiry_periods=2, max_pending_days=14)


def test_points_expire_after_their_window_without_a_transaction(chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    member = Account.create().address
    m.call("issue", member, 100, ref("p0"))
    period0 = m.program.view1("currentPeriod")
    chain.travel(30 * DAY)
    m.call("issue", member, 10, ref("p1"))
    assert m.program.lots_of(member) == [(period0, 100), (period0 + 1, 10)]
    chain.travel(60 * DAY)  # period0 + 3: the first lot is past p + 2
    assert m.program.view1("currentPeriod") == period0 + 3
    # Spendable drops without a transaction; the ERC-20 balance follows the logs, which say
    # nothing until the expired lot is swept.
    assert m.program.spendable_of(member) == 10 and m.program.expired_of(member) == 100
    assert m.program.balance_of(member) == 110 == m.program.total_supply()
    assert m.program.lots_of(member) == [(period0 + 1, 10)]
    m.call("sweepExpired", [member])
    assert m.program.balance_of(member) == 10 == m.program.total_supply()
    assert m.program.expired_of(member) == 0


def test_spending_takes_the_soonest_expiring_lot_first_and_reports_expiry(chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    member = Account.create()
    m.call("issue", member.address, 100, ref("a"))
    p0 = m.program.view1("currentPeriod")
    chain.travel(30 * DAY)
    m.call("issue", member.address, 50, ref("b"))
    chain.travel(30 * DAY)
    m.call("issue", member.address, 20, ref("c"))
    r = Redemption(member.address, 120, m.merchant_id, ref("spend"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    assert m.program.lots_of(member.address) == [(p0 + 1, 30), (p0 + 2, 20)]
    chain.travel(30 * DAY)  # lot p0+1 still lives (until the end of p0+3)
    assert m.program.spendable_of(member.address) == 50
    chain.travel(30 * DAY)  # now p0+4: lot p0+1 expired
    assert m.program.spendable_of(member.address) == 20
    assert m.program.balance_of(member.address) == 50
    r = Redemption(member.address, 5, m.merchant_id, ref("spend2"), 1, chain.now() + 600)
    receipt = m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    expired = [a for n, a, _ in m.program.decode_logs(receipt["logs"]) if n == "PointsExpired"]
    assert expired == [{"member": member.address, "period": p0 + 1, "amount": 30}]
    assert m.program.balance_of(member.address) == 15 == m.program.total_supply()


def test_pending_points_become_spendable_on_their_release_day(chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    member = Account.create()
    m.call("issue", member.address, 30, ref("now"))
    m.call("issuePending", member.address, 70, ref("later"), chain.now() + 7 * DAY)
    assert m.program.spendable_of(member.address) == 30
    assert m.program.pending_of(member.address) == 70
    assert m.program.balance_of(member.address) == 100  # what the Transfer logs say
    assert m.program.total_supply() == 100 and m.program.view1("pendingSupply") == 70
    r = Redemption(member.address, 31, m.merchant_id, ref("too-soon"), 0, chain.now() + 600)
    with reverts("PointsInsufficientBalance", member.address, 30, 31):
        m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    chain.travel(8 * DAY)
    assert m.program.spendable_of(member.address) == 100 == m.program.total_supply()
    assert m.program.pending_of(member.address) == 0
    r = Redemption(member.address, 100, m.merchant_id, ref("all"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    assert m.program.balance_of(member.address) == 0 == m.program.total_supply()


def test_pending_release_beyond_the_refund_window_is_rejected(chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    with reverts("PointsInvalidRelease"):
        m.call("issuePending", Account.create().address, 1, ref("far"),
               chain.now() + 20 * DAY)


def test_reversing_a_pending_order_takes_the_pending_points(chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    member = Account.create().address
    m.call("issue", member, 10, ref("spendable"))
    m.call("issuePending", member, 40, ref("refundable"), chain.now() + 5 * DAY)
    m.call("reverse", ref("refundable"), 40)
    assert m.program.pending_of(member) == 0 and m.program.balance_of(member) == 10
    assert m.program.view1("pendingSupply") == 0 and m.program.total_supply() == 10
    chain.travel(6 * DAY)
    assert m.program.balance_of(member) == 10


def test_a_member_holds_at_most_32_pending_orders(chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    member = Account.create().address
    release = chain.now() + 3 * DAY
    items = [IssueItem(member, 1, ref(f"q{i}"), release).as_tuple() for i in range(32)]
    m.call("issueBatch", items)
    with reverts("PointsTooManyPending", member):
        m.call("issuePending", member, 1, ref("q32"), release)


def test_an_emptied_account_works_again_after_many_periods(chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    member = Account.create()
    for i in range(5):
        m.call("issue", member.address, 10 + i, ref(f"e{i}"))
        chain.travel(30 * DAY)
    live = m.program.spendable_of(member.address)
    assert live == 13 + 14  # the last two periods' lots are still inside the window
    # Issuing into periods 3 and 4 pruned the expired lots of periods 0 and 1 on the way.
    assert m.program.expired_of(member.address) == 12
    assert m.program.balance_of(member.address) == live + 12 == m.program.total_supply()
    r = Redemption(member.address, live, m.merchant_id, ref("empty"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    assert m.program.balance_of(member.address) == 0 and m.program.lots_of(member.address) == []
    m.call("issue", member.address, 9, ref("again"))
    assert m.program.balance_of(member.address) == 9 == m.program.total_supply()


def test_a_release_exactly_one_window_ahead_is_accepted_at_any_time_of_day(
        chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    member = Account.create().address
    # Move to 13:00 UTC, where rounding the release up to a whole day crosses the window.
    chain.travel((13 * 3600 - chain.now() % DAY) % DAY or DAY)
    release = chain.now() + 14 * DAY
    m.call("issuePending", member, 25, ref("edge"), release)
    assert m.program.pending_of(member) == 25 and m.program.spendable_of(member) == 0
    assert m.program.view1("pendingSupply") == 25 and m.program.total_supply() == 25
    with reverts("PointsInvalidRelease"):
        m.call("issuePending", member, 1, ref("edge+1"), chain.now() + 14 * DAY + 3600)
    chain.travel(15 * DAY)
    assert m.program.balance_of(member) == 25 == m.program.total_supply()


# ---------------------------------------------------------------------- hardening (issue 8)

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
HOURLY = ProgramConfig(period_length=3600, expiry_periods=600, max_pending_days=1)
DAILY_2 = ProgramConfig(period_length=DAY, expiry_periods=2, max_pending_days=7)


def _balances_from_logs(chain: Chain, program: str) -> dict[str, int]:
    """Every balance as an outside ERC-20 reader rebuilds it: Transfer logs alone."""
    logs = chain.gateway.rpc("eth_getLogs", [{"address": program, "fromBlock": "0x0",
                                              "toBlock": "latest", "topics": [TRANSFER_TOPIC]}])
    out: dict[str, int] = {}
    for log in logs:
        topics = [t if isinstance(t, str) else "0x" + bytes(t).hex() for t in log["topics"]]
        data = log["data"] if isinstance(log["data"], str) else "0x" + bytes(log["data"]).hex()
        frm, to, value = "0x" + topics[1][-40:], "0x" + topics[2][-40:], int(data, 16)
        out[frm] = out.get(frm, 0) - value
        out[to] = out.get(to, 0) + value
    zero = "0x" + "00" * 20
    return {to_checksum_address(k): v for k, v in out.items() if k != zero}


def _gas(receipt: dict[str, object]) -> int:
    return int(str(receipt["gasUsed"]), 0)


def sign_convert(member: LocalAccount, chain: Chain, m: Merchant, c: Conversion) -> bytes:
    typed = convert_typed_data(chain_id=chain.gateway.chain_id, program=m.program.address,
                               registry=chain.registry.address, member=c.member,
                               amount=c.amount, to_merchant_id=c.to_merchant_id,
                               min_out=c.min_out, order_ref=c.order_ref, nonce=c.nonce,
                               deadline=c.deadline)
    return bytes(Account.sign_typed_data(member.key, full_message=typed).signature)


def _convert(chain: Chain, member: LocalAccount, frm: Merchant, to: Merchant, amount: int,
             order: str) -> dict[str, object]:
    c = Conversion(member.address, amount, to.merchant_id, 1, ref(order),
                   frm.program.nonce_of(member.address), chain.now() + 600)
    return to.call_on(frm.program, "convert", c.as_tuple(), sign_convert(member, chain, frm, c))


def test_a_33rd_pending_issue_succeeds_once_earlier_ones_were_released(chain: Chain) -> None:
    m = chain.admit(config=EXPIRING)
    member = Account.create().address
    release = chain.now() + DAY
    m.call("issueBatch", [IssueItem(member, 10, ref(f"q{i}"), release).as_tuple()
                          for i in range(32)])
    chain.travel(10 * DAY)
    m.call("issuePending", member, 10, ref("q32"), chain.now() + DAY)
    assert m.program.pending_of(member) == 10 and m.program.spendable_of(member) == 320
    # Live pending orders still count: 31 more fill the queue again.
    release = chain.now() + 2 * DAY
    m.call("issueBatch", [IssueItem(member, 1, ref(f"r{i}"), release).as_tuple()
                          for i in range(31)])
    with reverts("PointsTooManyPending", member):
        m.call("issuePending", member, 1, ref("r31"), release)


def test_a_conversion_round_trip_does_not_renew_expiry(chain: Chain) -> None:
    a = chain.admit(symbol="A", rate=10, config=DAILY_2)
    b = chain.admit(symbol="B", rate=10, config=DAILY_2)
    member = Account.create()
    a.call("issue", member.address, 100, ref("earn"))
    p0 = a.program.view1("currentPeriod")
    chain.travel(2 * DAY)  # period p0 + 2: the lot's last live period
    receipt = _convert(chain, member, a, b, 100, "a-to-b")
    (into,) = [x for n, x, _ in b.program.decode_logs(receipt["logs"])
               if n == "PointsConvertedIn"]
    assert b.program.lots_of(member.address) == [(into["period"], 100)]
    assert b.program.expiry_of(into["period"]) <= a.program.expiry_of(p0)
    _convert(chain, member, b, a, 100, "b-to-a")
    assert a.program.lots_of(member.address) == [(p0, 100)]
    chain.travel(DAY)  # the points expire when the ones first earned would have
    assert a.program.spendable_of(member.address) == 0


def test_a_conversion_into_a_program_whose_points_never_expire_is_refused(
        chain: Chain) -> None:
    a = chain.admit(symbol="A", rate=10, config=DAILY_2)
    forever = chain.admit(symbol="F", rate=10)
    member = Account.create()
    a.call("issue", member.address, 100, ref("earn"))
    expires = a.program.expiry_of(a.program.view1("currentPeriod"))
    with reverts("PointsConversionOutlivesSource", expires):
        _convert(chain, member, a, forever, 100, "a-to-f")
    assert a.program.spendable_of(member.address) == 100
    # The other way round lands in the target's current lot.
    forever.call("issue", member.address, 50, ref("earn-f"))
    _convert(chain, member, forever, a, 50, "f-to-a")
    assert a.program.lots_of(member.address) == [(a.program.view1("currentPeriod"), 150)]


def test_a_conversion_that_would_arrive_expired_is_refused(chain: Chain) -> None:
    short = chain.admit(symbol="S", rate=10, config=DAILY_2)
    monthly = chain.admit(symbol="M", rate=10, config=EXPIRING)  # lots live 60-90 days
    member = Account.create()
    short.call("issue", member.address, 10, ref("earn"))
    with reverts("PointsConversionOutlivesSource"):
        _convert(chain, member, short, monthly, 10, "s-to-m")


def test_reversing_an_order_whose_lot_expired_takes_nothing_else(chain: Chain) -> None:
    m = chain.admit(config=DAILY_2)
    member = Account.create().address
    m.call("issue", member, 100, ref("old"))
    chain.travel(2 * DAY)
    m.call("issue", member, 40, ref("new"))
    chain.travel(DAY)  # the "old" lot expired
    assert m.program.order_of(ref("old"))[1] == 0
    receipt = m.call("reverse", ref("old"), 100)
    events = [(n, a) for n, a, _ in m.program.decode_logs(receipt["logs"])]
    assert ("PointsReversed", {"member": member, "orderRef": ref("old"), "amount": 100,
                               "burned": 0}) in events
    assert "Transfer" not in [n for n, _ in events]
    assert m.program.spendable_of(member) == 40 and m.program.order_of(ref("new"))[1] == 40
    with reverts("PointsReverseExceedsIssued", ref("old"), 0, 1):
        m.call("reverse", ref("old"), 1)


def test_the_operator_cannot_refund_for_an_active_acceptor(chain: Chain) -> None:
    m, member = _funded(chain)
    r = Redemption(member.address, 40, m.merchant_id, ref("sale"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    with reverts("PointsUnauthorized", chain.operator.address, m.merchant_id):
        chain.op(m.program, "refundRedemption", m.merchant_id, ref("sale"), 40)
    assert m.program.spendable_of(member.address) == 60


def test_a_refund_returns_points_newest_lot_first_up_to_what_each_gave(chain: Chain) -> None:
    m = chain.admit(config=ProgramConfig(period_length=DAY, expiry_periods=1,
                                         max_pending_days=1))
    member = Account.create()
    m.call("issue", member.address, 30, ref("old"))
    p0 = m.program.view1("currentPeriod")
    chain.travel(DAY)
    m.call("issue", member.address, 100, ref("new"))
    r = Redemption(member.address, 100, m.merchant_id, ref("sale"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(member, chain, m, r))  # 30 from p0, 70 from p0 + 1
    assert m.program.lots_of(member.address) == [(p0 + 1, 30)]
    chain.travel(DAY)  # the p0 lot has expired; p0 + 1 lives on
    m.call("refundRedemption", m.merchant_id, ref("sale"), 50)
    assert m.program.lots_of(member.address) == [(p0 + 1, 80)]
    receipt = m.call("refundRedemption", m.merchant_id, ref("sale"), 50)
    expired = [a for n, a, _ in m.program.decode_logs(receipt["logs"]) if n == "PointsExpired"]
    assert expired == [{"member": member.address, "period": p0, "amount": 30}]
    assert m.program.lots_of(member.address) == [(p0 + 1, 100)]
    assert m.program.spendable_of(member.address) == 100
    assert m.program.balance_of(member.address) == 100 == m.program.total_supply()


def test_transfer_logs_rebuild_every_balance_through_pending_release_and_expiry(
        chain: Chain) -> None:
    m = chain.admit(config=DAILY_2)
    members = [Account.create() for _ in range(3)]
    m.call("issue", members[0].address, 100, ref("a0"))
    m.call("issuePending", members[1].address, 50, ref("b0"), chain.now() + DAY)
    m.call("issue", members[2].address, 70, ref("c0"))
    chain.travel(DAY)
    m.call("issue", members[0].address, 5, ref("a1"))
    r = Redemption(members[2].address, 20, m.merchant_id, ref("c-sale"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(members[2], chain, m, r))
    chain.travel(2 * DAY)  # pending released, then the first day's lots expired
    m.call("issuePending", members[1].address, 20, ref("b3"), chain.now() + DAY)

    def check() -> dict[str, int]:
        logs = _balances_from_logs(chain, m.program.address)
        for x in members:
            assert logs.get(x.address, 0) == m.program.balance_of(x.address)
        assert sum(logs.values()) == m.program.total_supply()
        return logs

    before = check()
    assert m.program.expired_of(members[2].address) == 50 and before[members[2].address] == 50
    m.call("sweepExpired", [x.address for x in members])
    after = check()
    for x in members:
        assert after.get(x.address, 0) == (m.program.spendable_of(x.address)
                                           + m.program.pending_of(x.address))
        assert m.program.expired_of(x.address) == 0
    assert after[members[0].address] == 5 and after[members[1].address] == 20
    assert m.program.total_supply() == 25


def test_members_sign_with_unordered_nonces_and_can_cancel_them(chain: Chain) -> None:
    m, member = _funded(chain)
    deadline = chain.now() + 600
    r7 = Redemption(member.address, 10, m.merchant_id, ref("n7"), 7, deadline)
    r3 = Redemption(member.address, 10, m.merchant_id, ref("n3"), 3, deadline)
    s7, s3 = sign(member, chain, m, r7), sign(member, chain, m, r3)
    m.call("redeem", r7.as_tuple(), s7)  # out of order: both work
    m.call("redeem", r3.as_tuple(), s3)
    assert m.program.nonce_bitmap(member.address, 0) == (1 << 7) | (1 << 3)
    assert m.program.free_nonce(member.address) == 0
    # Cancelled directly by the member...
    r0 = Redemption(member.address, 10, m.merchant_id, ref("n0"), 0, deadline)
    s0 = sign(member, chain, m, r0)
    receipt = chain.sender(member).transact(to=m.program.address, data=m.program.encode(
        "invalidateNonces", 0, 1), gas=200_000)
    assert [a for n, a, _ in m.program.decode_logs(receipt["logs"])] == [
        {"member": member.address, "wordPos": 0, "mask": 1}]
    with reverts("PointsNonceUsed", member.address, 0):
        m.call("redeem", r0.as_tuple(), s0)
    # ...or relayed with a signed CancelNonces, so members stay gasless.
    word = 5
    r = Redemption(member.address, 10, m.merchant_id, ref("far"), word * 256 + 9, deadline)
    sr = sign(member, chain, m, r)
    typed = cancel_nonces_typed_data(chain_id=chain.gateway.chain_id,
                                     program=m.program.address,
                                     registry=chain.registry.address, member=member.address,
                                     word_pos=word, mask=1 << 9, deadline=deadline)
    signed = Account.sign_typed_data(member.key, full_message=typed)
    assert bytes(signed.message_hash) == bytes(m.program.view1(
        "cancelNoncesDigest", member.address, word, 1 << 9, deadline))
    with reverts("PointsInvalidSignature", member.address):
        m.call("cancelNonces", member.address, word, 1 << 8, deadline, bytes(signed.signature))
    m.call("cancelNonces", member.address, word, 1 << 9, deadline, bytes(signed.signature))
    with reverts("PointsNonceUsed", member.address, word * 256 + 9):
        m.call("redeem", r.as_tuple(), sr)
    assert m.program.spendable_of(member.address) == 80


def test_a_deadline_more_than_seven_days_ahead_is_refused(chain: Chain) -> None:
    m, member = _funded(chain)
    far = chain.now() + 8 * DAY
    r = Redemption(member.address, 10, m.merchant_id, ref("far"), 0, far)
    with reverts("PointsDeadlineTooFar"):
        m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    with reverts("PointsDeadlineTooFar"):
        m.call("cancelNonces", member.address, 0, 1, far, b"\0" * 65)


def test_the_signing_domain_is_salted_with_the_registry(chain: Chain) -> None:
    m, member = _funded(chain)
    fields, name, version, chain_id, contract, salt, ext = m.program.view("eip712Domain")
    assert (bytes(fields), name, version, chain_id) == (b"\x1f", "Alliance Points", "2",
                                                         chain.gateway.chain_id)
    assert contract == m.program.address and list(ext) == []
    assert bytes(salt) == bytes(12) + bytes.fromhex(chain.registry.address[2:])
    # Same program address and chain, another alliance's registry: not this program's.
    r = Redemption(member.address, 10, m.merchant_id, ref("x"), 0, chain.now() + 600)
    with reverts("PointsInvalidSignature", member.address):
        m.call("redeem", r.as_tuple(), sign(member, chain, m, r,
                                            registry=Account.create().address))


def test_redeem_batch_errors_name_the_problem(chain: Chain) -> None:
    m, member = _funded(chain)
    other = chain.admit()
    r = Redemption(member.address, 10, m.merchant_id, ref("b1"), 0, chain.now() + 600)
    r2 = Redemption(member.address, 10, other.merchant_id, ref("b2"), 1, chain.now() + 600)
    sig = sign(member, chain, m, r)
    with reverts("PointsBatchLengthMismatch", 1, 2):
        m.call("redeemBatch", [r.as_tuple()], [sig, sig])
    with reverts("PointsMixedAcceptors", m.merchant_id, other.merchant_id):
        m.call("redeemBatch", [r.as_tuple(), r2.as_tuple()], [sig, sig])


def test_a_redemption_line_costs_the_same_in_a_batch_of_200_as_in_a_batch_of_20(
        chain: Chain) -> None:
    """A line's scratch memory is given back when the line is done, so the merchant relaying
    a full batch pays no more per line than one relaying a short one (memory kept for every
    line grew each later line's cost: ~900 gas a line more across 20..200). The calldata's
    bytes (offsets, signatures) leave a few dozen gas of difference either way."""
    m = chain.admit()
    members = [Account.create() for _ in range(221)]
    for start in range(0, len(members), 200):
        items = [IssueItem(x.address, 50, ref(f"f{start + i}")).as_tuple()
                 for i, x in enumerate(members[start:start + 200])]
        m.sender.transact(to=m.program.address, data=m.program.encode("issueBatch", items))
    deadline = chain.now() + 600

    def batch_gas(group: list[LocalAccount], tag: str) -> int:
        rs = [Redemption(x.address, 10, m.merchant_id, ref(f"{tag}{i}"), 0, deadline)
              for i, x in enumerate(group)]
        sigs = [sign(x, chain, m, r) for x, r in zip(group, rs, strict=True)]
        return _gas(m.sender.transact(to=m.program.address, gas=20_000_000, data=m.program.encode(
            "redeemBatch", [r.as_tuple() for r in rs], sigs)))

    g1, g20, g200 = (batch_gas(members[:1], "a"), batch_gas(members[1:21], "b"),
                     batch_gas(members[21:], "c"))
    small, large = (g20 - g1) / 19, (g200 - g20) / 180
    assert abs(large - small) <= 100, (small, large)


def test_a_member_with_the_most_lots_stays_well_inside_a_block(chain: Chain) -> None:
    """Hourly periods, 600 of them live: a member who earned every hour holds 601 lots."""
    m = chain.admit(config=HOURLY)
    member = Account.create()
    gw = chain.gateway
    # Each issue is mined at a pinned time an hour after the one before (no empty block
    # mined between them), and the last block is an hour after the last issue.
    start = chain.now() + 1
    for i in range(601):
        gw.rpc("evm_setNextBlockTimestamp", [start + i * 3600])
        m.call("issue", member.address, 1, ref(f"h{i}"))
    gw.rpc("evm_setNextBlockTimestamp", [start + 601 * 3600])
    gw.rpc("evm_mine")

    def revert_to(snap: object) -> None:
        gw.rpc("evm_revert", [snap])
        m.sender = TransactionSender(gw, m.account.key)  # nonces follow the reverted chain

    def big(fn: str, *args: object) -> dict[str, object]:  # up to a whole 30M block
        return m.sender.transact(to=m.program.address, data=m.program.encode(fn, *args),
                                 gas=29_000_000)

    # The loop ended one period after the last issue: the oldest lot just expired, 600 live.
    assert len(m.program.lots_of(member.address)) == 600
    views = {fn: gw.estimate_gas(sender=member.address, to=m.program.address,
                                 data=m.program.encode(fn, member.address))
             for fn in ("spendableOf", "expiredOf", "lotsOf", "balanceOf")}
    assert max(views.values()) < 3_000_000, views
    snap = gw.rpc("evm_snapshot")
    r = Redemption(member.address, 600, m.merchant_id, ref("all"), 0, chain.now() + 600)
    walk = _gas(big("redeem", r.as_tuple(), sign(member, chain, m, r)))
    assert walk < 10_000_000, walk
    revert_to(snap)
    snap = gw.rpc("evm_snapshot")
    chain.travel(601 * 3600)  # every lot expired, none swept
    m.call("issue", member.address, 1, ref("fresh"))  # prunes two on the way
    r = Redemption(member.address, 1, m.merchant_id, ref("one"), 1, chain.now() + 600)
    past_expired = _gas(big("redeem", r.as_tuple(), sign(member, chain, m, r)))
    assert past_expired < 10_000_000, past_expired
    revert_to(snap)
    chain.travel(601 * 3600)
    sweep = _gas(big("sweepExpired", [member.address]))
    assert m.program.balance_of(member.address) == 0 == m.program.total_supply()
    print(f"\n601 lots: views {views}; redeem walking 600 live lots {walk:,} gas; redeem past "
          f"599 expired lots {past_expired:,} gas; sweep of 601 lots {sweep:,} gas = "
          f"{sweep // 601:,} per lot")


def test_a_refund_over_more_than_seven_lots_counts_the_oldest_ones_as_the_oldest_lot(
        chain: Chain) -> None:
    m = chain.admit(config=ProgramConfig(period_length=DAY, expiry_periods=10,
                                         max_pending_days=1))
    member = Account.create()
    p0 = m.program.view1("currentPeriod")
    for i in range(9):
        m.call("issue", member.address, 10 + i, ref(f"d{i}"))
        chain.travel(DAY)
    total = sum(10 + i for i in range(9))
    r = Redemption(member.address, total, m.merchant_id, ref("all"), 0, chain.now() + 600)
    m.call("redeem", r.as_tuple(), sign(member, chain, m, r))
    assert m.program.spendable_of(member.address) == 0
    m.call("refundRedemption", m.merchant_id, ref("all"), total)
    # The newest six lots exactly; the three oldest all into the oldest (never a later lot).
    assert m.program.lots_of(member.address) == (
        [(p0, 10 + 11 + 12)] + [(p0 + i, 10 + i) for i in range(3, 9)])
    assert m.program.balance_of(member.address) == total == m.program.total_supply()


# ---------------------------------------------------------------------- code shape (issue 9)

EIP170_CODE_LIMIT = 24_576


def test_point_program_code_fits_under_the_eip170_limit(artifacts: dict[str, Artifact]) -> None:
    size = len(bytes.fromhex(artifacts["PointProgram"].deployed_bytecode))
    assert size <= EIP170_CODE_LIMIT, f"PointProgram is {size:,} bytes"


def test_point_lots_is_inlined_so_the_program_needs_no_linking(
        artifacts: dict[str, Artifact]) -> None:
    # An external library function would put a `__$…$__` placeholder in the program's code
    # (a deploy-time link step) and turn each call into a DELEGATECALL.
    assert artifacts["PointLots"].abi == []
    assert "__$" not in artifacts["PointProgram"].bytecode
    assert "__$" not in artifacts["PointProgram"].deployed_bytecode
