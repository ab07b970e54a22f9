"""The member app's coupons in a real browser (Debian's Chromium, Pixel-7-sized) against the
real service on loopback: a voucher link opened in the page lands a coupon in the card; the
member shows it at the till (a one-time code as a QR); the cafe's till scans it for an order
(the merchant API); the page shows the shop, order and discount; the member confirms with the
card's passphrase; the coupon is used on chain once and shown as used. Screenshots of every
step under ``$ALLIANCE_TEST_ARTIFACTS`` (default: pytest's tmp dir)."""

# ruff: noqa: F811 - the fixtures imported from test_member_app are the parameters below
from __future__ import annotations

import time

from playwright.sync_api import Browser, BrowserContext, Page

from ledger import runtime
from tests.e2e.test_member_app import (  # noqa: F401 - fixtures
    PASSPHRASE,
    PIXEL_7,
    AppServer,
    Journey,
    app_server,
)


def new_page(env: AppServer, browser: Browser) -> tuple[BrowserContext, Page, list[str]]:
    context = browser.new_context(viewport=PIXEL_7, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN")
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        env.url) else route.abort())
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


def get_card(env: AppServer, page: Page) -> str:
    """A card made in the page under the passphrase, signed in; the member's address."""
    page.goto(env.url + "/app")
    page.get_by_role("button", name="一键领取会员卡").click()
    page.fill("#pass1", PASSPHRASE)
    page.fill("#pass2", PASSPHRASE)
    page.locator("#create-go button").click()
    page.wait_for_selector("#backup-words li", timeout=30_000)
    page.check("#backup-ok")
    page.locator("#backup-go button").click()
    page.wait_for_selector(".member-card", timeout=30_000)
    return str(page.evaluate("window.AllianceApp.state.session.address"))


def chain_now(env: AppServer) -> int:
    return int(env.alliance.gateway.block("latest")["timestamp"])


def test_coupon_claimed_shown_scanned_and_used_in_chromium(app_server: AppServer,
                                                         browser: Browser,
                                                         shots: object) -> None:
    env = app_server
    context, page, errors = new_page(env, browser)
    j = Journey(page, shots)  # type: ignore[arg-type]
    get_card(env, page)
    page.click("[data-tab=coupons]")
    page.wait_for_selector("#no-coupons")
    j.shot("coupons-empty")

    # The department store's campaign: 5 yuan off at the cafe, spend 10 yuan or more.
    r = env.store.post("/v1/coupons/campaigns", {
        "kind": "fixed_off", "value": 500, "budget": 100_000, "min_spend": 1000,
        "valid_days": 30, "acceptors": [env.cafe_merchant.merchant_id]})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    runtime.indexer(env.alliance).catch_up()
    campaign = env.store.get("/v1/coupons/campaigns").json()["campaigns"][-1]["campaign_id"]
    voucher = env.store.post("/v1/coupons/vouchers", {"campaign_id": campaign,
                                                      "expires_at": chain_now(env) + 86_400})
    assert voucher.status_code == 200, voucher.text

    # --- the voucher link opened in the page: the coupon lands in the card
    page.goto(env.url + "/app?voucher=" + voucher.json()["code"])
    page.wait_for_selector(".ticket[data-status=valid]", timeout=60_000)
    assert "Grand Plaza Department Store" in page.locator(".ticket").inner_text()
    assert "?voucher" not in page.url  # the link is used once, not again on reload
    j.shot("coupon-claimed")

    # --- shown at the till: a one-time code as a QR
    page.click("[data-use]")
    page.wait_for_selector("#coupon-qr svg")
    code = page.get_attribute("#coupon-qr", "data-code")
    assert code and code.startswith("ALC-")
    j.shot("coupon-code")

    # --- the cafe's till scans it for its order; the page asks the member to confirm
    scan = env.cafe.post(f"/v1/coupon-codes/{code}/scan",
                         {"order_id": "CAFE-8001", "order_amount": 3800})
    assert scan.status_code == 200, scan.text
    page.wait_for_selector("#confirm-title", timeout=30_000)
    assert "5.00" in page.locator("#discount").inner_text()
    assert "33.00" in page.locator(".sum-total").inner_text()
    j.shot("coupon-confirm")
    page.click("#confirm-use")
    page.wait_for_selector("#dlg-pass")  # the card was reloaded: opened for the signature
    page.fill("#dlg-pass", PASSPHRASE)
    page.click("#dlg-ok")
    page.wait_for_selector("#result-title:has-text('优惠券已使用')", timeout=60_000)
    j.shot("coupon-used")

    # --- used once on chain; the merchant sees it used; the page lists it as used
    seen = env.cafe.get(f"/v1/coupon-codes/{code}").json()
    assert seen["status"] == "used" and seen["tx_hash"]
    book = env.alliance.contracts.coupons
    assert book is not None
    assert book.is_used(int(seen["coupon_id"]))
    deadline = time.monotonic() + 30
    page.get_by_role("button", name="返回卡券").click()
    while True:
        page.wait_for_selector(".ticket, #no-coupons")
        if page.locator(".ticket[data-status=used]").count() == 1 or \
                time.monotonic() > deadline:
            break
        page.wait_for_timeout(300)
        page.click("[data-filter=used]")
    assert page.locator(".ticket[data-status=used]").count() == 1
    j.shot("coupons-used")
    assert errors == []
    context.close()
