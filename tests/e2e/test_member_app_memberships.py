"""The member's membership cards and tiers in a real browser (Debian's Chromium, Pixel-7-sized)
against the real service on loopback: Me → Membership shows the department store's card (its
tier name and end date), the tier the member's points reached with its multiplier, how many
points the next tier needs (a progress bar), the ladder; more points earned move the member up.
English too. Screenshots under ``$ALLIANCE_TEST_ARTIFACTS`` (default: pytest's tmp dir)."""

# ruff: noqa: F811 - the fixtures imported from test_member_app are the parameters below
from __future__ import annotations

import time

from playwright.sync_api import Browser, Page, Request, Route

from ledger import runtime
from tests.e2e.test_member_app import (  # noqa: F401 - fixtures
    AppServer,
    Journey,
    _issue,
    app_server,
)
from tests.e2e.test_member_app_coupons import get_card, new_page


def _open(page: Page) -> None:
    page.click("[data-tab=me]")
    page.click("#open-memberships")
    page.wait_for_selector("[data-scope], #no-memberships", timeout=30_000)


def test_membership_card_tier_and_next_tier_in_chromium(app_server: AppServer,
                                                       browser: Browser,
                                                       shots: object) -> None:
    env = app_server
    context, page, errors = new_page(env, browser)
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    j = Journey(page, shots)  # type: ignore[arg-type]
    address = get_card(env, page)
    _open(page)
    assert page.locator("#no-memberships").count() == 1
    assert any(r.url.endswith("/app/static/cards.js") for r in requests)

    r = env.store.post("/v1/memberships/tiers", {"tiers": [
        {"level": 1, "name": "Silver", "min_points": 100, "window_days": 365,
         "multiplier_bps": 12_500},
        {"level": 2, "name": "Gold", "min_points": 1000, "window_days": 365,
         "multiplier_bps": 15_000}]})
    assert r.status_code == 200, r.text
    _issue(env.store, address, 300, "GP-7001")
    r = env.store.post("/v1/memberships/cards", {"member": address, "tier": 1, "days": 365,
                                                 "payment_ref": "till-3/0091"})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    runtime.indexer(env.alliance).catch_up()

    _open(page)
    store = page.locator(f"[data-scope='{env.store_merchant.merchant_id}']")
    assert "Grand Plaza Department Store 会员卡" in store.locator(".ms-card").inner_text()
    assert "Silver" in store.locator(".ms-card-tier").inner_text()
    assert store.locator("[data-card-status=valid]").count() == 1
    assert store.locator(".ms-level-name").inner_text() == "Silver"
    assert "积分 ×1.25" in store.inner_text()
    assert "再获得 700 分升级为 Gold" in store.locator(".ms-next").inner_text()
    assert page.get_attribute(f"[data-scope='{env.store_merchant.merchant_id}'] progress",
                              "value") == "300"
    j.shot("membership")

    # Earned more: Gold, the top tier.
    _issue(env.store, address, 800, "GP-7002")
    runtime.indexer(env.alliance).catch_up()
    _open(page)
    store = page.locator(f"[data-scope='{env.store_merchant.merchant_id}']")
    assert store.locator(".ms-level-name").inner_text() == "Gold"
    assert "已是最高等级" in store.inner_text() and "积分 ×1.5" in store.inner_text()
    j.shot("membership-gold")

    page.click("#lang")
    _open(page)
    assert "Top tier reached" in page.locator(
        f"[data-scope='{env.store_merchant.merchant_id}']").inner_text()
    j.shot("membership-en")
    assert errors == []
    context.close()


def test_a_screen_still_loading_does_not_draw_over_the_one_the_member_chose(
        app_server: AppServer, browser: Browser) -> None:
    env = app_server
    context, page, errors = new_page(env, browser)
    get_card(env, page)
    held: list[Route] = []
    page.route("**/app/api/memberships", lambda route: held.append(route))
    page.click("[data-tab=me]")
    page.click("#open-memberships")
    deadline = time.monotonic() + 30
    while not held:  # the membership screen is waiting for its answer
        assert time.monotonic() < deadline, "the membership screen asked nothing"
        page.wait_for_timeout(50)
    page.click("[data-tab=history]")  # the member moves on
    page.wait_for_selector("#events, #screen .empty", timeout=30_000)
    with page.expect_response("**/app/api/memberships"):
        held[0].continue_()
    page.wait_for_timeout(500)  # the late answer is drawn (off the page)
    assert page.get_attribute("#screen", "data-screen") == "history"
    assert page.locator("[data-scope], #no-memberships").count() == 0
    assert page.locator("#screen").count() == 1
    assert errors == []
    context.close()
