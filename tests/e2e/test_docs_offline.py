"""/docs and /redoc in a real browser with no way out: every request that leaves the
service is refused, and the pages still show the API's operations (their assets come from
the service itself, not a CDN)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Route

from tests.api.conftest import LiveServer, live_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e
REDOC_FOOTER_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _offline_page(browser: Browser, base: str, outside: list[str]) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def only_the_service(route: Route) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    return page


def test_swagger_ui_shows_the_operations_with_no_network(
        live_server: LiveServer, browser: Browser) -> None:  # noqa: F811
    outside: list[str] = []
    page = _offline_page(browser, live_server.url, outside)
    page.goto(live_server.url + "/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/v1/points/issue" in p for p in paths), paths
    assert len(paths) >= 20
    assert outside == []


def test_redoc_shows_the_operations_with_no_network(
        live_server: LiveServer, browser: Browser) -> None:  # noqa: F811
    outside: list[str] = []
    page = _offline_page(browser, live_server.url, outside)
    page.goto(live_server.url + "/redoc")
    page.get_by_text("/v1/points/issue", exact=False).first.wait_for(timeout=30_000)
    assert "Issue points" in page.content()
    # ReDoc's footer always asks its CDN for a "by Redocly" logo and hides it when that
    # fails (no option turns it off); nothing the page needs leaves the service.
    assert [u for u in outside if u != REDOC_FOOTER_LOGO] == []
