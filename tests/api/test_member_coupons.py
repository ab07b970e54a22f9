"""A member's coupons in the member app over HTTP (real app, anvil, SQLite): a voucher claimed
into the member's own wallet, the coupon shown at a till as a one-time code, the till's scan
binding its order, the member's signature over that exact order, used once on chain; and the
refusals: another merchant's scan of a taken code, a code no one scanned, a signature over
another order, a photographed code of someone else's session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.settings import Settings

from .conftest import ApiEnv, make_env
from .test_coupons_api import catch_up, create_campaign, now
from .test_member_session import APP, sign_in


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}))


def _wait_member_op(env: ApiEnv, path: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        op = env.http.get(path).json()
        if op["status"] in ("confirmed", "failed") or time.monotonic() > deadline:
            return op
        time.sleep(0.1)


def _claim_voucher(env: ApiEnv, member: LocalAccount, campaign_id: int) -> str:
    v = env.store.post("/v1/coupons/vouchers", {"campaign_id": campaign_id,
                                                "expires_at": now(env) + 86400}).json()
    r = env.http.post("/app/api/vouchers/claim", json={"code": v["code"]}, headers=APP)
    assert r.status_code == 202, r.text
    op = _wait_member_op(env, f"/app/api/vouchers/claims/{r.json()['id']}")
    assert op["status"] == "confirmed", op
    catch_up(env)
    (coupon,) = env.http.get("/app/api/coupons").json()["coupons"]
    assert coupon["status"] == "valid" and coupon["issuer_name"] == "Grand Plaza Department Store"
    return str(coupon["coupon_id"])


def _sign(member: LocalAccount, typed: dict[str, Any]) -> str:
    return "0x" + bytes(Account.sign_typed_data(member.key, full_message=typed)
                        .signature).hex()


def test_coupon_code_scanned_at_the_till_is_used_once_with_the_members_signature(
        env: ApiEnv) -> None:
    member = Account.create()
    assert sign_in(env, member).status_code == 200
    coupon_id = _claim_voucher(env, member, create_campaign(env, min_spend=1000))

    shown = env.http.post(f"/app/api/coupons/{coupon_id}/present", headers=APP)
    assert shown.status_code == 201, shown.text
    code = shown.json()["code"]
    assert code.startswith("ALC-") and shown.json()["status"] == "shown"
    # The member cannot sign before the till names the order.
    r = env.http.post(f"/app/api/coupon-codes/{code}/quote", headers=APP)
    assert r.status_code == 409 and r.json()["code"] == "coupon-code-not-scanned"

    scan = {"order_id": "CAFE-7001", "order_amount": 4200}
    r = env.cafe.post(f"/v1/coupon-codes/{code}/scan", scan)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["discount"]) == ("scanned", 500)
    # Another merchant (or another order) cannot take the code over.
    r = env.store.post(f"/v1/coupon-codes/{code}/scan", scan)
    assert r.status_code == 409 and r.json()["code"] == "coupon-code-taken"
    r = env.cafe.post(f"/v1/coupon-codes/{code}/scan", {**scan, "order_amount": 99_000})
    assert r.status_code == 409 and r.json()["code"] == "coupon-code-taken"

    seen = env.http.get(f"/app/api/coupon-codes/{code}").json()
    assert (seen["merchant_name"], seen["order_amount"], seen["discount"]) == \
        ("Corner Cafe", 4200, 500)
    q = env.http.post(f"/app/api/coupon-codes/{code}/quote", headers=APP).json()
    msg = q["typed_data"]["message"]
    assert (msg["couponId"], msg["acceptor"], msg["orderAmount"]) == \
        (coupon_id, env.cafe_merchant.merchant_id, 4200)
    # A signature over another amount is refused before anything is queued.
    other = {**q["typed_data"], "message": {**msg, "orderAmount": 1}}
    r = env.http.post(f"/app/api/coupon-codes/{code}/redeem", headers=APP, json={
        "nonce": q["nonce"], "deadline": q["deadline"], "signature": _sign(member, other)})
    assert r.status_code == 422 and r.json()["code"] == "signature-mismatch", r.text

    signed = {"nonce": q["nonce"], "deadline": q["deadline"],
              "signature": _sign(member, q["typed_data"])}
    r = env.http.post(f"/app/api/coupon-codes/{code}/redeem", headers=APP, json=signed)
    assert r.status_code == 200, r.text
    op_id = r.json()["operation_id"]
    # Sending again (a lost answer) gives the same redemption back.
    again = env.http.post(f"/app/api/coupon-codes/{code}/redeem", headers=APP, json=signed)
    assert again.json()["operation_id"] == op_id
    assert env.cafe.wait_operation(op_id)["status"] == "confirmed"
    assert env.cafe.get(f"/v1/coupon-codes/{code}").json()["status"] == "used"
    catch_up(env)
    (coupon,) = env.http.get("/app/api/coupons").json()["coupons"]
    assert coupon["status"] == "used" and coupon["used_at_merchant"] == \
        env.cafe_merchant.merchant_id
    # A used coupon cannot be shown again.
    r = env.http.post(f"/app/api/coupons/{coupon_id}/present", headers=APP)
    assert r.status_code == 409 and r.json()["code"] == "coupon-not-valid"


def test_a_coupon_code_is_the_holders_alone(env: ApiEnv) -> None:
    member, stranger = Account.create(), Account.create()
    assert sign_in(env, member).status_code == 200
    coupon_id = _claim_voucher(env, member, create_campaign(env))
    code = env.http.post(f"/app/api/coupons/{coupon_id}/present", headers=APP).json()["code"]
    # A new code for the same coupon replaces the old one (a screenshot of it is dead).
    fresh = env.http.post(f"/app/api/coupons/{coupon_id}/present", headers=APP).json()["code"]
    r = env.cafe.post(f"/v1/coupon-codes/{code}/scan", {"order_id": "C-1", "order_amount": 900})
    assert r.status_code == 404
    env.http.cookies.clear()
    assert sign_in(env, stranger).status_code == 200
    assert env.http.get(f"/app/api/coupon-codes/{fresh}").status_code == 404
    r = env.http.post(f"/app/api/coupons/{coupon_id}/present", headers=APP)
    assert r.status_code == 404
    # The merchant that did not scan it cannot read it.
    assert env.store.get(f"/v1/coupon-codes/{fresh}").status_code == 404


def test_a_tier_locked_vouchers_claim_in_the_app_is_refused_below_the_tier(env: ApiEnv) -> None:
    member = Account.create()
    assert sign_in(env, member).status_code == 200
    cid = create_campaign(env)
    assert env.store.post("/v1/memberships/tiers", {"tiers": [
        {"level": 1, "name": "silver", "min_points": 1000, "window_days": 365,
         "multiplier_bps": 10_000}]}).status_code == 200
    assert env.store.post(f"/v1/memberships/campaigns/{cid}/tier",
                          {"min_level": 1}).status_code == 200
    v = env.store.post("/v1/coupons/vouchers", {"campaign_id": cid,
                                                "expires_at": now(env) + 86400}).json()
    r = env.http.post("/app/api/vouchers/claim", json={"code": v["code"]}, headers=APP)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "tier-too-low"
    assert env.http.get("/app/api/coupons").json()["coupons"] == []
