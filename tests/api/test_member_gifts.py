"""Gifts in the member app over HTTP (real app and workers, anvil, SQLite): the catalogue of
every shop's gifts as the member sees it, a quote naming the exact points redemption, the
member's signature over it, the gift coupon in the member's coupons; a lost answer sent again
pays once; and each refusal (out of stock, over the limit, too few points, a signature over
another amount, someone else's request) changes nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.members import gifts as gifts_module
from ledger.settings import Settings
from ledger.store.models import GiftRedemption, Operation

from .conftest import ApiEnv, make_env, poll_until
from .test_coupons_api import catch_up, create_campaign, problem
from .test_member_session import APP, sign_in


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}))


def _sign(member: LocalAccount, typed: dict[str, Any]) -> str:
    return "0x" + bytes(Account.sign_typed_data(member.key, full_message=typed)
                        .signature).hex()


def _issue(env: ApiEnv, member: str, points: int, order_id: str) -> None:
    r = env.store.post("/v1/points/issue", {"member": member, "points": points,
                                            "order_id": order_id})
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"


def _gift(env: ApiEnv, campaign_id: int, *, name: str, points: int, stock: int,
          limit: int = 0) -> int:
    r = env.store.post("/v1/offers/gifts", {"name": name, "points": points,
                                            "campaign_id": campaign_id, "stock": stock,
                                            "per_member_limit": limit})
    assert r.status_code == 201, r.text
    return int(r.json()["gift_id"])


def _catalogue(env: ApiEnv) -> dict[int, dict[str, Any]]:
    r = env.http.get("/app/api/gifts")
    assert r.status_code == 200, r.text
    return {g["gift_id"]: g for g in r.json()["gifts"]}


def _state(env: ApiEnv) -> tuple[int, int, int]:
    """(operations, gift redemptions, units of the shop's gifts left): what a refusal must
    leave as it was."""
    with env.alliance.store.read_session() as s:
        return (s.query(Operation).count(), s.query(GiftRedemption).count(),
                sum(g["left"] for g in env.store.get("/v1/offers/gifts").json()["gifts"]))


def test_member_redeems_a_gift_with_signed_points_and_holds_its_coupon(env: ApiEnv) -> None:
    member = Account.create()
    assert sign_in(env, member).status_code == 200
    gift_campaign = create_campaign(env, kind="gift", value=2500)
    gid = _gift(env, gift_campaign, name="Umbrella", points=100, stock=2, limit=1)
    _issue(env, member.address, 250, "BUY-1")

    g = _catalogue(env)[gid]
    assert (g["name"], g["merchant_name"], g["points"], g["value"], g["left"],
            g["per_member_limit"], g["taken"], g["my_points"], g["available"]) == (
        "Umbrella", "Grand Plaza Department Store", 100, 2500, 2, 1, 0, 250, "ok")

    q = env.http.post(f"/app/api/gifts/{gid}/quote", headers=APP)
    assert q.status_code == 200, q.text
    quote = q.json()
    msg = quote["typed_data"]["message"]
    assert (msg["member"], msg["amount"], msg["merchantId"]) == (
        member.address, 100, env.store_merchant.merchant_id)
    assert quote["order_id"] == f"gift-{gid}-{quote['request_id']}"
    assert quote["typed_data"]["domain"]["verifyingContract"] == env.store_merchant.program

    # A signature over another amount is refused before anything is queued.
    before = _state(env)
    forged = {**quote["typed_data"], "message": {**msg, "amount": 1}}
    body = {"request_id": quote["request_id"], "nonce": quote["nonce"],
            "deadline": quote["deadline"], "signature": _sign(member, forged)}
    problem(env.http.post(f"/app/api/gifts/{gid}/redeem", json=body, headers=APP), 422,
            "signature-mismatch")
    assert _state(env) == before

    body["signature"] = _sign(member, quote["typed_data"])
    r = env.http.post(f"/app/api/gifts/{gid}/redeem", json=body, headers=APP)
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("paying", "granting", "done")
    # The answer was lost: sent again, the same redemption, paid once.
    again = env.http.post(f"/app/api/gifts/{gid}/redeem", json=body, headers=APP)
    assert again.status_code == 202 and again.json()["request_id"] == quote["request_id"]

    path = f"/app/api/gifts/{gid}/redemptions/{quote['request_id']}"
    done = poll_until(lambda: (catch_up(env), env.http.get(path).json())[1],
                 lambda v: v["status"] in ("done", "failed"))
    assert done["status"] == "done" and done["tx_hash"], done
    catch_up(env)
    (coupon,) = [c for c in env.http.get("/app/api/coupons").json()["coupons"]
                 if c["campaign_id"] == gift_campaign]
    assert coupon["status"] == "valid" and coupon["kind"] == "gift"
    assert env.alliance.contracts.program(env.store_merchant.program).spendable_of(
        member.address) == 150
    mine = env.http.get("/app/api/gifts/redemptions").json()["redemptions"]
    assert [(x["gift_name"], x["status"]) for x in mine] == [("Umbrella", "done")]
    assert abs(mine[0]["created_at"] - time.time()) < 600  # when it was asked for

    # Now at the per-member limit: shown so, and a quote is refused.
    g = _catalogue(env)[gid]
    assert (g["left"], g["taken"], g["my_points"], g["available"]) == (1, 1, 150,
                                                                       "member_limit")
    problem(env.http.post(f"/app/api/gifts/{gid}/quote", headers=APP), 409,
            "offers-gift-member-limit")

    # Someone else cannot read or replay the member's request.
    stranger = Account.create()
    assert sign_in(env, stranger).status_code == 200
    problem(env.http.get(path), 404, "not-found")
    problem(env.http.post(f"/app/api/gifts/{gid}/redeem", json=body, headers=APP), 404,
            "not-found")


def test_gift_refusals_give_a_code_and_change_nothing(env: ApiEnv) -> None:
    member = Account.create()
    assert sign_in(env, member).status_code == 200
    gift_campaign = create_campaign(env, kind="gift", value=900)
    gone = _gift(env, gift_campaign, name="Pen", points=1, stock=0)
    dear = _gift(env, gift_campaign, name="Bike", points=500, stock=3)
    cheap = _gift(env, gift_campaign, name="Cap", points=40, stock=3)
    _issue(env, member.address, 60, "BUY-2")

    cat = _catalogue(env)
    assert (cat[gone]["available"], cat[dear]["available"], cat[cheap]["available"]) == (
        "out_of_stock", "insufficient_points", "ok")
    before = _state(env)
    problem(env.http.post(f"/app/api/gifts/{gone}/quote", headers=APP), 409,
            "offers-gift-out-of-stock")
    problem(env.http.post(f"/app/api/gifts/{dear}/quote", headers=APP), 409,
            "offers-insufficient-points")
    problem(env.http.post("/app/api/gifts/999999/quote", headers=APP), 404, "not-found")

    # Quoted, then withdrawn by the shop before the member signed: not found. Relisted at a
    # price above what the member holds: the signed redemption is refused. No stock taken.
    quote = env.http.post(f"/app/api/gifts/{cheap}/quote", headers=APP).json()
    env.store.post(f"/v1/offers/gifts/{cheap}", {"active": False})
    problem(env.http.post(f"/app/api/gifts/{cheap}/redeem", headers=APP, json={
        "request_id": quote["request_id"], "nonce": quote["nonce"],
        "deadline": quote["deadline"], "signature": _sign(member, quote["typed_data"])}),
        404, "not-found")
    assert cheap not in _catalogue(env)  # withdrawn: no longer listed
    env.store.post(f"/v1/offers/gifts/{cheap}", {"active": True})
    env.store.post(f"/v1/offers/gifts/{cheap}", {"points": 70})
    problem(env.http.post(f"/app/api/gifts/{cheap}/redeem", headers=APP, json={
        "request_id": quote["request_id"], "nonce": quote["nonce"],
        "deadline": quote["deadline"], "signature": _sign(member, quote["typed_data"])}),
        409, "offers-insufficient-points")
    assert _state(env) == before
    # The session is required; a change without the app header is refused.
    assert env.http.post(f"/app/api/gifts/{cheap}/quote").status_code == 403


def test_the_same_gift_request_sent_twice_at_once_answers_the_one_redemption(
        env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sends of one signed request racing (as on PostgreSQL): the second looked before the
    first was recorded, so it reaches the insert and is refused there; it must answer the
    redemption the first made (202, same request id), not a 409, and pay nothing twice."""
    member = Account.create()
    assert sign_in(env, member).status_code == 200
    gid = _gift(env, create_campaign(env, kind="gift", value=900), name="Mug", points=40,
                stock=5)
    _issue(env, member.address, 100, "BUY-RACE")
    quote = env.http.post(f"/app/api/gifts/{gid}/quote", headers=APP).json()
    body = {"request_id": quote["request_id"], "nonce": quote["nonce"],
            "deadline": quote["deadline"], "signature": _sign(member, quote["typed_data"])}
    first = env.http.post(f"/app/api/gifts/{gid}/redeem", json=body, headers=APP)
    assert first.status_code == 202, first.text
    path = f"/app/api/gifts/{gid}/redemptions/{quote['request_id']}"
    done = poll_until(lambda: (catch_up(env), env.http.get(path).json())[1],
                 lambda v: v["status"] in ("done", "failed"))
    assert done["status"] == "done", done
    after_first = _state(env)  # paid and granted: nothing more is on its way

    # The second send's first look misses the first one's record, as it did in the race.
    real = gifts_module.offers_repos.gift_redemption_by_request
    looks = {"n": 0}

    def late_look(session: Any, **kw: Any) -> Any:
        looks["n"] += 1
        return None if looks["n"] == 1 else real(session, **kw)

    monkeypatch.setattr(gifts_module.offers_repos, "gift_redemption_by_request", late_look)
    second = env.http.post(f"/app/api/gifts/{gid}/redeem", json=body, headers=APP)
    monkeypatch.undo()
    assert looks["n"] >= 2  # it did reach the offers service's own check
    assert second.status_code == 202, second.text
    assert second.json()["request_id"] == quote["request_id"]
    assert _state(env) == after_first  # no second operation, redemption or reserved unit
