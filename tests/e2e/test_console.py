"""The merchant console in a real browser (Debian's Chromium, headless, desktop-sized) against
the real service on loopback (uvicorn, its workers sending to anvil and indexing, SQLite).

A merchant signs in with its API key (the request signed in the page; the cookie httpOnly),
sees today's figures change after points are issued through the API (and foreign points
accepted), downloads a statement as CSV; a wrong secret is refused; a merchant never sees
another merchant's figures; the operator sees every merchant. Screenshots of every step go to
``$ALLIANCE_TEST_ARTIFACTS`` (default: pytest's tmp dir), never committed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from playwright.sync_api import Browser, BrowserContext, Page

from api.auth import sign as request_signature
from api.client import AllianceClient
from ledger.alliance import Alliance
from ledger.merchants.service import admit_merchant, create_admin_credential
from ledger.points.reads import chain_now
from ledger.settings import Settings
from ledger.store.models import WebhookEndpoint
from tests.e2e.test_member_app import Service
from tests.ledger.helpers import sign_redemption
from tests.ledger.test_webhooks_flow import Receiver

pytestmark = pytest.mark.e2e
DESKTOP = {"width": 1280, "height": 900}
DAY = 86_400


class Env:
    def __init__(self, settings: Settings) -> None:
        self.alliance = Alliance.open(settings)
        # "Today" is the chain's UTC day: keep the test clear of its midnight (figures would
        # start again from zero under it).
        now = chain_now(self.alliance)
        if now % DAY > DAY - 900:
            self.alliance.gateway.rpc("evm_setNextBlockTimestamp", [now - now % DAY + DAY + 3600])
            self.alliance.gateway.rpc("evm_mine", [])
        self.store = admit_merchant(self.alliance, name="Grand Plaza Department Store",
                                    symbol="GPDS", rate=1)
        self.cafe = admit_merchant(self.alliance, name="Corner Cafe", symbol="CAFE", rate=2)
        self.admin_key, self.admin_secret = create_admin_credential(self.alliance)
        self.service = Service(self.alliance)
        self.service.start()
        self.url = self.service.url
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.store_api = AllianceClient(self.http, self.store.key_id, self.store.secret)
        self.cafe_api = AllianceClient(self.http, self.cafe.key_id, self.cafe.secret)

    def close(self) -> None:
        self.http.close()
        self.service.stop()
        self.alliance.close()


@pytest.fixture
def env(settings: Settings) -> Iterator[Env]:
    e = Env(settings)
    try:
        yield e
    finally:
        e.close()


def _context(browser: Browser, env: Env, outside: list[str], locale: str = "en-US"
             ) -> BrowserContext:
    context = browser.new_context(viewport=DESKTOP, locale=locale, accept_downloads=True)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        env.url) else (outside.append(route.request.url), route.abort())[1])
    return context


def _shot(page: Page, shots: Path, name: str) -> None:
    page.wait_for_timeout(200)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def _sign_in(page: Page, env: Env, key_id: str, secret: str) -> None:
    page.goto(env.url + "/console")
    page.wait_for_selector("#signin-form")
    page.fill("#key-id", key_id)
    page.fill("#secret", secret)
    page.click("#signin")


def _issue(client: AllianceClient, member: str, points: int, order_id: str) -> None:
    r = client.post("/v1/points/issue", {"member": member, "points": points,
                                         "order_id": order_id})
    assert r.status_code == 202, r.text
    assert client.wait_operation(r.json()["id"])["status"] == "confirmed"


def _kpi(page: Page, name: str) -> str:
    return page.locator(f"#kpi-{name} .kpi-value").inner_text()


def _wait_kpi(page: Page, name: str, want: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while _kpi(page, name) != want:
        assert time.monotonic() < deadline, f"{name} stayed {_kpi(page, name)}, not {want}"
        page.wait_for_timeout(200)


def test_a_merchant_signs_in_sees_today_change_live_and_downloads_a_statement(
        env: Env, browser: Browser, shots: Path) -> None:
    outside: list[str] = []
    context = _context(browser, env, outside)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(env.url + "/console")
    page.wait_for_selector("#signin-form")
    _shot(page, shots, "01-sign-in")

    # A wrong secret is refused, and no cookie is set.
    _sign_in(page, env, env.store.key_id, "not-the-secret")
    page.wait_for_selector("#signin-error:not([hidden])")
    assert "Wrong key" in page.inner_text("#signin-error")
    assert not [c for c in context.cookies() if c["name"] == "alliance_console"]
    _shot(page, shots, "02-wrong-key")

    page.fill("#secret", env.store.secret)
    page.click("#signin")
    page.wait_for_selector("#today")
    cookie = next(c for c in context.cookies() if c["name"] == "alliance_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert "Grand Plaza" in page.inner_text("#who")
    _wait_kpi(page, "issued", "0")
    _shot(page, shots, "03-signed-in-empty")

    # Issued through the API: the figure changes on the page without a reload.
    holder = Account.create()
    member = holder.address
    _issue(env.store_api, member, 1200, "GP-2001")
    _wait_kpi(page, "issued", "1,200")
    _issue(env.store_api, member, 300, "GP-2002")
    _wait_kpi(page, "issued", "1,500")
    assert "Issues: 2" in page.inner_text("#kpi-issued")
    _shot(page, shots, "04-issued-live")

    # Another merchant's issue is not this merchant's figure.
    _issue(env.cafe_api, member, 700, "CAFE-2001")
    page.wait_for_timeout(2500)
    assert _kpi(page, "issued") == "1,500"

    # The member spends 250 of the cafe's points here: redeemed and foreign-accepted move.
    cafe_program = env.alliance.contracts.registry.merchant(env.cafe.merchant_id).program
    assert cafe_program
    deadline = chain_now(env.alliance) + 600
    signature = sign_redemption(
        holder, program=cafe_program, registry=env.alliance.contracts.registry.address,
        chain_id=env.alliance.gateway.chain_id, amount=250, merchant_id=env.store.merchant_id,
        order_id="GP-2003", nonce=0, deadline=deadline)
    r = env.store_api.post("/v1/points/redeem", {
        "member": member, "points": 250, "order_id": "GP-2003", "nonce": 0,
        "deadline": deadline, "signature": signature,
        "program_merchant_id": env.cafe.merchant_id})
    assert r.status_code == 202, r.text
    assert env.store_api.wait_operation(r.json()["id"])["status"] == "confirmed"
    _wait_kpi(page, "foreign", "250")
    assert _kpi(page, "redeemed") == "250" and _kpi(page, "issued") == "1,500"
    # ... and the open period's position follows: 250 cafe points at 2 fen each are owed here.
    net = page.locator("#periods tr[data-period='1'] td >> nth=2")
    deadline = time.monotonic() + 30
    while net.inner_text() != "5.00":
        assert time.monotonic() < deadline, net.inner_text()
        page.wait_for_timeout(200)

    # The open period's statement downloads as CSV.
    page.wait_for_selector("#periods tr[data-period='1'] a.download")
    with page.expect_download() as dl:
        page.click("#periods tr[data-period='1'] a.download")
    path = dl.value.path()
    assert path is not None
    text = Path(path).read_text()
    assert dl.value.suggested_filename == f"statement-1-{env.store.merchant_id}.csv"
    assert text.strip() and "," in text.splitlines()[0]
    # The webhooks panel is there, with nothing registered yet.
    page.wait_for_selector("#wh-list tbody tr")
    assert "No endpoint registered" in page.inner_text("#wh-list")
    _shot(page, shots, "05-positions-webhooks")

    # 中文 (zh-CN) at one click, the figures still live.
    page.click("#lang")
    page.wait_for_selector("text=今日发放积分")
    _wait_kpi(page, "issued", "1,500")
    _shot(page, shots, "06-zh-CN")
    assert not errors, errors
    assert not outside, outside  # no CDN, no third party
    context.close()


def test_a_merchant_never_reads_another_merchants_figures(env: Env, browser: Browser,
                                                          shots: Path) -> None:
    context = _context(browser, env, [])
    page = context.new_page()
    _sign_in(page, env, env.cafe.key_id, env.cafe.secret)
    page.wait_for_selector("#today")
    headers = {"X-Console": "1"}
    mine = page.request.get(env.url + "/console/api/figures", headers=headers).json()
    assert [m["merchant_id"] for m in mine["merchants"]] == [env.cafe.merchant_id]
    other = env.store.merchant_id
    for path in (f"/console/api/figures?merchant_id={other}",
                 f"/console/api/periods?merchant_id={other}",
                 f"/console/api/statements/1.csv?merchant_id={other}"):
        r = page.request.get(env.url + path, headers=headers)
        assert r.status == 403, (path, r.status)
    # Without the cookie (another browser), nothing.
    r = httpx.get(env.url + "/console/api/figures", headers=headers)
    assert r.status_code == 401
    # A cookie forged for another key opens nothing either.
    forged = page.request.get(env.url + "/console/api/figures", headers={
        **headers, "Cookie": "alliance_console=" + "x" * 40 + ".00"})
    assert forged.status == 401
    assert page.locator("#per-merchant").count() == 0
    # Nor another merchant's webhook endpoints.
    assert page.request.get(env.url + "/console/api/webhooks", headers=headers).json() == {
        "webhooks": []}
    _shot(page, shots, "cafe-own-figures")
    context.close()


def test_the_operator_sees_every_merchant(env: Env, browser: Browser, shots: Path) -> None:
    member = "0x" + "cd" * 20
    _issue(env.store_api, member, 900, "GP-3001")
    _issue(env.cafe_api, member, 400, "CAFE-3001")
    context = _context(browser, env, [], locale="zh-CN")
    page = context.new_page()
    _sign_in(page, env, env.admin_key, env.admin_secret)
    page.wait_for_selector("#per-merchant tbody tr >> nth=1")
    _wait_kpi(page, "issued", "1,300")
    assert "联盟运营方" in page.inner_text("#who")
    rows = page.locator("#per-merchant tbody tr")
    assert rows.count() == 2
    page.select_option("#merchant-select", str(env.store.merchant_id))
    page.wait_for_selector("#periods tr[data-period='1'] a.download")
    # Webhook endpoints are a merchant's: the operator's panel says so (no form).
    assert page.locator("#webhooks-state").inner_text() == "仅限商户"
    assert page.locator("#wh-form").count() == 0
    _shot(page, shots, "operator")
    context.close()


@pytest.fixture
def wenv(settings: Settings) -> Iterator[Env]:
    """The service with loopback webhook receivers allowed (tests only)."""
    e = Env(settings.model_copy(update={"webhooks_allow_private": True}))
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def _wait(page: Page, check: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        page.wait_for_timeout(200)


def test_a_merchant_registers_a_webhook_sees_the_delivery_resumes_and_replays(
        wenv: Env, browser: Browser, shots: Path, receiver: Receiver) -> None:
    env = wenv
    outside: list[str] = []
    context = _context(browser, env, outside)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    _sign_in(page, env, env.store.key_id, env.store.secret)
    page.wait_for_selector("#wh-form")

    # A URL the service refuses is said on the page; nothing is registered.
    page.fill("#wh-url", "ftp://example.com/hooks")
    page.click("#wh-add")
    page.wait_for_selector("#wh-error:not([hidden])")
    assert "Refused" in page.inner_text("#wh-error")
    assert "No endpoint registered" in page.inner_text("#wh-list")

    # Register the loopback receiver for points.issued (the "all" box unticked).
    page.fill("#wh-url", receiver.url)
    page.uncheck("#wh-events input[value='*']")
    page.check("#wh-events input[value='points.issued']")
    page.click("#wh-add")
    page.wait_for_selector("#wh-secret")
    secret = page.inner_text("#wh-secret").strip()
    assert secret.startswith("whsec_")
    row = page.locator("#wh-list tbody tr[data-webhook]")
    _wait(page, lambda: row.count() == 1, "the endpoint is not listed")
    wid = row.get_attribute("data-webhook")
    assert wid and wid.startswith("wh_")
    assert receiver.url in row.inner_text() and "points.issued" in row.inner_text()
    assert row.locator("[data-status]").inner_text() == "Active"
    _shot(page, shots, "wh-01-registered-secret-once")
    # Shown once: dismissed, it is nowhere on the page, and the list never carries it.
    page.click("#wh-secret-done")
    assert page.locator("#wh-secret").count() == 0
    assert secret not in page.content()

    # An issue through the API: the delivery appears in the log as delivered.
    _issue(env.store_api, Account.create().address, 420, "GP-4001")
    delivered = page.locator("#wh-log tbody tr[data-state='delivered']")
    _wait(page, lambda: delivered.count() == 1, "no delivered row in the log")
    event_id = delivered.get_attribute("data-event")
    assert event_id and "points.issued" in delivered.inner_text()
    assert "HTTP 200" in delivered.inner_text()
    # Nothing stray after the table (a null once printed as "null" under the log).
    assert "null" not in page.inner_text("#webhooks")
    _shot(page, shots, "wh-02-delivered")
    # The receiver got that very event, signed with the secret the page showed.
    assert len(receiver.requests) == 1
    path, headers, body = receiver.requests[0]
    payload = json.loads(body)
    assert payload["id"] == headers["X-Alliance-Event-Id"] == event_id
    assert payload["type"] == "points.issued" and payload["merchant_id"] == env.store.merchant_id
    assert headers["X-Alliance-Signature"] == request_signature(
        secret, headers["X-Alliance-Timestamp"], event_id, "POST", path, body)

    # Replay from that event: the receiver gets it again, same id.
    page.click(f"#wh-log tr[data-event='{event_id}'] .wh-replay")
    page.wait_for_selector("#toast:not([hidden])")
    assert "Events queued again: 1" in page.inner_text("#toast")
    _wait(page, lambda: len(receiver.requests) == 2, "the replay did not arrive")
    assert receiver.requests[1][1]["X-Alliance-Event-Id"] == event_id

    def replay_recorded() -> bool:
        log = page.request.get(f"{env.url}/console/api/webhooks/{wid}/deliveries",
                               headers={"X-Console": "1"}).json()["deliveries"]
        return [(d["state"], d["attempts"]) for d in log] == [("delivered", 2)]

    # (the worker has stored the replay's outcome before the endpoint is touched below)
    _wait(page, replay_recorded, "the replay's outcome is not in the log")

    # Paused (as the worker leaves it after 8 failures in a row): the page says so, and
    # Resume makes it active again.
    with env.alliance.store.session() as s:
        ep = s.get(WebhookEndpoint, wid)
        assert ep is not None
        ep.status, ep.failures = "paused", 8
        ep.paused_reason = "8 failed deliveries in a row; last: 500"
    status = page.locator(f"#wh-list tr[data-webhook='{wid}'] [data-status]")
    _wait(page, lambda: status.inner_text() == "Paused", "the pause is not shown")
    assert "8 failed deliveries in a row" in page.inner_text("#wh-list")
    _shot(page, shots, "wh-03-paused")
    page.click(f"#wh-list tr[data-webhook='{wid}'] .wh-resume")
    _wait(page, lambda: status.inner_text() == "Active", "resume did not show")
    assert page.locator(".wh-resume").count() == 0

    # 中文: the same panel.
    page.click("#lang")
    page.wait_for_selector("text=投递记录")
    _wait(page, lambda: page.locator("#wh-log tbody tr[data-state='delivered']").count() == 1,
          "the log is gone after the language switch")
    assert "已送达" in page.inner_text("#wh-log")
    _shot(page, shots, "wh-04-zh-CN")

    # Delete asks once more, then the endpoint is gone.
    page.click(f"#wh-list tr[data-webhook='{wid}'] .wh-delete")
    page.wait_for_selector("text=确认删除？")
    page.click(f"#wh-list tr[data-webhook='{wid}'] .wh-delete")
    _wait(page, lambda: page.locator("#wh-list tr[data-webhook]").count() == 0,
          "the endpoint was not deleted")
    assert not errors, errors
    assert not outside, outside
    context.close()
