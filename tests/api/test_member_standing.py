"""The member's membership cards and tiers in the member app over HTTP (real app and workers,
anvil, SQLite): a shop's card with its tier name and expiry, the tier reached from the points
earned and what the next tier still needs, the alliance-wide tiers first; a member with
neither sees nothing; someone else's standing is not the member's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account

from ledger.memberships import service as memberships
from ledger.settings import Settings

from .conftest import ApiEnv, make_env
from .test_coupons_api import catch_up
from .test_member_session import sign_in


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}))


def test_member_sees_cards_tiers_and_what_the_next_tier_needs(env: ApiEnv) -> None:
    member, stranger = Account.create(), Account.create()
    r = env.store.post("/v1/memberships/tiers", {"tiers": [
        {"level": 1, "name": "Silver", "min_points": 100, "window_days": 365,
         "multiplier_bps": 12_500},
        {"level": 2, "name": "Gold", "min_points": 1000, "window_days": 365,
         "multiplier_bps": 15_000}]})
    assert r.status_code == 200, r.text
    with env.alliance.store.session() as s:  # the operator's alliance-wide tiers
        memberships.set_tiers(s, merchant_id=0, tiers=[
            memberships.TierDef(1, "Alliance Star", 5000, 90, 10_000),
            memberships.TierDef(2, "Alliance Elite", 20_000, 365, 10_000)])
    for order, client, pts in (("GP-1", env.store, 300), ("CF-1", env.cafe, 40)):
        r = client.post("/v1/points/issue", {"member": member.address, "points": pts,
                                             "order_id": order})
        assert client.wait_operation(r.json()["id"])["status"] == "confirmed"
    r = env.store.post("/v1/memberships/cards", {"member": member.address, "tier": 2,
                                                 "days": 30, "payment_ref": "till-1/42"})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    catch_up(env)

    assert sign_in(env, stranger).status_code == 200
    seen = env.http.get("/app/api/memberships").json()["scopes"]
    # The stranger has no card and no points: the tiers that exist, none reached.
    assert [(x["merchant_id"], x["level"], x["card"]) for x in seen] == [
        (0, 0, None), (env.store_merchant.merchant_id, 0, None)]

    assert sign_in(env, member).status_code == 200
    r = env.http.get("/app/api/memberships")
    assert r.status_code == 200, r.text
    alliance_wide, store = r.json()["scopes"]
    # Alliance-wide: two windows (90 and 365 days), so no single "still needed" figure.
    assert (alliance_wide["merchant_id"], alliance_wide["merchant_name"],
            alliance_wide["level"], alliance_wide["next_needed"]) == (0, None, 0, None)
    assert [t["name"] for t in alliance_wide["tiers"]] == ["Alliance Star", "Alliance Elite"]
    assert (store["merchant_name"], store["level"], store["tier_name"],
            store["multiplier_bps"], store["points_in_window"], store["next_needed"]) == (
        "Grand Plaza Department Store", 1, "Silver", 12_500, 300, 700)
    assert [t["reached"] for t in store["tiers"]] == [True, False]
    card = store["card"]
    assert (card["tier"], card["tier_name"], card["status"]) == (2, "Gold", "valid")
    now = int(env.alliance.gateway.block("latest")["timestamp"])
    assert 29 * 86_400 < card["expires_at"] - now <= 30 * 86_400
    # The cafe defined no tiers and gave no card: not listed.
    assert env.cafe_merchant.merchant_id not in [x["merchant_id"]
                                                 for x in r.json()["scopes"]]
