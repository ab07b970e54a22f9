"""Memberships over HTTP, on the real app, a real anvil and SQLite: a card issued, listed,
renewed; a payment reference used twice refused as problem+json with nothing queued; tiers
set and read; a points issue raised by the member's tier; a tier-locked campaign refusing a
member below its tier."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account

from ledger import runtime
from ledger.memberships.clients import card_id
from ledger.settings import Settings
from ledger.store.models import Operation

from .conftest import ApiEnv, make_env


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}))


def catch_up(env: ApiEnv) -> None:
    runtime.indexer(env.alliance).catch_up()


def ops_count(env: ApiEnv) -> int:
    with env.alliance.store.read_session() as s:
        return s.query(Operation).count()


def problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.json()["code"] == code, r.json()


def confirmed(env: ApiEnv, r: Any) -> None:
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    catch_up(env)


TIERS = {"tiers": [
    {"level": 1, "name": "silver", "min_points": 1000, "window_days": 365,
     "multiplier_bps": 12_500},
    {"level": 2, "name": "gold", "min_points": 5000, "window_days": 365,
     "multiplier_bps": 15_000}]}


def test_card_is_issued_listed_and_renewed_and_a_payment_ref_pays_once(env: ApiEnv) -> None:
    member = Account.create().address
    confirmed(env, env.store.post("/v1/memberships/cards", {
        "member": member, "tier": 2, "days": 30, "payment_ref": "till-1/r-1"}))
    (card,) = env.store.get(f"/v1/memberships/members/{member}/cards").json()["cards"]
    mid = env.store_merchant.merchant_id
    assert card["token_id"] == str(card_id(mid, member))
    assert (card["merchant_id"], card["tier"], card["status"]) == (mid, 2, "valid")
    before = ops_count(env)
    problem(env.store.post("/v1/memberships/cards", {
        "member": Account.create().address, "payment_ref": "till-1/r-1"}), 409,
        "membership-payment-ref-used")
    problem(env.store.post("/v1/memberships/cards", {"member": member, "payment_ref": "r-2"}),
            409, "membership-card-exists")
    problem(env.store.post("/v1/memberships/cards/renew", {
        "member": Account.create().address, "payment_ref": "r-3"}), 404, "not-found")
    problem(env.store.post("/v1/memberships/cards", {"member": member, "tier": 0,
                                                     "payment_ref": "r-4"}),
            422, "validation-error")
    assert ops_count(env) == before
    confirmed(env, env.store.post("/v1/memberships/cards/renew", {
        "member": member, "days": 365, "payment_ref": "till-1/r-2"}))
    (renewed,) = env.store.get(f"/v1/memberships/members/{member}/cards").json()["cards"]
    assert renewed["expires_at"] == card["expires_at"] + 365 * 86_400
    # Another merchant's card of the same member is its own.
    assert env.cafe.get(f"/v1/memberships/members/{member}/cards").status_code == 200


def test_tiers_raise_issued_points_and_lock_a_campaign(env: ApiEnv) -> None:
    gold, plain = Account.create().address, Account.create().address
    mid = env.store_merchant.merchant_id
    r = env.store.post("/v1/memberships/tiers", TIERS)
    assert r.status_code == 200, r.text
    assert env.store.get(f"/v1/memberships/tiers/{mid}").json()["tiers"] == TIERS["tiers"]
    confirmed(env, env.store.post("/v1/points/issue", {"member": gold, "points": 6000,
                                                       "order_id": "T-1"}))
    t = env.store.get(f"/v1/memberships/tiers/{mid}/members/{gold}").json()
    assert (t["level"], t["name"], t["points_in_window"]) == (2, "gold", 6000)
    # Gold earns 1.5x through the tier-aware issue.
    confirmed(env, env.store.post("/v1/memberships/issue", {"member": gold, "points": 100,
                                                            "order_id": "T-2"}))
    t = env.store.get(f"/v1/memberships/tiers/{mid}/members/{gold}").json()
    assert t["points_in_window"] == 6150
    # A campaign locked to gold: a grant naming a plain member is refused, nothing queued.
    confirmed(env, env.store.post("/v1/coupons/campaigns", {"kind": "fixed_off", "value": 500,
                                                            "budget": 100_000}))
    cid = env.store.get("/v1/coupons/campaigns").json()["campaigns"][-1]["campaign_id"]
    r = env.store.post(f"/v1/memberships/campaigns/{cid}/tier", {"min_level": 2})
    assert r.status_code == 200, r.text
    problem(env.cafe.post(f"/v1/memberships/campaigns/{cid}/tier", {"min_level": 2}), 403,
            "forbidden")
    before = ops_count(env)
    problem(env.store.post(f"/v1/memberships/campaigns/{cid}/grant",
                           {"members": [gold, plain]}), 409, "tier-too-low")
    # The coupons' own grant route checks the lock too.
    problem(env.store.post("/v1/coupons/grant", {"campaign_id": cid, "members": [plain]}),
            409, "tier-too-low")
    assert ops_count(env) == before
    confirmed(env, env.store.post(f"/v1/memberships/campaigns/{cid}/grant",
                                  {"members": [gold]}))
    coupons = env.store.get(f"/v1/coupons/members/{gold}").json()["coupons"]
    assert [c["campaign_id"] for c in coupons] == [cid]


def test_tier_locked_campaign_voucher_claim_is_refused_below_the_tier(env: ApiEnv) -> None:
    gold, plain = Account.create().address, Account.create().address
    assert env.store.post("/v1/memberships/tiers", TIERS).status_code == 200
    confirmed(env, env.store.post("/v1/points/issue", {"member": gold, "points": 6000,
                                                       "order_id": "TV-1"}))
    confirmed(env, env.store.post("/v1/coupons/campaigns", {"kind": "fixed_off", "value": 500,
                                                            "budget": 100_000}))
    cid = env.store.get("/v1/coupons/campaigns").json()["campaigns"][-1]["campaign_id"]
    assert env.store.post(f"/v1/memberships/campaigns/{cid}/tier",
                          {"min_level": 2}).status_code == 200
    now = int(env.alliance.gateway.block("latest")["timestamp"])
    v = env.store.post("/v1/coupons/vouchers", {"campaign_id": cid,
                                                "expires_at": now + 86_400}).json()
    before = ops_count(env)
    # The merchant's signed voucher is refused for a member below the tier, nothing queued,
    # exactly as a grant is; the same voucher then claims for a gold member.
    problem(env.store.post("/v1/coupons/vouchers/claim", {"code": v["code"], "to": plain}),
            409, "tier-too-low")
    assert ops_count(env) == before
    confirmed(env, env.store.post("/v1/coupons/vouchers/claim",
                                  {"code": v["code"], "to": gold}))
    coupons = env.store.get(f"/v1/coupons/members/{gold}").json()["coupons"]
    assert [c["campaign_id"] for c in coupons] == [cid]
    assert env.store.get(f"/v1/coupons/members/{plain}").json()["coupons"] == []
