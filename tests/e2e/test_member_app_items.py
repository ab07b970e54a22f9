"""The member app's products in a real browser (Debian's Chromium, Pixel-7-sized) against the
real service on loopback: a brand's item, made, shipped, received and sold at the cafe, is
scanned in the page (the label's code pasted: headless Chromium has no camera; then its
link opened in the page), shown genuine
with its journey, and its points claimed with the member's signature (the card's passphrase);
the brand's points land on chain once; the brand recalls the item and the member's products
list carries the recall notice. Screenshots of every step under ``$ALLIANCE_TEST_ARTIFACTS``."""

# ruff: noqa: F811 - the fixtures imported from test_member_app are the parameters below
from __future__ import annotations

import time
from urllib.parse import quote

from playwright.sync_api import Browser

from tests.api.test_items_api import FACTORY, SHOP, _brand, _event, _kinds, _ok, _until
from tests.e2e.test_member_app import (  # noqa: F401 - fixtures
    PASSPHRASE,
    AppServer,
    Journey,
    app_server,
)
from tests.e2e.test_member_app_coupons import get_card, new_page


def test_item_scanned_verified_and_claimed_in_chromium(app_server: AppServer, browser: Browser,
                                                      shots: object) -> None:
    env = app_server
    labels = _brand(env)  # type: ignore[arg-type]
    code = labels[0]["uri"]
    _until(lambda: env.store.post("/v1/items/events", {"events": [
        {"code": code, "biz_step": "commissioning", "location": FACTORY}]}).status_code == 202)
    _until(lambda: len(_kinds(env, code)) == 1)  # type: ignore[arg-type]
    for n, (client, step, loc, dest) in enumerate([
            (env.store, "shipping", FACTORY, SHOP), (env.cafe, "receiving", SHOP, None),
            (env.cafe, "retail_selling", SHOP, None)], start=2):
        _event(env, client, code, step, loc, dest)  # type: ignore[arg-type]
        _until(lambda n=n: len(_kinds(env, code)) == n)  # type: ignore[misc, arg-type]

    context, page, errors = new_page(env, browser)
    j = Journey(page, shots)  # type: ignore[arg-type]
    address = get_card(env, page)
    page.click("#act-item")
    page.wait_for_selector("#item-code")
    j.shot("items-empty")

    # --- the label's code, pasted (the camera button is there; headless has no camera)
    page.fill("#item-code", code)
    page.click("#item-verify")
    page.wait_for_selector("#verdict[data-verdict=genuine]", timeout=30_000)
    assert "Jade tea set" in page.locator("#verdict").inner_text()
    assert page.locator(".journey li").count() == 4
    j.shot("item-genuine")

    # --- the label's link opened in the page (a fresh load: the card opens for the signature)
    page.goto(env.url + "/app?item=" + quote(code, safe=""))
    page.wait_for_selector("#item-claim", timeout=30_000)
    assert "?item" not in page.url

    # --- claim its points: the card's passphrase, the brand relays, points land once
    page.click("#item-claim")
    page.wait_for_selector("#dlg-pass")
    page.fill("#dlg-pass", PASSPHRASE)
    page.click("#dlg-ok")
    page.wait_for_selector("#result-title:has-text('积分已到账')", timeout=60_000)
    j.shot("item-claimed")
    program = env.alliance.contracts.program(env.store_merchant.program)
    deadline = time.monotonic() + 30
    while program.balance_of(address) != 7 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert program.balance_of(address) == 7

    # --- the brand recalls it: the member's products list carries the notice
    _ok(env, env.store.post("/v1/items/recall", {"codes": [code]}))  # type: ignore[arg-type]
    _until(lambda: "recalled" in _kinds(env, code))  # type: ignore[arg-type]
    page.click("[data-tab=card]")
    page.click("#act-item")
    page.wait_for_selector("#my-items li.item-recalled", timeout=30_000)
    assert "召回" in page.locator("#my-items").inner_text()
    j.shot("items-recalled")
    # Scanning it again: claimed already, and the recall shown on the verdict.
    page.fill("#item-code", code)
    page.click("#item-verify")
    page.wait_for_selector("#verdict .recall")
    assert page.locator("#item-claim").count() == 0
    j.shot("item-recalled-verdict")
    assert errors == []
    context.close()
