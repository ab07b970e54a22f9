"""Claiming custodial points in a real browser (Debian's Chromium, 390x844) against the real
service on loopback: a bakery whose points expire issues points (and pending points) to a
member id, which the service keeps in a custodial account; the counter gets a one-time link
code through the merchant API; the member makes a card in the page (a wallet), opens Me →
Claim kept points, types the code, watches the move and sees the points with their expiry
and the coupon the store granted to the member id moved too;
the same code from another card is refused in plain words. zh-CN, then English.
Screenshots under ``$ALLIANCE_TEST_ARTIFACTS`` (default: pytest's tmp dir)."""

# ruff: noqa: F811 - the fixtures imported from test_member_app are the parameters below
from __future__ import annotations

import time

import httpx
from playwright.sync_api import Browser

from api.client import AllianceClient
from ledger.members import repos as member_repos
from ledger.merchants.clients import ProgramConfig
from ledger.merchants.service import admit_merchant
from tests.e2e.test_member_app import (  # noqa: F401 - fixtures
    AppServer,
    Journey,
    app_server,
)
from tests.e2e.test_member_app_coupons import get_card, new_page

DAY = 86_400
MONTHLY = ProgramConfig(period_length=30 * DAY, expiry_periods=12, max_pending_days=14)


def _issue(client: AllianceClient, member_id: str, points: int, order_id: str,
           release_at: int | None = None) -> None:
    r = client.post("/v1/points/issue", {"member_id": member_id, "points": points,
                                         "order_id": order_id, "release_at": release_at})
    assert r.status_code == 202, r.text
    assert client.wait_operation(r.json()["id"])["status"] == "confirmed"


def _coupon_to_custodial(env: AppServer, member_id: str) -> int:
    """A coupon the store grants to the member id's custodial account, once indexed."""
    with env.alliance.store.session() as s:
        custodial = member_repos.get_or_create_member(
            s, env.alliance.master_key, member_id=member_id).account
    r = env.store.post("/v1/coupons/campaigns", {"kind": "fixed_off", "value": 500,
                                                 "budget": 100_000, "transferable": False})
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    book = env.alliance.contracts.coupons
    assert book is not None
    r = env.store.post("/v1/coupons/grant", {"campaign_id": book.campaign_count(),
                                             "members": [custodial]})
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        held = env.store.get(f"/v1/coupons/members/{custodial}").json()["coupons"]
        if held:
            return int(held[0]["coupon_id"])
        time.sleep(0.1)
    raise AssertionError("the grant was not indexed within 30 s")


def test_claiming_points_kept_for_a_member_id_in_chromium(app_server: AppServer,
                                                          browser: Browser,
                                                          shots: object) -> None:
    env = app_server
    bakery = admit_merchant(env.alliance, name="Harbour Bakery", symbol="HB", rate=1,
                            config=MONTHLY)
    with httpx.Client(base_url=env.url, timeout=30) as http:
        till = AllianceClient(http, bakery.key_id, bakery.secret)
        member_id = "HB-0042"
        _issue(till, member_id, 180, "HB-1")
        _issue(till, member_id, 20, "HB-2", release_at=int(time.time()) + 3 * DAY)
        _issue(env.store, member_id, 60, "GP-1")
        coupon = _coupon_to_custodial(env, member_id)
        r = till.post("/v1/members/link-codes", {"member_id": member_id})
        assert r.status_code == 201, r.text
        code = r.json()["code"]

    context, page, errors = new_page(env, browser)
    j = Journey(page, shots)  # type: ignore[arg-type]
    wallet = get_card(env, page)
    page.click("[data-tab=me]")
    j.shot("me")
    page.click("#open-claim")
    page.wait_for_selector("#claim-code", timeout=30_000)
    assert "领取为您保管的积分" in page.inner_text("#screen")
    j.shot("claim-form")
    page.fill("#claim-code", "ABCDE-FGH23")  # a typo: not a code the counter gave
    page.click("#claim-submit")
    page.wait_for_selector("#claim-note [role=alert]", timeout=30_000)
    assert "找不到这个领取码" in page.inner_text("#claim-note")
    j.shot("claim-unknown-code")
    page.fill("#claim-code", code.lower())
    page.click("#claim-submit")
    page.wait_for_selector("#claim-status[data-state=done]", timeout=90_000)
    bakery_row = page.locator(f".cl-move[data-merchant='{bakery.merchant_id}']")
    assert bakery_row.get_attribute("data-status") == "confirmed"
    text = bakery_row.inner_text()
    assert "200 分" in text and "到期" in text and "20 分待生效" in text, text
    store_row = page.locator(f".cl-move[data-merchant='{env.store_merchant.merchant_id}']")
    assert "60 分" in store_row.inner_text()
    coupons_row = page.locator(".cl-move[data-asset=coupons]")
    assert coupons_row.get_attribute("data-status") == "confirmed"
    assert "优惠券" in coupons_row.inner_text()
    book = env.alliance.contracts.coupons
    assert book is not None and book.owner_of(coupon) == wallet
    j.shot("claim-done")
    page.click("#lang")
    page.click("[data-tab=me]")
    page.click("#open-claim")
    page.wait_for_selector("#claim-status[data-state=done]", timeout=30_000)
    text = page.locator(f".cl-move[data-merchant='{bakery.merchant_id}']").inner_text()
    assert "200 points" in text and "expire" in text, text
    assert "Coupons" in page.locator(".cl-move[data-asset=coupons]").inner_text()
    j.shot("claim-done-en")
    page.click("#claim-to-card")
    page.wait_for_selector(".member-card", timeout=30_000)
    j.shot("card-after-claim")
    assert errors == []
    context.close()

    # The same code from another member's card: refused, in plain words.
    context, page, errors = new_page(env, browser)
    j.page = page
    get_card(env, page)
    page.click("[data-tab=me]")
    page.click("#open-claim")
    page.wait_for_selector("#claim-code", timeout=30_000)
    page.fill("#claim-code", code)
    page.click("#claim-submit")
    page.wait_for_selector("#claim-note [data-code=link-code-used]", timeout=30_000)
    assert "这个领取码已经用过了" in page.inner_text("#claim-note")
    j.shot("claim-code-used")
    assert errors == []
    context.close()
