"""Claiming custodial points over HTTP (real app and workers, anvil, SQLite): a merchant hands
out a one-time link code for a member id; the member, signed in with a wallet, submits it;
every program's points move on chain with their lots, expiry and pending points, once; the
member id is linked to the wallet from then on; the audit stays clean. Used, expired, unknown
and replaced codes are refused with a plain code; a move that failed says which program and a
retry completes it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import update

from ledger import runtime
from ledger.audit.engine import run_audit
from ledger.contracts.compiler import Artifact
from ledger.members import repos as member_repos
from ledger.settings import Settings
from ledger.store.models import MemberClaimMove, MemberLinkCode, Operation

from .conftest import ApiEnv, make_env, poll_until
from .test_coupons_api import catch_up, create_campaign, grant, problem
from .test_member_session import APP, sign_in


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}))


def _issue(client: Any, member_id: str, points: int, order_id: str,
           release_at: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"member_id": member_id, "points": points, "order_id": order_id}
    if release_at is not None:
        body["release_at"] = release_at
    r = client.post("/v1/points/issue", body)
    assert r.status_code == 202, r.text
    op = client.wait_operation(r.json()["id"])
    assert op["status"] == "confirmed", op
    return dict(op)


def _code(env: ApiEnv, member_id: str, client: Any = None) -> str:
    r = (client or env.store).post("/v1/members/link-codes", {"member_id": member_id})
    assert r.status_code == 201, r.text
    assert r.json()["expires_at"] > time.time() + 14 * 60
    return str(r.json()["code"])


def _claim(env: ApiEnv, code: str) -> Any:
    return env.http.post("/app/api/claims", json={"code": code}, headers=APP)


def _claim_done(env: ApiEnv) -> dict[str, Any]:
    return dict(poll_until(lambda: env.http.get("/app/api/claims").json(),
                      lambda v: v["state"] in ("done", "failed")))


def _ops(env: ApiEnv) -> int:
    with env.alliance.store.read_session() as s:
        return s.query(Operation).count()


def test_a_member_ids_points_move_to_the_wallet_with_lots_expiry_and_pending_once(
        env: ApiEnv, artifacts: dict[str, Artifact]) -> None:
    member_id = "claim-" + Account.create().address[-8:]
    _issue(env.store, member_id, 120, "CL-1")
    release = int(time.time()) + 5 * 86_400
    _issue(env.cafe, member_id, 30, "CL-2")
    _issue(env.cafe, member_id, 40, "CL-3", release_at=release)
    wallet = Account.create()
    assert sign_in(env, wallet).status_code == 200
    assert env.http.get("/app/api/claims").json()["state"] == "none"
    code = _code(env, member_id)
    r = _claim(env, code.lower().replace("-", " "))  # as a member might type it
    assert r.status_code == 202, r.text
    first = r.json()
    assert first["wallet"] == wallet.address
    assert [m["merchant_id"] for m in first["moves"]] == sorted(
        [env.store_merchant.merchant_id, env.cafe_merchant.merchant_id])
    done = _claim_done(env)
    assert done["state"] == "done", done
    catch_up(env)
    mine = env.http.get("/app/api/balances").json()
    by = {p["merchant_id"]: p for p in mine["programs"]}
    store, cafe = by[env.store_merchant.merchant_id], by[env.cafe_merchant.merchant_id]
    assert store["balance"] == 120 and store["spendable"] == 120
    assert cafe["balance"] == 70 and cafe["pending"] == 40 and cafe["spendable"] == 30
    assert all(lot["expires_at"] is None or lot["expires_at"] > time.time()
               for p in (store, cafe) for lot in p["lots"])
    # The same code again from the same wallet: the same claim, nothing queued again.
    before = _ops(env)
    again = _claim(env, code)
    assert again.status_code == 202 and again.json()["moves"] == done["moves"]
    assert _ops(env) == before
    # From now on the member id's new points go to the wallet.
    _issue(env.store, member_id, 5, "CL-4")
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.balance_of(wallet.address) == 125
    history = env.http.get("/app/api/history").json()
    assert "moved_in" in {e["kind"] for e in history["events"]}
    report = run_audit(env.alliance.gateway, artifacts,
                       registry=env.alliance.contracts.registry.address, from_block=0)
    assert report.clean, [f.message for f in report.violations]


def test_a_member_ids_coupons_move_to_the_wallet_with_its_points(
        env: ApiEnv, artifacts: dict[str, Artifact]) -> None:
    """Issue 12: the claim moves coupons too. A coupon granted to the member id's custodial
    account (a non-transferable campaign's: it stays with the same member) lands in the
    wallet, listed by the app, owned on chain, the audit clean; a retry or a second claim
    queues nothing more."""
    member_id = "claim-" + Account.create().address[-8:]
    _issue(env.store, member_id, 40, "CC-1")
    with env.alliance.store.session() as s:
        custodial = member_repos.get_or_create_member(
            s, env.alliance.master_key, member_id=member_id).account
    cid = create_campaign(env, transferable=False)
    (coupon,) = grant(env, cid, custodial)
    wallet = Account.create()
    assert sign_in(env, wallet).status_code == 200
    assert env.http.get("/app/api/coupons").json()["coupons"] == []
    code = _code(env, member_id, env.cafe)  # the cafe's counter hands out the code
    r = _claim(env, code)
    assert r.status_code == 202, r.text
    moves = {m["asset"]: m for m in r.json()["moves"]}
    book = env.alliance.contracts.coupons
    assert book is not None
    assert set(moves) == {"points", "coupons"}
    assert moves["coupons"]["program"] == book.address
    assert moves["coupons"]["merchant_id"] == env.cafe_merchant.merchant_id
    done = _claim_done(env)
    assert done["state"] == "done", done
    catch_up(env)
    assert book.owner_of(int(coupon)) == wallet.address
    mine = env.http.get("/app/api/coupons").json()["coupons"]
    assert [(c["coupon_id"], c["campaign_id"]) for c in mine] == [(coupon, cid)]
    assert env.store.get(f"/v1/coupons/members/{custodial}").json()["coupons"] == []
    before = _ops(env)
    assert _claim(env, code).json()["moves"] == done["moves"]
    assert env.http.post("/app/api/claims/retry", headers=APP).status_code == 202
    assert _ops(env) == before
    report = run_audit(env.alliance.gateway, artifacts,
                       registry=env.alliance.contracts.registry.address, from_block=0)
    assert report.clean, [f.message for f in report.violations]


def test_every_coupon_moves_when_a_member_id_holds_more_than_one_move_carries(
        env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """The custodial key is erased once a claim is done, so a coupon left in the custodial
    account could never move again: a member id holding more coupons than one move carries
    (200; 2 here) gets as many moves as it takes, and every coupon lands in the wallet."""
    from ledger.coupons import kinds as coupon_kinds

    monkeypatch.setattr(coupon_kinds, "MAX_MOVED_COUPONS", 2)
    member_id = "claim-" + Account.create().address[-8:]
    _issue(env.store, member_id, 10, "CM-1")
    with env.alliance.store.session() as s:
        custodial = member_repos.get_or_create_member(
            s, env.alliance.master_key, member_id=member_id).account
    cid = create_campaign(env, transferable=False)
    coupons = grant(env, cid, *[custodial] * 5)
    assert len(coupons) == 5
    wallet = Account.create()
    assert sign_in(env, wallet).status_code == 200
    r = _claim(env, _code(env, member_id))
    assert r.status_code == 202, r.text
    assert [m["asset"] for m in r.json()["moves"]].count("coupons") == 3
    done = _claim_done(env)
    assert done["state"] == "done", done
    catch_up(env)
    book = env.alliance.contracts.coupons
    assert book is not None
    assert all(book.owner_of(int(c)) == wallet.address for c in coupons)
    assert env.store.get(f"/v1/coupons/members/{custodial}").json()["coupons"] == []
    assert sorted(c["coupon_id"] for c in env.http.get("/app/api/coupons").json()["coupons"]) \
        == sorted(coupons)


def test_used_expired_unknown_and_replaced_codes_are_refused_plainly(env: ApiEnv) -> None:
    member_id = "claim-" + Account.create().address[-8:]
    _issue(env.store, member_id, 10, "CU-1")
    replaced = _code(env, member_id)
    code = _code(env, member_id)  # a new code ends the earlier one
    wallet, other = Account.create(), Account.create()
    assert sign_in(env, wallet).status_code == 200
    problem(_claim(env, replaced), 410, "link-code-expired")
    problem(_claim(env, "ABCDE-FGHJK"), 404, "link-code-unknown")
    problem(_claim(env, "not a code"), 422, "validation-error")
    assert _claim(env, code).status_code == 202
    assert _claim_done(env)["state"] == "done"
    problem(env.store.post("/v1/members/link-codes", {"member_id": member_id}), 409,
            "member-already-linked")
    env.http.cookies.clear()
    assert sign_in(env, other).status_code == 200
    problem(_claim(env, code), 409, "link-code-used")
    # An expired code: the counter's 15 minutes are over.
    late_id = "claim-" + Account.create().address[-8:]
    late = _code(env, late_id)
    with env.alliance.store.session() as s:
        s.execute(update(MemberLinkCode).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)).where(
            MemberLinkCode.used_at.is_(None)))
    before = _ops(env)
    problem(_claim(env, late), 410, "link-code-expired")
    assert _ops(env) == before
    assert env.http.get("/app/api/claims").json()["state"] == "none"


def test_link_codes_are_rate_limited_per_member_id(env: ApiEnv) -> None:
    member_id = "claim-" + Account.create().address[-8:]
    for _ in range(5):
        _code(env, member_id)
    problem(env.store.post("/v1/members/link-codes", {"member_id": member_id}), 429,
            "link-codes-rate-limited")
    with env.alliance.store.read_session() as s:
        assert all(len(r.code_hash) == 64 for r in s.query(MemberLinkCode))


def test_a_failed_move_names_its_program_and_a_retry_completes_the_claim(
        env: ApiEnv) -> None:
    member_id = "claim-" + Account.create().address[-8:]
    _issue(env.store, member_id, 50, "CF-1")
    _issue(env.cafe, member_id, 20, "CF-2")
    cafe = env.cafe_merchant.merchant_id
    r = env.admin.post(f"/v1/admin/merchants/{cafe}/suspend", None)
    assert r.status_code == 200, r.text
    code = _code(env, member_id)
    wallet = Account.create()
    assert sign_in(env, wallet).status_code == 200
    assert _claim(env, code).status_code == 202
    failed = _claim_done(env)
    assert failed["state"] == "failed", failed
    by = {m["merchant_id"]: m for m in failed["moves"]}
    assert by[cafe]["status"] == "failed" and by[cafe]["error_code"] == "RegistryInvalidStatus"
    assert by[env.store_merchant.merchant_id]["status"] == "confirmed"
    r = env.admin.post(f"/v1/admin/merchants/{cafe}/reinstate", None)
    assert r.status_code == 200, r.text
    r = env.http.post("/app/api/claims/retry", headers=APP)
    assert r.status_code == 202, r.text
    done = _claim_done(env)
    assert done["state"] == "done", done
    catch_up(env)
    by_program = {p["merchant_id"]: p["balance"]
                  for p in env.http.get("/app/api/balances").json()["programs"]}
    assert by_program[cafe] == 20 and by_program[env.store_merchant.merchant_id] == 50


def test_a_failed_coupon_move_is_retried_with_a_fresh_signature(env: ApiEnv) -> None:
    member_id = "claim-" + Account.create().address[-8:]
    _issue(env.store, member_id, 10, "CR-1")
    with env.alliance.store.session() as s:
        custodial = member_repos.get_or_create_member(
            s, env.alliance.master_key, member_id=member_id).account
    (coupon,) = grant(env, create_campaign(env), custodial)
    code = _code(env, member_id, env.cafe)
    cafe = env.cafe_merchant.merchant_id
    # The relaying merchant is suspended by the time the move goes out.
    assert env.admin.post(f"/v1/admin/merchants/{cafe}/suspend", None).status_code == 200
    wallet = Account.create()
    assert sign_in(env, wallet).status_code == 200
    assert _claim(env, code).status_code == 202
    failed = _claim_done(env)
    assert failed["state"] == "failed", failed
    (moved,) = [m for m in failed["moves"] if m["asset"] == "coupons"]
    assert moved["status"] == "failed" and moved["error_code"] == "CouponMerchantNotActive"
    book = env.alliance.contracts.coupons
    assert book is not None and book.owner_of(int(coupon)) == custodial
    assert env.admin.post(f"/v1/admin/merchants/{cafe}/reinstate", None).status_code == 200
    r = env.http.post("/app/api/claims/retry", headers=APP)
    assert r.status_code == 202, r.text
    (again,) = [m for m in r.json()["moves"] if m["asset"] == "coupons"]
    assert again["operation_id"] != moved["operation_id"]
    done = _claim_done(env)
    assert done["state"] == "done", done
    assert book.owner_of(int(coupon)) == wallet.address


def test_a_claim_waits_for_a_coupon_still_on_its_way_to_the_member_id(
        settings: Settings) -> None:
    # Workers stopped: a grant to the custodial account is queued, not minted, so no move
    # could name its coupon. The claim is refused with nothing changed until it lands and is
    # indexed.
    for env in make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}),
                        run_workers=False):
        member_id = "claim-" + Account.create().address[-8:]
        with env.alliance.store.session() as s:
            custodial = member_repos.get_or_create_member(
                s, env.alliance.master_key, member_id=member_id).account
        r = env.store.post("/v1/coupons/campaigns", {"kind": "fixed_off", "value": 500,
                                                     "budget": 100_000})
        assert r.status_code == 202, r.text
        runtime.outbox_worker(env.alliance).drain()
        book = env.alliance.contracts.coupons
        assert book is not None
        r = env.store.post("/v1/coupons/grant", {"campaign_id": book.campaign_count(),
                                                 "members": [custodial]})
        assert r.status_code == 202, r.text
        code = _code(env, member_id)
        wallet = Account.create()
        assert sign_in(env, wallet).status_code == 200
        before = _ops(env)
        problem(_claim(env, code), 409, "coupons-on-the-way")
        assert _ops(env) == before
        assert env.http.get("/app/api/claims").json()["state"] == "none"
        runtime.outbox_worker(env.alliance).drain()
        # Minted, but not yet in the read model the move's list comes from: still waiting.
        problem(_claim(env, code), 409, "coupons-on-the-way")
        catch_up(env)
        r = _claim(env, code)
        assert r.status_code == 202, r.text
        assert [m["asset"] for m in r.json()["moves"]] == ["coupons"]
        runtime.outbox_worker(env.alliance).drain()
        assert env.http.get("/app/api/claims").json()["state"] == "done"
        catch_up(env)
        held = env.store.get(f"/v1/coupons/members/{wallet.address}").json()["coupons"]
        assert len(held) == 1 and book.owner_of(int(held[0]["coupon_id"])) == wallet.address


def test_points_still_on_their_way_to_the_member_id_are_moved_too(settings: Settings) -> None:
    # Workers stopped: the issue is queued, not on chain, when the member claims. The
    # merchant's operations go out in order, so the move queued after it takes it along.
    for env in make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}),
                        run_workers=False):
        member_id = "claim-" + Account.create().address[-8:]
        r = env.store.post("/v1/points/issue", {"member_id": member_id, "points": 15,
                                                "order_id": "CW-1"})
        assert r.status_code == 202, r.text
        code = _code(env, member_id)
        wallet = Account.create()
        assert sign_in(env, wallet).status_code == 200
        r = _claim(env, code)
        assert r.status_code == 202, r.text
        assert [m["merchant_id"] for m in r.json()["moves"]] == [env.store_merchant.merchant_id]
        runtime.outbox_worker(env.alliance).drain()
        assert env.http.get("/app/api/claims").json()["state"] == "done"
        program = env.alliance.contracts.program(env.store_merchant.program)
        assert program.balance_of(wallet.address) == 15
        # "Delete my data": nothing off chain ties the wallet to the member id's claim.
        assert env.http.delete("/app/api/my-data", headers=APP).status_code == 200
        with env.alliance.store.read_session() as s:
            assert s.query(MemberClaimMove).count() == 0
            assert s.query(MemberLinkCode).filter(MemberLinkCode.wallet.is_not(None)).count() == 0


def test_points_earned_before_the_claim_count_towards_the_wallets_tier(env: ApiEnv) -> None:
    """A member who earned a tier while known only by member id keeps it once the claim
    has moved the points to the wallet: the tier counts what the member id earned."""
    mid = env.store_merchant.merchant_id
    tiers = {"tiers": [{"level": 1, "name": "silver", "min_points": 100, "window_days": 365,
                        "multiplier_bps": 12_500}]}
    assert env.store.post("/v1/memberships/tiers", tiers).status_code == 200
    member_id = "tier-" + Account.create().address[-8:]
    _issue(env.store, member_id, 150, "TIER-1")
    wallet = Account.create()
    assert sign_in(env, wallet).status_code == 200
    before = env.store.get(f"/v1/memberships/tiers/{mid}/members/{wallet.address}").json()
    assert (before["level"], before["points_in_window"]) == (0, 0)
    assert _claim(env, _code(env, member_id)).status_code == 202
    assert _claim_done(env)["state"] == "done"
    catch_up(env)
    t = env.store.get(f"/v1/memberships/tiers/{mid}/members/{wallet.address}").json()
    assert (t["level"], t["name"], t["points_in_window"]) == (1, "silver", 150)
    # ... and the tier-aware issue earns the wallet silver's 1.25x.
    r = env.store.post("/v1/memberships/issue", {"member": wallet.address, "points": 100,
                                                 "order_id": "TIER-2"})
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.balance_of(wallet.address) == 150 + 125
