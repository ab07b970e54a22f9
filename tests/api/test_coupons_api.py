"""Coupons over HTTP, on the real app, a real anvil and SQLite: a cross-merchant campaign
granted, validated, redeemed with the holder's signature and rolled back; vouchers; refusals
as problem+json with nothing queued; 100 concurrent redemptions of one coupon."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger import runtime
from ledger.coupons.signing import redeem_coupon_typed_data
from ledger.points.service import order_ref
from ledger.settings import Settings
from ledger.store.models import Operation

from .conftest import ApiEnv, make_env


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}))


def now(env: ApiEnv) -> int:
    return int(env.alliance.gateway.block("latest")["timestamp"])


def catch_up(env: ApiEnv) -> None:
    runtime.indexer(env.alliance).catch_up()


def ops_count(env: ApiEnv) -> int:
    with env.alliance.store.read_session() as s:
        return s.query(Operation).count()


def create_campaign(env: ApiEnv, **terms: Any) -> int:
    body = {"kind": "fixed_off", "value": 500, "budget": 100_000,
            "acceptors": [env.cafe_merchant.merchant_id], **terms}
    r = env.store.post("/v1/coupons/campaigns", body)
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    catch_up(env)
    campaigns = env.store.get("/v1/coupons/campaigns").json()["campaigns"]
    return int(campaigns[-1]["campaign_id"])


def grant(env: ApiEnv, campaign_id: int, *members: str) -> list[str]:
    r = env.store.post("/v1/coupons/grant", {"campaign_id": campaign_id,
                                             "members": list(members)})
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    catch_up(env)
    out: list[str] = []
    for m in dict.fromkeys(members):
        coupons = env.store.get(f"/v1/coupons/members/{m}").json()["coupons"]
        out += [c["coupon_id"] for c in coupons if c["campaign_id"] == campaign_id]
    return out


def redeem_body(env: ApiEnv, holder: LocalAccount, coupon_id: str, *, order_id: str,
                amount: int = 10_000, nonce: int | None = None,
                acceptor: int | None = None) -> dict[str, Any]:
    nonce = int.from_bytes(os.urandom(6)) if nonce is None else nonce
    deadline = now(env) + 600
    acceptor = acceptor or env.cafe_merchant.merchant_id
    book = env.alliance.contracts.coupons
    assert book is not None
    typed = redeem_coupon_typed_data(
        chain_id=env.alliance.gateway.chain_id, book=book.address,
        registry=env.alliance.contracts.deployment.registry, holder=holder.address,
        coupon_id=int(coupon_id), acceptor=acceptor, order_ref=order_ref(order_id),
        order_amount=amount, nonce=nonce, deadline=deadline)
    sig = Account.sign_typed_data(holder.key, full_message=typed).signature
    return {"coupon_id": coupon_id, "order_id": order_id, "order_amount": amount,
            "nonce": nonce, "deadline": deadline, "signature": "0x" + bytes(sig).hex()}


def problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert r.json()["code"] == code, r.json()


def test_cross_merchant_coupon_is_validated_redeemed_cleared_and_rolled_back(
        env: ApiEnv) -> None:
    member = Account.create()
    cid = create_campaign(env, min_spend=2000)
    (coupon,) = grant(env, cid, member.address)
    r = env.cafe.post("/v1/coupons/validate", {"coupon_id": coupon, "order_id": "C-1",
                                               "order_amount": 1999})
    assert r.json() == {"coupon_id": coupon, "applies": False,
                        "reason": "coupon-under-minimum-spend", "discount": 0}
    r = env.cafe.post("/v1/coupons/validate", {"coupon_id": coupon, "order_id": "C-1",
                                               "order_amount": 8000})
    assert r.json()["applies"] and r.json()["discount"] == 500
    r = env.cafe.post("/v1/coupons/redeem", redeem_body(env, member, coupon, order_id="C-1"))
    assert r.status_code == 202, r.text
    assert env.cafe.wait_operation(r.json()["id"])["status"] == "confirmed"
    clr = env.alliance.contracts.clearing
    p = clr.current_period()
    assert clr.position_of(p, env.store_merchant.merchant_id)[0] == -500
    assert clr.position_of(p, env.cafe_merchant.merchant_id)[0] == 500
    catch_up(env)
    r = env.store.get(f"/v1/coupons/campaigns/{cid}/stats")
    assert r.status_code == 200, r.text
    stats = r.json()
    assert (stats["granted"], stats["redeemed"], stats["budget_used"]) == (1, 1, 500)
    mine = env.store.get(f"/v1/coupons/members/{member.address}").json()["coupons"]
    assert [(c["coupon_id"], c["status"], c["discount"]) for c in mine] == [(coupon, "used", 500)]
    # Used: a second redemption is refused before anything is queued.
    before = ops_count(env)
    problem(env.cafe.post("/v1/coupons/redeem",
                          redeem_body(env, member, coupon, order_id="C-2")), 409, "coupon-used")
    assert ops_count(env) == before
    # Rolled back by the acceptor: usable again, the clearing moves back.
    problem(env.store.post("/v1/coupons/rollback", {"coupon_id": coupon, "order_id": "C-1"}),
            403, "forbidden")
    r = env.cafe.post("/v1/coupons/rollback", {"coupon_id": coupon, "order_id": "C-1"})
    assert env.cafe.wait_operation(r.json()["id"])["status"] == "confirmed"
    assert clr.position_of(p, env.cafe_merchant.merchant_id)[0] == 0
    catch_up(env)
    stats = env.store.get(f"/v1/coupons/campaigns/{cid}/stats").json()
    assert (stats["redeemed"], stats["rolled_back"], stats["budget_used"]) == (0, 1, 0)
    r = env.cafe.post("/v1/coupons/redeem", redeem_body(env, member, coupon, order_id="C-3"))
    assert env.cafe.wait_operation(r.json()["id"])["status"] == "confirmed"


def test_refusals_are_problem_json_and_queue_nothing(env: ApiEnv) -> None:
    member, other = Account.create(), Account.create()
    cid = create_campaign(env, valid_days=1, budget=600)
    (coupon,) = grant(env, cid, member.address)
    before = ops_count(env)
    # Another merchant's campaign: not yours to grant or pause.
    problem(env.cafe.post("/v1/coupons/grant", {"campaign_id": cid,
                                                "members": [other.address]}),
            403, "forbidden")
    problem(env.cafe.post(f"/v1/coupons/campaigns/{cid}/pause", {}), 403, "forbidden")
    problem(env.store.post("/v1/coupons/grant", {"campaign_id": 999, "members": [other.address]}),
            404, "not-found")
    # Signed by someone else than the holder.
    problem(env.cafe.post("/v1/coupons/redeem", redeem_body(env, other, coupon, order_id="X")),
            422, "signature-mismatch")
    # Signed for another acceptor than the relaying merchant.
    problem(env.cafe.post("/v1/coupons/redeem", redeem_body(
        env, member, coupon, order_id="X", acceptor=env.store_merchant.merchant_id)),
        422, "signature-mismatch")
    problem(env.cafe.post("/v1/coupons/redeem", {"coupon_id": "1", "order_id": "X",
                                                 "order_amount": 1, "nonce": 0,
                                                 "deadline": now(env) + 60,
                                                 "signature": "0x" + "11" * 65}),
            422, "validation-error")
    problem(env.cafe.post("/v1/coupons/rollback", {"coupon_id": coupon, "order_id": "X"}),
            404, "not-found")
    assert ops_count(env) == before
    env.alliance.gateway.rpc("evm_increaseTime", [2 * 86400])
    env.alliance.gateway.rpc("evm_mine")
    problem(env.cafe.post("/v1/coupons/redeem", redeem_body(env, member, coupon, order_id="Y")),
            409, "coupon-expired")
    catch_up(env)
    mine = env.store.get(f"/v1/coupons/members/{member.address}").json()["coupons"]
    assert [c["status"] for c in mine] == ["expired"]
    assert ops_count(env) == before


def test_a_campaign_id_beyond_the_store_is_refused_not_a_crash(env: ApiEnv) -> None:
    """Schemathesis found GET .../campaigns/18446744073709551615/stats answering 500 (the store
    keeps ids as signed 64-bit integers): past that bound it is a 422, below it a 404."""
    problem(env.store.get(f"/v1/coupons/campaigns/{2**64 - 1}/stats"), 422, "validation-error")
    problem(env.store.get(f"/v1/coupons/campaigns/{2**63}/stats"), 422, "validation-error")
    problem(env.store.get(f"/v1/coupons/campaigns/{2**63 - 1}/stats"), 404, "not-found")


def test_paused_campaign_refuses_grants_until_resumed(env: ApiEnv) -> None:
    cid = create_campaign(env)
    r = env.store.post(f"/v1/coupons/campaigns/{cid}/pause", {})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    problem(env.store.post(f"/v1/coupons/campaigns/{cid}/pause", {}), 409,
            "coupon-campaign-pause-unchanged")
    problem(env.store.post("/v1/coupons/grant", {"campaign_id": cid,
                                                 "members": [Account.create().address]}),
            409, "coupon-campaign-paused")
    r = env.store.post(f"/v1/coupons/campaigns/{cid}/resume", {})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    catch_up(env)
    assert env.store.get("/v1/coupons/campaigns").json()["campaigns"][-1]["paused"] is False
    assert grant(env, cid, Account.create().address)


def test_voucher_is_claimed_once_and_a_cancelled_one_never(env: ApiEnv) -> None:
    cid = create_campaign(env)
    member = Account.create()
    ops = ops_count(env)
    v = env.store.post("/v1/coupons/vouchers", {"campaign_id": cid,
                                                "expires_at": now(env) + 86400}).json()
    assert ops_count(env) == ops  # signing a voucher touches neither chain nor outbox
    r = env.store.post("/v1/coupons/vouchers/claim", {"code": v["code"], "to": member.address})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    problem(env.store.post("/v1/coupons/vouchers/claim", {"code": v["code"],
                                                          "to": member.address}),
            409, "coupon-voucher-used")
    w = env.store.post("/v1/coupons/vouchers", {"campaign_id": cid,
                                                "expires_at": now(env) + 86400}).json()
    r = env.store.post("/v1/coupons/vouchers/cancel", {"code": w["code"]})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    problem(env.store.post("/v1/coupons/vouchers/claim", {"code": w["code"],
                                                          "to": member.address}),
            409, "coupon-voucher-cancelled")
    # A code whose signature is not the issuer's (the cafe signs one for the store's campaign).
    problem(env.cafe.post("/v1/coupons/vouchers", {"campaign_id": cid,
                                                   "expires_at": now(env) + 86400}),
            403, "forbidden")
    catch_up(env)
    stats = env.store.get(f"/v1/coupons/campaigns/{cid}/stats").json()
    assert (stats["granted"], stats["claimed"]) == (1, 1)


def test_coupon_metadata_is_served_without_login(env: ApiEnv) -> None:
    cid = create_campaign(env, kind="percent_off", value=1500, max_discount=2000,
                          valid_days=30)
    (coupon,) = grant(env, cid, Account.create().address)
    r = env.http.get(f"/v1/public/coupons/{coupon}/metadata")
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["name"].startswith("Grand Plaza Department Store: 15% off")
    assert {"trait_type": "used", "value": "no"} in meta["attributes"]
    assert env.http.get("/v1/public/coupons/12345/metadata").status_code == 422


def test_100_concurrent_redemptions_of_one_coupon_one_succeeds_the_others_conflict(
        env: ApiEnv) -> None:
    member = Account.create()
    cid = create_campaign(env)
    (coupon,) = grant(env, cid, member.address)
    bodies = [redeem_body(env, member, coupon, order_id=f"RUSH-{i}", nonce=i)
              for i in range(100)]
    results: list[Any] = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(i: int) -> None:
        start.wait()
        results[i] = env.cafe.post("/v1/coupons/redeem", bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = Counter(r.status_code for r in results)
    assert statuses == {202: 1, 409: 99}, [r.text for r in results if r.status_code >= 500][:3]
    codes = Counter(r.json()["code"] for r in results if r.status_code == 409)
    # A loser sees either the winner's lock or, once the winner landed, the used coupon.
    assert set(codes) <= {"coupon-redemption-in-progress", "coupon-used"}, codes
    (winner,) = [r for r in results if r.status_code == 202]
    assert env.cafe.wait_operation(winner.json()["id"])["status"] == "confirmed"
    book = env.alliance.contracts.coupons
    assert book is not None and book.is_used(int(coupon))
    p = env.alliance.contracts.clearing.current_period()
    assert env.alliance.contracts.clearing.position_of(p, env.cafe_merchant.merchant_id)[0] == 500


def test_the_issuer_revokes_an_unused_coupon_idempotently_and_nobody_else_can(
        env: ApiEnv) -> None:
    member = Account.create()
    cid = create_campaign(env)
    taken, used = grant(env, cid, member.address, member.address)
    r = env.cafe.post("/v1/coupons/redeem", redeem_body(env, member, used, order_id="RV-1"))
    assert env.cafe.wait_operation(r.json()["id"])["status"] == "confirmed"
    before = ops_count(env)
    # Another merchant's view: the coupon is not theirs, as if it did not exist.
    problem(env.cafe.post(f"/v1/coupons/{taken}/revoke", {}), 404, "not-found")
    # Used: it stays.
    problem(env.store.post(f"/v1/coupons/{used}/revoke", {}), 409, "coupon-already-used")
    assert ops_count(env) == before
    # The issuer's revoke, sent twice with one Idempotency-Key: one operation.
    first = env.store.post(f"/v1/coupons/{taken}/revoke", {}, idempotency_key="rv-taken")
    again = env.store.post(f"/v1/coupons/{taken}/revoke", {}, idempotency_key="rv-taken")
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["id"] == again.json()["id"] and ops_count(env) == before + 1
    assert env.store.wait_operation(first.json()["id"])["status"] == "confirmed"
    catch_up(env)
    mine = env.store.get(f"/v1/coupons/members/{member.address}").json()["coupons"]
    assert [c["coupon_id"] for c in mine] == [used]
    stats = env.store.get(f"/v1/coupons/campaigns/{cid}/stats").json()
    assert (stats["granted"], stats["revoked"], stats["redeemed"]) == (2, 1, 1)
    # Gone: revoked again it is not found.
    problem(env.store.post(f"/v1/coupons/{taken}/revoke", {}), 404, "not-found")
