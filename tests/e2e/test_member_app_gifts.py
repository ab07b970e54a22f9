"""The member app's gifts in a real browser (Debian's Chromium, Pixel-7-sized) against the real
service on loopback (uvicorn, its workers sending to anvil): the member opens the gift
catalogue from the home screen (each shop's gifts with what is left, the price in its points,
the limit per member; what the member cannot take says why), picks one, sees what it costs and
what is left after, confirms with the card's passphrase (the exact points redemption signed in
the page), and finds the gift coupon in the coupons screen; the gift then shows as taken. A
gift that runs out, or is repriced above the member's points, while the member looks at it is
refused with a plain message and nothing changes; English too. Only the home screen's scripts
load first; a screen's script loads when it is opened. Screenshots of every step under
``$ALLIANCE_TEST_ARTIFACTS`` (default: pytest's tmp dir)."""

# ruff: noqa: F811 - the fixtures imported from test_member_app are the parameters below
from __future__ import annotations

from playwright.sync_api import Browser, Page, Request

from ledger import runtime
from ledger.store.models import GiftRedemption, Operation
from tests.e2e.test_member_app import (  # noqa: F401 - fixtures
    PASSPHRASE,
    AppServer,
    Journey,
    _issue,
    app_server,
)
from tests.e2e.test_member_app_coupons import get_card, new_page


def _gift(env: AppServer, campaign_id: int, name: str, points: int, stock: int,
          limit: int = 0) -> int:
    r = env.store.post("/v1/offers/gifts", {"name": name, "points": points,
                                            "campaign_id": campaign_id, "stock": stock,
                                            "per_member_limit": limit})
    assert r.status_code == 201, r.text
    return int(r.json()["gift_id"])


def _scripts(requests: list[Request]) -> set[str]:
    return {r.url.rsplit("/", 1)[1] for r in requests if r.resource_type == "script"}


def _unchanged(env: AppServer) -> tuple[int, int, list[int]]:
    with env.alliance.store.read_session() as s:
        return (s.query(Operation).count(), s.query(GiftRedemption).count(),
                [g["left"] for g in env.store.get("/v1/offers/gifts").json()["gifts"]])


def _open_gifts(page: Page) -> None:
    """From the home screen's "gifts" action."""
    page.click("[data-tab=card]")
    page.wait_for_selector("#act-gifts", timeout=30_000)
    page.click("#act-gifts")
    page.wait_for_selector("#screen .gift, #no-gifts", timeout=30_000)


def test_gift_picked_signed_and_held_as_a_coupon_in_chromium(app_server: AppServer,
                                                            browser: Browser,
                                                            shots: object) -> None:
    env = app_server
    context, page, errors = new_page(env, browser)
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    j = Journey(page, shots)  # type: ignore[arg-type]
    address = get_card(env, page)
    # The first paint loads the home screen's scripts only.
    assert _scripts(requests) == {"i18n.js", "app.js", "ethers.umd.min.js"}

    # --- the department store's gifts: a gift campaign, three gifts; the member's points
    r = env.store.post("/v1/coupons/campaigns", {
        "kind": "gift", "value": 2500, "budget": 1_000_000, "valid_days": 30,
        "acceptors": [env.store_merchant.merchant_id]})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    runtime.indexer(env.alliance).catch_up()
    campaign = env.store.get("/v1/coupons/campaigns").json()["campaigns"][-1]["campaign_id"]
    umbrella = _gift(env, campaign, "Umbrella", 100, stock=2, limit=1)
    bike = _gift(env, campaign, "Bike", 5000, stock=3)
    pen = _gift(env, campaign, "Pen", 1, stock=0)
    cap = _gift(env, campaign, "Cap", 50, stock=1)
    _issue(env.store, address, 250, "GP-9001")

    # --- a fresh page (the card locked): the catalogue from the home screen
    requests.clear()
    page.goto(env.url + "/app")
    page.wait_for_selector(".member-card", timeout=30_000)
    j.shot("home")
    assert "gifts.js" not in _scripts(requests) and "qrcode.js" not in _scripts(requests)
    _open_gifts(page)
    assert "gifts.js" in _scripts(requests)
    row = page.locator(f"[data-gift='{umbrella}']")
    assert "Umbrella" in row.inner_text() and "100 分" in row.inner_text()
    assert "剩 2 件" in row.inner_text() and "每人限 1 件" in row.inner_text()
    assert page.get_attribute(f"[data-gift='{bike}']", "data-available") == \
        "insufficient_points"
    assert "积分不足" in page.locator(f"[data-gift='{bike}'] .stamp").inner_text()
    assert "已兑完" in page.locator(f"[data-gift='{pen}'] .stamp").inner_text()
    j.shot("gifts")

    # --- picked: what it costs and what is left after; confirmed with the passphrase
    page.click(f"[data-redeem='{umbrella}']")
    page.wait_for_selector("#gift-title")
    assert "100 分" in page.locator("#gift-points").inner_text()
    assert "150 分" in page.locator("#gift-after").inner_text()
    assert "¥25.00" in page.locator(".sums").inner_text()
    j.shot("gift-confirm")
    page.click("#gift-confirm")
    page.wait_for_selector("#dlg-pass")
    page.fill("#dlg-pass", PASSPHRASE)
    page.click("#dlg-ok")
    page.wait_for_selector("#result-title:has-text('兑换成功')", timeout=90_000)
    j.shot("gift-done")

    # --- on chain: 100 points taken once; the gift coupon is the member's, valid
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.spendable_of(address) == 150
    book = env.alliance.contracts.coupons
    assert book is not None
    page.click("#gift-see-coupon")
    page.wait_for_selector(".ticket[data-status=valid]", timeout=30_000)
    ticket = page.locator(".ticket[data-status=valid]")
    assert ticket.count() == 1 and "赠品" in ticket.inner_text()
    assert book.owner_of(int(str(ticket.get_attribute("data-coupon")))) == address
    j.shot("gift-coupon")

    # --- back in the catalogue: taken once, the limit reached
    _open_gifts(page)
    assert "已达兑换上限" in page.locator(f"[data-gift='{umbrella}'] .stamp").inner_text()
    assert "剩 1 件" in page.locator(f"[data-gift='{umbrella}']").inner_text()
    # ... and listed under the member's own gifts, with the points it took
    mine = page.locator("#gift-history .gift-mine")
    assert mine.count() == 1 and mine.first.get_attribute("data-status") == "done"
    assert "Umbrella" in mine.first.inner_text() and "礼品券已放入卡券" in mine.first.inner_text()
    assert "−100" in mine.first.inner_text()
    j.shot("gifts-after")

    # --- the cap runs out while the member looks at it: a plain message, nothing changes
    page.click(f"[data-redeem='{cap}']")
    page.wait_for_selector("#gift-title")
    assert env.store.post(f"/v1/offers/gifts/{cap}", {"stock": 0}).status_code == 200
    before = _unchanged(env)
    page.click("#gift-confirm")
    page.wait_for_selector("[data-code='offers-gift-out-of-stock']", timeout=30_000)
    assert "积分没有扣除" in page.locator("#gift-msg").inner_text()
    j.shot("gift-out-of-stock")
    assert page.locator("#gift-confirm").is_disabled()  # nothing to retry
    # ... restocked, and repriced above the member's points while the member looks at it:
    # refused the same way.
    env.store.post(f"/v1/offers/gifts/{cap}", {"stock": 1})
    page.click("[data-code='offers-gift-out-of-stock'] button")
    page.wait_for_selector(f"[data-redeem='{cap}']")
    page.click(f"[data-redeem='{cap}']")
    page.wait_for_selector("#gift-title")
    env.store.post(f"/v1/offers/gifts/{cap}", {"points": 400})
    page.click("#gift-confirm")
    page.wait_for_selector("[data-code='offers-insufficient-points']", timeout=30_000)
    assert "Grand Plaza Department Store 积分不够" in page.locator("#gift-msg").inner_text()
    j.shot("gift-not-enough-points")
    # In English too.
    page.click("#lang")
    _open_gifts(page)
    assert "Limit reached" in page.locator(f"[data-gift='{umbrella}'] .stamp").inner_text()
    assert "Out of stock" in page.locator(f"[data-gift='{pen}'] .stamp").inner_text()
    assert "400 pts" in page.locator(f"[data-gift='{cap}']").inner_text()
    assert "Gift coupon in your coupons" in page.locator("#gift-history").inner_text()
    j.shot("gifts-en")
    assert _unchanged(env)[:2] == before[:2]
    assert program.spendable_of(address) == 150
    assert errors == []
    context.close()
