"""Coupons through the ledger layer (service, outbox worker, indexer projection) on anvil and
SQLite: the demo seeding's cross-merchant campaign, the read model's stats and a member's
coupons, a failed redemption's lock taken over, and the projection's rollback dropping the
rows of undone blocks."""

from __future__ import annotations

from eth_account import Account
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
    request_rollback,
)
from ledger.merchants.service import AdmittedMerchant
from ledger.outbox.kinds import KindRegistry
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
