"""Triggered offers and gifts over HTTP, on the real app (its workers running), a real anvil
and SQLite: the parking rule fires once per qualifying order, rules are listed, shown and
disabled; a gift is paid with signed points and its coupon arrives; birth months, invite
codes and referrals; every refusal is problem+json with nothing queued."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.offers.service import gift_order_id
from ledger.settings import Settings
from ledger.store.models import Operation
from tests.ledger.helpers import sign_redemption

from .conftest import ApiEnv, make_env
from .test_coupons_api import create_campaign, now, ops_count, problem


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}))


def poll(what: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """``what()`` once it is truthy (the workers send and index in the background)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = what()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def coupons_of(env: ApiEnv, holder: str, campaign_id: int) -> list[dict[str, Any]]:
    r = env.store.get(f"/v1/coupons/members/{holder}")
    assert r.status_code == 200, r.text
    return [c for c in r.json()["coupons"] if c["campaign_id"] == campaign_id]


def issue(env: ApiEnv, member: str, points: int, order_id: str) -> dict[str, Any]:
    r = env.store.post("/v1/points/issue", {"member": member, "points": points,
                                            "order_id": order_id})
    assert r.status_code == 202, r.text
    return env.store.wait_operation(r.json()["id"])


def test_parking_rule_over_http_grants_one_coupon_per_qualifying_order(env: ApiEnv) -> None:
    cid = create_campaign(env, value=300)
    problem(env.store.post("/v1/offers/rules", {"kind": "purchase", "campaign_id": cid}), 422,
            "validation-error")
    r = env.store.post("/v1/offers/rules", {"kind": "purchase", "campaign_id": cid,
                                            "min_points": 100})
    assert r.status_code == 201, r.text
    rule = r.json()
    assert rule["active"] and rule["min_points"] == 100
    member = Account.create().address
    assert issue(env, member, 150, "PARK-1")["status"] == "confirmed"
    assert issue(env, member, 50, "SMALL-1")["status"] == "confirmed"
    poll(lambda: coupons_of(env, member, cid))
    # The order issued again (another Idempotency-Key): the chain refuses it, nothing fires.
    assert issue(env, member, 150, "PARK-1")["status"] == "failed"
    shown = poll(lambda: (lambda j: j if j["fired"] == 1 else None)(
        env.store.get(f"/v1/offers/rules/{rule['rule_id']}").json()))
    assert shown["skipped"] == 0
    assert len(coupons_of(env, member, cid)) == 1
    assert [x["rule_id"] for x in env.store.get("/v1/offers/rules").json()["rules"]] == [
        rule["rule_id"]]
    r = env.store.post(f"/v1/offers/rules/{rule['rule_id']}/disable", {})
    assert r.status_code == 200 and r.json()["active"] is False
    problem(env.store.post(f"/v1/offers/rules/{rule['rule_id']}/disable", {}), 409,
            "offers-rule-disabled")
    problem(env.cafe.get(f"/v1/offers/rules/{rule['rule_id']}"), 404, "not-found")


def test_rule_refusals_are_problem_json_and_write_nothing(env: ApiEnv) -> None:
    cid = create_campaign(env)
    before = ops_count(env)
    problem(env.cafe.post("/v1/offers/rules", {"kind": "purchase", "campaign_id": cid,
                                               "min_points": 1}), 403, "forbidden")
    problem(env.store.post("/v1/offers/rules", {"kind": "birthday", "campaign_id": 999}), 404,
            "not-found")
    problem(env.store.post("/v1/offers/rules", {"kind": "lottery", "campaign_id": cid}), 422,
            "validation-error")
    problem(env.store.post("/v1/offers/rules", {"kind": "birthday", "campaign_id": cid,
                                                "min_points": 5}), 422, "validation-error")
    assert env.cafe.get("/v1/offers/rules").json()["rules"] == []
    assert env.store.get("/v1/offers/rules").json()["rules"] == []
    assert ops_count(env) == before


def test_birth_months_invites_and_referrals_over_http(env: ApiEnv) -> None:
    r = env.store.post("/v1/offers/birth-months", {"member_id": "api-member-1", "month": 5})
    assert r.status_code == 200, r.text
    assert "5" not in r.text.replace(r.json()["member"], "")
    problem(env.store.post("/v1/offers/birth-months", {"member_id": "m", "month": 13}), 422,
            "validation-error")
    inviter = Account.create().address
    code = env.store.post("/v1/offers/invites", {"member": inviter}).json()["code"]
    r = env.store.post("/v1/offers/referrals", {"code": code, "member_id": "api-member-2"})
    assert r.status_code == 201 and r.json()["inviter"] == inviter, r.text
    problem(env.store.post("/v1/offers/referrals", {"code": code, "member_id": "api-member-2"}),
            409, "offers-referral-exists")
    problem(env.store.post("/v1/offers/referrals", {"code": code, "member": inviter}), 409,
            "offers-referral-self")
    problem(env.cafe.post("/v1/offers/referrals", {"code": code, "member_id": "x"}), 404,
            "not-found")


def redemptions(env: ApiEnv) -> int:
    """Operations queued other than coupon grants (which the indexer queues meanwhile)."""
    with env.alliance.store.read_session() as s:
        return s.query(Operation).filter(Operation.kind != "coupon_grant").count()


def gift_body(env: ApiEnv, member: LocalAccount, *, gift_id: int, request_id: str,
              points: int) -> dict[str, Any]:
    nonce = int.from_bytes(os.urandom(6))
    deadline = now(env) + 600
    sig = sign_redemption(member, program=env.store_merchant.program,
                          registry=env.alliance.contracts.deployment.registry,
                          chain_id=env.alliance.gateway.chain_id, amount=points,
                          merchant_id=env.store_merchant.merchant_id,
                          order_id=gift_order_id(gift_id, request_id), nonce=nonce,
                          deadline=deadline)
    return {"member": member.address, "request_id": request_id, "nonce": nonce,
            "deadline": deadline, "signature": sig}


def test_gift_is_paid_with_signed_points_and_its_coupon_arrives(env: ApiEnv) -> None:
    gift_campaign = create_campaign(env, kind="gift", value=2500)
    plain = create_campaign(env)
    problem(env.store.post("/v1/offers/gifts", {"name": "Mug", "points": 10,
                                                "campaign_id": plain, "stock": 3}), 409,
            "offers-campaign-not-gift")
    r = env.store.post("/v1/offers/gifts", {"name": "Umbrella", "points": 100,
                                            "campaign_id": gift_campaign, "stock": 1})
    assert r.status_code == 201, r.text
    gid = r.json()["gift_id"]
    member = Account.create()
    assert issue(env, member.address, 150, "BUY-1")["status"] == "confirmed"
    r = env.store.post(f"/v1/offers/gifts/{gid}/redeem",
                       gift_body(env, member, gift_id=gid, request_id="till-1", points=100))
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    before = redemptions(env)
    problem(env.store.post(f"/v1/offers/gifts/{gid}/redeem", gift_body(
        env, member, gift_id=gid, request_id="till-1", points=100)), 409,
        "offers-gift-request-replayed")
    problem(env.store.post(f"/v1/offers/gifts/{gid}/redeem", gift_body(
        env, member, gift_id=gid, request_id="till-2", points=100)), 409,
        "offers-gift-out-of-stock")
    assert env.store.post(f"/v1/offers/gifts/{gid}", {"stock": 2}).json()["left"] == 1
    problem(env.store.post(f"/v1/offers/gifts/{gid}/redeem", gift_body(
        env, member, gift_id=gid, request_id="till-3", points=100)), 409,
        "offers-insufficient-points")
    problem(env.store.post(f"/v1/offers/gifts/{gid}", {"stock": 0}), 422, "validation-error")
    assert redemptions(env) == before
    (coupon,) = poll(lambda: coupons_of(env, member.address, gift_campaign))
    assert coupon["status"] == "valid" and coupon["kind"] == "gift"
    paid = env.store.get(f"/v1/offers/gifts/{gid}/redemptions/till-1").json()
    assert paid["status"] == "paid" and paid["grant_operation_id"]
    with env.alliance.store.read_session() as s:
        grant = s.query(Operation).filter(
            Operation.id == paid["grant_operation_id"]).one()
        assert grant.kind == "coupon_grant"
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.spendable_of(member.address) == 50
    assert [g["name"] for g in env.store.get("/v1/offers/gifts").json()["gifts"]] == [
        "Umbrella"]
    problem(env.cafe.get(f"/v1/offers/gifts/{gid}"), 404, "not-found")


def test_20_concurrent_redemptions_of_a_gift_with_3_left_exactly_3_are_queued(
        env: ApiEnv) -> None:
    gift_campaign = create_campaign(env, kind="gift", value=800)
    r = env.store.post("/v1/offers/gifts", {"name": "Keyring", "points": 10,
                                            "campaign_id": gift_campaign, "stock": 3})
    gid = r.json()["gift_id"]
    member = Account.create()
    assert issue(env, member.address, 1000, "BUY-RUSH")["status"] == "confirmed"
    bodies = [gift_body(env, member, gift_id=gid, request_id=f"rush-{i}", points=10)
              for i in range(20)]
    results: list[Any] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        start.wait()
        results[i] = env.store.post(f"/v1/offers/gifts/{gid}/redeem", bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = Counter(r.status_code for r in results)
    assert statuses == {202: 3, 409: 17}, [r.text for r in results if r.status_code >= 500][:3]
    assert {r.json()["code"] for r in results if r.status_code == 409} == {
        "offers-gift-out-of-stock"}
    for r in results:
        if r.status_code == 202:
            assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    poll(lambda: len(coupons_of(env, member.address, gift_campaign)) == 3)
    assert env.store.get(f"/v1/offers/gifts/{gid}").json()["left"] == 0
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.spendable_of(member.address) == 1000 - 3 * 10


def test_purchase_rule_in_spend_compares_the_orders_spend_whatever_the_tier_multiplier(
        env: ApiEnv) -> None:
    cid = create_campaign(env, value=300)
    r = env.store.post("/v1/offers/rules", {"kind": "purchase", "campaign_id": cid,
                                            "min_spend": 200})
    assert r.status_code == 201, r.text
    rule = r.json()
    assert (rule["min_spend"], rule["min_points"]) == (200, None)
    problem(env.store.post("/v1/offers/rules", {"kind": "purchase", "campaign_id": cid,
                                                "min_spend": 200, "min_points": 1}),
            422, "validation-error")
    problem(env.store.post("/v1/points/issue", {"member": Account.create().address,
                                                "points": 1, "order_id": "S-BAD",
                                                "spend": 2**64}), 422, "validation-error")
    # A gold member earns 3x through the tier-aware issue: 100 base points become 300,
    # well past any points threshold, yet a 199 spend order does not fire a >= 200 rule.
    assert env.store.post("/v1/memberships/tiers", {"tiers": [
        {"level": 1, "name": "gold", "min_points": 1000, "window_days": 365,
         "multiplier_bps": 30_000}]}).status_code == 200
    gold, plain = Account.create().address, Account.create().address
    assert issue(env, gold, 5000, "S-EARN")["status"] == "confirmed"
    for member, order, spend in ((gold, "S-199", 199), (gold, "S-200", 200),
                                 (plain, "S-PLAIN-200", 200)):
        r = env.store.post("/v1/memberships/issue", {"member": member, "points": 100,
                                                     "order_id": order, "spend": spend})
        assert r.status_code == 202, r.text
        assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    shown = poll(lambda: (lambda j: j if j["fired"] == 2 else None)(
        env.store.get(f"/v1/offers/rules/{rule['rule_id']}").json()))
    assert shown["skipped"] == 0
    poll(lambda: len(coupons_of(env, gold, cid)) == 1 and coupons_of(env, plain, cid))
    assert len(coupons_of(env, gold, cid)) == 1  # the 200 order only; the 5000-point one
    assert len(coupons_of(env, plain, cid)) == 1  # had no spend, the 199 one too little
