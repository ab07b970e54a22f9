"""Data sharing in a real browser (Debian's Chromium, Pixel-7-sized) against the real service:
the member keeps a birth month, grants it to the cafe in the page (signed, recorded on the
consent ledger), the cafe's API reads it; the member revokes it and the cafe is refused.
Screenshots of every step under ``$ALLIANCE_TEST_ARTIFACTS``."""

# ruff: noqa: F811 - the fixtures imported from test_member_app are the parameters below
from __future__ import annotations

from playwright.sync_api import Browser

from tests.e2e.test_member_app import (  # noqa: F401 - fixtures
    AppServer,
    Journey,
    app_server,
)
from tests.e2e.test_member_app_coupons import get_card, new_page


def test_consent_granted_and_revoked_in_chromium(app_server: AppServer, browser: Browser,
                                                 shots: object) -> None:
    env = app_server
    context, page, errors = new_page(env, browser)
    j = Journey(page, shots)  # type: ignore[arg-type]
    address = get_card(env, page)
    cafe = env.cafe_merchant.merchant_id
    page.click("[data-tab=me]")
    page.click("#open-sharing")
    page.wait_for_selector("#pf-save")
    page.select_option("#pf-month", "5")
    page.click("#pf-save")
    page.wait_for_selector("#toast:has-text('已保存')")
    assert env.cafe.get(f"/v1/members/{address}/profile").status_code == 403
    j.shot("sharing")

    row = f".shop-consents[data-merchant='{cafe}'] li[data-kind=birth_month]"
    page.click(f"{row} button")
    page.wait_for_selector(f"{row}[data-live='1']", timeout=60_000)
    j.shot("sharing-granted")
    prof = env.cafe.get(f"/v1/members/{address}/profile")
    assert prof.status_code == 200 and prof.json()["birth_month"] == 5

    page.click(f"{row} button")
    page.wait_for_selector(f"{row}[data-live='0']", timeout=60_000)
    j.shot("sharing-revoked")
    refused = env.cafe.get(f"/v1/members/{address}/profile")
    assert refused.status_code == 403 and refused.json()["code"] == "consent-required"
    assert errors == []
    context.close()
