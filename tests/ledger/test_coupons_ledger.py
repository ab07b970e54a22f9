"""Coupons through the ledger layer (service, outbox worker, indexer projection) on anvil and
SQLite: the demo seeding's cross-merchant campaign, the read model's stats and a member's
coupons, a failed redemption's lock taken over, and the projection's rollback dropping the
rows of undone blocks."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from ledger import runtime
from ledger.alliance import Alliance
from ledger.clearing.statements import statement
from ledger.cli import app
from ledger.coupons import repos
from ledger.coupons.demo import seed_demo_coupons
from ledger.coupons.service import (
    campaign_stats,
    member_coupons,
    request_create_campaign,
    request_grant,
    request_redeem,
    request_rollback,
)
from ledger.coupons.signing import redeem_coupon_typed_data
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox.kinds import KindRegistry
from ledger.outbox.repos import get_operation
from ledger.points.service import order_ref
from ledger.settings import Settings, get_settings
from ledger.store.models import Operation, OperationStatus


def test_the_demo_campaign_is_granted_and_used_across_merchants(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    wallet = Account.create()
    members = ["demo-a", "demo-b"]
    cid = seed_demo_coupons(alliance, runtime.outbox_worker(alliance),
                            store=store_merchant.merchant_id, cafe=cafe_merchant.merchant_id,
                            member_ids=members, wallet_key=bytes(wallet.key))
    assert cid >= 1
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        stats = campaign_stats(s, merchant_id=store_merchant.merchant_id, campaign_id=cid)
        mine = member_coupons(alliance, s, holder=wallet.address)
    assert (stats["granted"], stats["redeemed"], stats["budget_used"]) == (3, 1, 1000)
    assert [(c["status"], c["used_at_merchant"], c["discount"]) for c in mine] == [
        ("used", cafe_merchant.merchant_id, 1000)]
    clr = alliance.contracts.clearing
    p = clr.current_period()
    assert clr.position_of(p, cafe_merchant.merchant_id)[0] == 1000
    assert clr.position_of(p, store_merchant.merchant_id)[0] == -1000


def test_every_coupon_kind_is_registered_once() -> None:
    names = [k.name for k in runtime.operation_kinds()]
    assert len(names) == len(set(names)) and "coupon_redeem" in names
    assert isinstance(runtime.operation_kinds(), KindRegistry)


def test_a_lock_whose_operation_failed_is_taken_over_and_a_live_one_is_not(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    with alliance.store.session() as s:
        op = request_create_campaign(alliance, s, merchant_id=store_merchant.merchant_id,
                                     kind="gift", value=100, budget=100)
        assert repos.lock_redemption(s, coupon_id=7, operation_id=op.id,
                                     merchant_id=store_merchant.merchant_id, order_id="o")
        assert not repos.lock_redemption(s, coupon_id=7, operation_id="other",
                                         merchant_id=store_merchant.merchant_id, order_id="p")
        row = s.query(Operation).filter(Operation.id == op.id).one()
        row.status = OperationStatus.FAILED
        s.flush()
        assert repos.lock_redemption(s, coupon_id=7, operation_id="retry",
                                     merchant_id=store_merchant.merchant_id, order_id="q")
        assert not repos.lock_redemption(s, coupon_id=7, operation_id="again",
                                         merchant_id=store_merchant.merchant_id, order_id="r")


def test_projection_rollback_drops_the_rows_of_later_blocks(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    with alliance.store.session() as s:
        request_create_campaign(alliance, s, merchant_id=store_merchant.merchant_id,
                                kind="fixed_off", value=100, budget=1000)
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        assert len(repos.campaigns(s)) == 1
        block = max(c.campaign_id for c in repos.campaigns(s))
    with alliance.store.session() as s:
        repos.delete_after(s, 0)
    with alliance.store.read_session() as s:
        assert repos.campaigns(s) == [] and block == 1


def test_operator_lists_pauses_and_validates_coupons_from_the_cli(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        settings: Settings) -> None:
    wallet = Account.create()
    cid = seed_demo_coupons(alliance, runtime.outbox_worker(alliance),
                            store=store_merchant.merchant_id, cafe=cafe_merchant.merchant_id,
                            member_ids=["cli-a"], wallet_key=bytes(wallet.key))
    env = {"ALLIANCE_DATA_DIR": str(settings.data_dir), "ALLIANCE_RPC_URL": settings.rpc_url,
           "ALLIANCE_CHAIN_ID": str(settings.chain_id),
           "ALLIANCE_ARTIFACTS_DIR": str(settings.artifacts_dir), "COLUMNS": "200"}
    runner = CliRunner()

    def run(*args: str) -> str:
        get_settings.cache_clear()
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("coupons", "campaigns", "--merchant", str(store_merchant.merchant_id))
    assert "fixed_off" in out and "1000" in out
    out = run("coupons", "wallet", wallet.address)
    assert "used" in out
    with alliance.store.read_session() as s:
        held = member_coupons(alliance, s, holder=wallet.address)
    coupon = held[0]["coupon_id"]
    out = run("coupons", "validate", coupon, "--merchant", str(cafe_merchant.merchant_id),
              "--order", "x-1", "--amount", "9000")
    assert "does not apply (coupon-used)" in out
    # The issuer takes back an unused coupon from the CLI; the used one stays.
    other = Account.create().address
    with alliance.store.session() as s:
        request_grant(alliance, s, merchant_id=store_merchant.merchant_id, campaign_id=cid,
                      members=[other])
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        (spare,) = member_coupons(alliance, s, holder=other)
    out = run("coupons", "revoke", spare["coupon_id"], "--merchant",
              str(store_merchant.merchant_id))
    assert f"coupon {spare['coupon_id']} revoked" in out
    refused = runner.invoke(app, ["coupons", "revoke", coupon, "--merchant",
                                  str(store_merchant.merchant_id)], env=env)
    assert refused.exit_code != 0 and "is used" in refused.output
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        assert member_coupons(alliance, s, holder=other) == []
    run("coupons", "pause", str(cid), "--merchant", str(store_merchant.merchant_id))
    book = alliance.contracts.coupons
    assert book is not None and book.campaign(cid).paused


def test_a_statement_lists_a_coupon_used_elsewhere_and_its_rollback(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    # Coupon acts used to be cleared without lines: the statement then refused as an
    # integrity error ("the lines ... do not add up to its cleared value").
    wallet = Account.create()
    seed_demo_coupons(alliance, runtime.outbox_worker(alliance),
                      store=store_merchant.merchant_id, cafe=cafe_merchant.merchant_id,
                      member_ids=[], wallet_key=bytes(wallet.key))
    with alliance.store.read_session() as s:
        runtime.indexer(alliance).catch_up()
        (held,) = member_coupons(alliance, s, holder=wallet.address)
    with alliance.store.session() as s:
        request_rollback(alliance, s, merchant_id=cafe_merchant.merchant_id,
                         coupon_id=held["coupon_id"], order_id="demo-CAFE-coupon-1")
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    p = alliance.contracts.clearing.current_period()
    doc = statement(alliance, period=p, merchant_id=cafe_merchant.merchant_id).document
    assert [(ln["kind"], ln["direction"], ln["value"]) for ln in doc["lines"]] == [
        ("coupon", "receivable", 1000), ("coupon_rollback", "payable", 1000)]
    assert doc["totals"] == {"receivable": 1000, "payable": 1000, "net": 0}


def _signed_redeem(alliance: Alliance, holder: LocalAccount, coupon_id: int, *, acceptor: int,
                   order_id: str, nonce: int, amount: int = 10_000) -> dict[str, Any]:
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 600
    book = alliance.contracts.coupons
    assert book is not None
    typed = redeem_coupon_typed_data(
        chain_id=alliance.gateway.chain_id, book=book.address,
        registry=alliance.contracts.deployment.registry, holder=holder.address,
        coupon_id=coupon_id, acceptor=acceptor, order_ref=order_ref(order_id),
        order_amount=amount, nonce=nonce, deadline=deadline)
    sig = Account.sign_typed_data(holder.key, full_message=typed).signature
    return {"coupon_id": coupon_id, "order_id": order_id, "order_amount": amount,
            "nonce": nonce, "deadline": deadline, "signature": "0x" + bytes(sig).hex()}


def test_redemptions_queued_together_share_one_transaction_and_a_bad_line_fails_alone(
        alliance: Alliance, store_merchant: AdmittedMerchant,
        cafe_merchant: AdmittedMerchant) -> None:
    holders = [Account.create() for _ in range(4)]
    with alliance.store.session() as s:
        request_create_campaign(alliance, s, merchant_id=store_merchant.merchant_id,
                                kind="fixed_off", value=100, budget=10**6,
                                acceptors=[cafe_merchant.merchant_id])
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        cid = max(c.campaign_id for c in repos.campaigns(s))
    with alliance.store.session() as s:
        request_grant(alliance, s, merchant_id=store_merchant.merchant_id, campaign_id=cid,
                      members=[h.address for h in holders])
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    with alliance.store.read_session() as s:
        coupons = [repos.held_by(s, h.address)[0].coupon_id for h in holders]
    # Orders 0 and 1 take one coupon each; the third line puts a second non-stackable coupon
    # on order 0: it passes the request's checks (nothing is on the order yet) but reverts
    # on chain, so its batch is bisected and only it fails.
    orders = ["b-0", "b-1", "b-0", "b-3"]
    gw = alliance.gateway
    ops = []
    for h, c, o in zip(holders, coupons, orders, strict=True):
        body = _signed_redeem(alliance, h, c, acceptor=cafe_merchant.merchant_id, order_id=o,
                              nonce=7)
        with alliance.store.session() as s:
            trips = gw.round_trips
            ops.append(request_redeem(alliance, s, merchant_id=cafe_merchant.merchant_id,
                                      **body))
            # Time, holder, nonce bit and validate in one batch: one round trip a request
            # (it was five: block, ownerOf, code, nonceBitmap, validate).
            assert gw.round_trips - trips == 1
    runtime.outbox_worker(alliance).drain()
    with alliance.store.read_session() as s:
        rows = [(str(r.status), r.error_code) for o in ops if (r := get_operation(s, o.id))]
    assert [st for st, _ in rows] == ["confirmed", "confirmed", "failed", "confirmed"], rows
    assert rows[2][1] == "CouponOrderHasCoupon"
    book = alliance.contracts.coupons
    assert book is not None
    assert [book.is_used(c) for c in coupons] == [True, True, False, True]
    clr = alliance.contracts.clearing
    assert clr.position_of(clr.current_period(), cafe_merchant.merchant_id)[0] == 300
    # Without a bad line, every redemption queued together lands in one transaction.
    more = [Account.create() for _ in range(3)]
    with alliance.store.session() as s:
        request_grant(alliance, s, merchant_id=store_merchant.merchant_id, campaign_id=cid,
                      members=[h.address for h in more])
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()
    with alliance.store.session() as s:
        ids = []
        for i, h in enumerate(more):
            c = repos.held_by(s, h.address)[0].coupon_id
            ids.append(request_redeem(alliance, s, merchant_id=cafe_merchant.merchant_id,
                                      **_signed_redeem(alliance, h, c,
                                                       acceptor=cafe_merchant.merchant_id,
                                                       order_id=f"m-{i}", nonce=1)).id)
    runtime.outbox_worker(alliance).drain()
    with alliance.store.read_session() as s:
        landed = [(str(r.status), r.tx_hash) for i in ids if (r := get_operation(s, i))]
    assert [st for st, _ in landed] == ["confirmed"] * 3, landed
    assert len({tx for _, tx in landed}) == 1
