"""The member app in a real browser (Debian's Chromium, Pixel-7-sized, headless) against the
real service on loopback (uvicorn, its workers sending to anvil, SQLite).

One journey, in the order a member lives it: get a card (a key created in the page, under a
passphrase, backup words shown once), sign in (SIWE), see balances of two programs, pay a
cafe's payment request with the department store's points (the balance and the cafe's
clearing position change on chain), convert points with the rounding shown, read the history,
switch to English, download and then delete the member's data. Errors on the way: the member
backing out of a payment, the connection dropping after the service took it (retried: paid
once), an expired payment request, a session ended under the page. A screenshot of every step
is kept under ``$ALLIANCE_TEST_ARTIFACTS`` (default: pytest's tmp dir), never committed.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from eth_account import Account
from playwright.sync_api import Browser, Page, Route
from sqlalchemy import delete, select, update

from api.app import create_app
from api.client import AllianceClient
from ledger.alliance import Alliance
from ledger.merchants.service import AdmittedMerchant, admit_merchant
from ledger.points.reads import chain_now
from ledger.settings import Settings
from ledger.store.models import MemberSession, PaymentRequest
from tests.browsers import launch
from tests.servers import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PIXEL_7 = {"width": 390, "height": 844}
PASSPHRASE = "mall-card-2026"


class Service:
    """The real service in this process (uvicorn on a loopback port, its workers running),
    which a test can stop and start again on the same port: a restart."""

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = uvicorn.Server(uvicorn.Config(create_app(self.alliance),
                                                     host="127.0.0.1", port=self.port,
                                                     log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline, "the service did not start"
            assert self._thread.is_alive(), "the service exited at start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
        self._server = self._thread = None


@dataclass
class AppServer:
    url: str
    alliance: Alliance
    store: AllianceClient
    cafe: AllianceClient
    store_merchant: AdmittedMerchant
    cafe_merchant: AdmittedMerchant
    service: Service


@pytest.fixture
def app_server(settings: Settings) -> Iterator[AppServer]:
    alliance = Alliance.open(settings)
    store = admit_merchant(alliance, name="Grand Plaza Department Store", symbol="GPDS", rate=1)
    cafe = admit_merchant(alliance, name="Corner Cafe", symbol="CAFE", rate=2)
    service = Service(alliance)
    service.start()
    http = httpx.Client(base_url=service.url, timeout=30)
    try:
        yield AppServer(service.url, alliance, AllianceClient(http, store.key_id, store.secret),
                        AllianceClient(http, cafe.key_id, cafe.secret), store, cafe, service)
    finally:
        http.close()
        service.stop()
        alliance.close()


class Journey:
    """The page, and a numbered screenshot per step."""

    def __init__(self, page: Page, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.n = 0

    def shot(self, name: str) -> None:
        self.n += 1
        self.page.wait_for_timeout(150)  # let the last paint land
        self.page.screenshot(path=str(self.shots / f"{self.n:02d}-{name}.png"), full_page=True)


def _issue(client: AllianceClient, member: str, points: int, order_id: str,
           release_at: int | None = None) -> None:
    r = client.post("/v1/points/issue", {"member": member, "points": points,
                                         "order_id": order_id, "release_at": release_at})
    assert r.status_code == 202, r.text
    assert client.wait_operation(r.json()["id"])["status"] == "confirmed"


def test_member_journey_in_chromium(app_server: AppServer, browser: Browser,
                                    shots: Path) -> None:
    env = app_server
    context = browser.new_context(viewport=PIXEL_7, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN", accept_downloads=True)
    outside: list[str] = []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        env.url) else (outside.append(route.request.url), route.abort())[1])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    j = Journey(page, shots)

    # --- get a card: a key made in the page under a passphrase, backup words shown once
    page.goto(env.url + "/app")
    page.wait_for_selector("#welcome-actions")
    j.shot("welcome")
    page.get_by_role("button", name="一键领取会员卡").click()
    j.shot("welcome-create")
    page.fill("#pass1", PASSPHRASE)
    page.fill("#pass2", PASSPHRASE)
    page.locator("#create-go button").click()
    page.wait_for_selector("#backup-words li", timeout=30_000)
    assert page.locator("#backup-words li").count() == 12
    j.shot("backup-words")
    page.check("#backup-ok")
    page.locator("#backup-go button").click()
    page.wait_for_selector(".member-card", timeout=30_000)
    assert page.locator("#backup-words").count() == 0
    keystore = page.evaluate("localStorage.getItem('alliance.card.v1')")
    stored = json.loads(keystore)
    crypto = stored.get("crypto") or stored["Crypto"]  # ethers writes "Crypto"
    assert crypto["kdf"] == "scrypt" and "privateKey" not in stored  # never a bare key
    address = page.evaluate("window.AllianceApp.state.session.address")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["alliance_member"]["httpOnly"] and \
        cookies["alliance_member"]["sameSite"] == "Strict"
    j.shot("card-empty")

    # --- see balances of every program, with their value
    _issue(env.store, address, 5000, "GP-1001")
    _issue(env.cafe, address, 800, "CAFE-1001")
    _issue(env.store, address, 200, "GP-1002",  # pending: spendable in three days
           release_at=chain_now(env.alliance) + 3 * 86_400)
    page.reload()
    page.wait_for_selector("#programs li >> nth=1")
    assert page.locator("#programs li").count() == 2
    store_row = page.locator(f"#programs li[data-merchant='{env.store_merchant.merchant_id}']")
    assert store_row.locator("[data-points]").inner_text() == "5,000"
    assert "200 分" in store_row.inner_text()  # pending, read from the chain at once
    # When they arrive comes from the indexed events (the indexer worker lags by a round).
    for _ in range(40):
        if "200 分将于" in store_row.inner_text():
            break
        page.wait_for_timeout(250)
        page.reload()
        page.wait_for_selector("#programs li >> nth=1")
    assert "200 分将于" in store_row.inner_text()
    # 5000 x 1 fen + 800 x 2 fen = 66.00 yuan
    assert "66.00" in page.locator("#total-value").inner_text()
    j.shot("card-balances")
    page.click("#act-code")
    page.wait_for_selector("#member-qr svg")
    j.shot("member-code")
    page.click("#dlg-close")

    # --- pay the cafe's request with the store's points
    program = env.alliance.contracts.program(env.store_merchant.program)
    clearing = env.alliance.contracts.clearing
    period = clearing.current_period()
    cafe_before = clearing.position_of(period, env.cafe_merchant.merchant_id)[0]
    pr = env.cafe.post("/v1/payment-requests", {"order_id": "CAFE-0042", "amount": 3600})
    assert pr.status_code == 201, pr.text
    page.goto(env.url + pr.json()["link"])
    page.wait_for_selector("#pay-button")
    page.check(f"input[name=program][value='{env.store_merchant.merchant_id}']")
    j.shot("pay-request")
    page.click("#pay-button")
    page.wait_for_selector("#dlg-pass")  # the page was reloaded: the card opens again
    j.shot("pay-passphrase")
    page.click("#dlg-cancel")  # the member backs out: told nothing was taken
    page.wait_for_selector(".notice-error[data-code=ACTION_REJECTED]")
    j.shot("pay-cancelled")
    assert program.balance_of(address) == 5200
    # The connection drops after the service took the payment: the member sees a plain
    # message, taps "try again", and the same payment comes back (charged once).
    dropped: list[int] = []

    def drop_the_answer(route: Route) -> None:
        if dropped:
            route.continue_()
            return
        dropped.append(route.fetch().status)
        route.abort("connectionreset")

    page.route("**/pay", drop_the_answer)
    page.click("#pay-button")
    page.fill("#dlg-pass", PASSPHRASE)
    page.click("#dlg-ok")
    page.wait_for_selector(".notice-error[data-code=network]", timeout=60_000)
    j.shot("pay-connection-lost")
    assert dropped == [200]
    page.get_by_role("button", name="重试").click()
    page.wait_for_selector("#result-title:has-text('支付成功')", timeout=60_000)
    j.shot("paid")
    assert program.balance_of(address) == 5200 - 3600
    assert clearing.position_of(period, env.cafe_merchant.merchant_id)[0] == cafe_before + 3600
    # Opening the same request again says it is paid; nothing is charged twice.
    page.goto(env.url + pr.json()["link"])
    page.wait_for_selector("#result-title")
    assert page.locator("text=不会重复扣款").count() == 1

    # --- convert, with the rounding shown before signing
    page.goto(env.url + "/app")
    page.wait_for_selector("#act-convert")
    page.click("#act-convert")
    page.wait_for_selector("#cv-from")
    page.select_option("#cv-from", str(env.store_merchant.merchant_id))
    page.select_option("#cv-to", str(env.cafe_merchant.merchant_id))
    page.fill("#cv-amount", "1001")
    page.get_by_role("button", name="查看兑换结果").click()
    page.wait_for_selector("#cv-summary")
    summary = page.locator("#cv-summary").inner_text()
    assert "500" in summary and "1,000" in summary and "留在" in summary
    j.shot("convert-quote")
    page.get_by_role("button", name="确认互换").click()
    page.wait_for_selector("#dlg-pass")  # reloaded again: the card is opened for this
    page.fill("#dlg-pass", PASSPHRASE)
    page.click("#dlg-ok")
    page.wait_for_selector("#result-title:has-text('互换成功')", timeout=60_000)
    j.shot("converted")
    cafe_program = env.alliance.contracts.program(env.cafe_merchant.program)
    assert program.balance_of(address) == 1600 - 1000
    assert cafe_program.balance_of(address) == 800 + 500

    # --- history: issued, spent elsewhere, converted out and in
    kinds: set[str] = set()
    for _ in range(20):
        page.click("[data-tab=history]")
        page.wait_for_selector("#events li, .empty")
        kinds = set(page.locator("#events li").evaluate_all(
            "els => els.map(e => e.dataset.kind)"))
        if {"issued", "redeemed", "converted_out", "converted_in"} <= kinds:
            break
        page.wait_for_timeout(500)
    assert {"issued", "redeemed", "converted_out", "converted_in"} <= kinds, kinds
    j.shot("history")

    # --- English
    page.click("#lang")
    page.click("[data-tab=card]")
    page.wait_for_selector("#programs li")
    assert page.locator("text=Points worth").count() == 1
    j.shot("card-english")

    # --- an expired payment request: a plain message, nothing to sign
    late = env.cafe.post("/v1/payment-requests", {"order_id": "CAFE-0043", "amount": 100})
    with env.alliance.store.session() as s:
        s.execute(update(PaymentRequest).where(PaymentRequest.id == late.json()["id"])
                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    page.goto(env.url + late.json()["link"])
    page.wait_for_selector(".notice-error[data-code=payment-request-expired]")
    j.shot("pay-expired")

    # --- the session ends under the page: a plain message and a way back in
    with env.alliance.store.session() as s:
        s.execute(delete(MemberSession))
    page.click("[data-tab=history]")
    page.wait_for_selector(".notice-error[data-code=session-expired]")
    j.shot("session-expired")
    page.get_by_role("button", name="Sign in again").click()
    page.fill("#pass", PASSPHRASE)
    page.get_by_role("button", name="Open my card").click()
    page.wait_for_selector(".member-card", timeout=30_000)

    # --- my data: download, then delete
    page.click("[data-tab=me]")
    page.wait_for_selector("#er button")
    j.shot("me")
    with page.expect_download() as download:
        page.locator("#dl button").click()
    mine = json.loads(Path(download.value.path()).read_text())
    assert mine["address"] == address and mine["payments"][0]["order_id"] == "CAFE-0042"
    page.locator("#er button").click()
    page.fill("#erase-word", "DELETE")
    j.shot("erase-confirm")
    page.click("#dlg-erase")
    page.wait_for_selector("#erased")
    j.shot("erased")
    with env.alliance.store.read_session() as s:
        assert s.scalar(select(MemberSession).where(MemberSession.address == address)) is None
        assert s.scalar(select(PaymentRequest).where(PaymentRequest.payer == address)) is None
    assert program.balance_of(address) == 600 and cafe_program.balance_of(address) == 1300
    assert clearing.position_of(period, env.cafe_merchant.merchant_id)[0] == \
        cafe_before + 3600 + 500 * 2  # the conversion: the store owes the cafe 500 x 2 fen
    assert errors == [] and outside == []
    context.close()


def test_a_card_is_recovered_from_its_words_on_another_phone(
        app_server: AppServer, browser: Browser, shots: Path) -> None:
    env = app_server
    Account.enable_unaudited_hdwallet_features()
    member, words = Account.create_with_mnemonic()
    _issue(env.store, member.address, 300, "GP-2001")
    context = browser.new_context(viewport=PIXEL_7, is_mobile=True, locale="en-GB")
    page = context.new_page()
    j = Journey(page, shots)
    page.goto(env.url + "/app?lang=en")
    page.get_by_role("button", name="Recover my card with its recovery words").click()
    page.fill("#words", "  " + words.upper() + " ")  # as typed on a phone keyboard
    page.fill("#pass1", PASSPHRASE)
    page.fill("#pass2", PASSPHRASE)
    j.shot("recover")
    page.locator("#restore-go button").click()
    page.wait_for_selector("#programs li", timeout=60_000)
    j.shot("recovered-card")
    assert page.evaluate("window.AllianceApp.state.session.address") == member.address
    assert page.locator("#programs li [data-points]").inner_text() == "300"
    assert page.evaluate("localStorage.getItem('alliance.card.v1')") is not None
    context.close()


def test_wrong_recovery_words_are_refused_in_plain_words(
        app_server: AppServer, browser: Browser) -> None:
    context = browser.new_context(viewport=PIXEL_7, is_mobile=True)
    page = context.new_page()
    page.goto(app_server.url + "/app?lang=en")
    page.get_by_role("button", name="Recover my card with its recovery words").click()
    page.fill("#words", "apple " * 12)
    page.fill("#pass1", PASSPHRASE)
    page.fill("#pass2", PASSPHRASE)
    page.locator("#restore-go button").click()
    page.wait_for_selector("#pass-err:has-text('recovery words are not right')")
    assert page.evaluate("localStorage.getItem('alliance.card.v1')") is None
    context.close()


def test_the_service_restarting_mid_payment_pays_once(
        app_server: AppServer, browser: Browser, shots: Path) -> None:
    env = app_server
    Account.enable_unaudited_hdwallet_features()
    member, words = Account.create_with_mnemonic()
    _issue(env.store, member.address, 1000, "GP-3001")
    context = browser.new_context(viewport=PIXEL_7, is_mobile=True, locale="zh-CN")
    page = context.new_page()
    j = Journey(page, shots)
    page.goto(env.url + "/app")
    page.get_by_role("button", name="用恢复词找回会员卡").click()
    page.fill("#words", words)
    page.fill("#pass1", PASSPHRASE)
    page.fill("#pass2", PASSPHRASE)
    page.locator("#restore-go button").click()
    page.wait_for_selector("#programs li", timeout=60_000)
    pr = env.cafe.post("/v1/payment-requests", {"order_id": "CAFE-0077", "amount": 500}).json()
    page.evaluate(f"window.AllianceApp.go('pay', '{pr['id']}')")  # the card stays open
    page.wait_for_selector("#pay-button:not([disabled])")
    page.check(f"input[name=program][value='{env.store_merchant.merchant_id}']")

    # The service takes the payment, and its answer never arrives: it went down.
    def answer_lost(route: Route) -> None:
        route.fetch()
        route.abort("connectionreset")

    page.route("**/pay", answer_lost, times=1)
    page.click("#pay-button")
    page.wait_for_selector(".notice-error[data-code=network]", timeout=60_000)
    env.service.stop()
    page.get_by_role("button", name="重试").click()  # still down: the same plain message
    page.wait_for_selector(".notice-error[data-code=network]", timeout=60_000)
    j.shot("service-down")
    env.service.start()
    page.get_by_role("button", name="重试").click()
    page.wait_for_selector("#result-title:has-text('支付成功')", timeout=60_000)
    j.shot("paid-after-restart")
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.balance_of(member.address) == 1000 - 500  # charged once
    assert env.cafe.get(f"/v1/payment-requests/{pr['id']}").json()["status"] == "paid"
    context.close()


def _qr_matrix(text: str) -> list[list[bool]]:
    """The QR modules of ``text``, from the same npm package the page draws codes with."""
    script = ("const q = require('qrcode-generator')(0, 'M'); q.addData(process.argv[1]); "
              "q.make(); const n = q.getModuleCount(); const rows = []; "
              "for (let r = 0; r < n; r++) { const row = []; "
              "for (let c = 0; c < n; c++) row.push(q.isDark(r, c)); rows.push(row); } "
              "console.log(JSON.stringify(rows));")
    out = subprocess.run(["node", "-e", script, text], capture_output=True, check=True,
                         cwd=ROOT, text=True).stdout
    rows: list[list[bool]] = json.loads(out)
    return rows


def _camera_file(path: Path, text: str, *, width: int = 640, height: int = 480) -> None:
    """A Y4M video (what Chromium's fake camera plays) of one frame showing ``text``'s QR
    code, black on white, as a till's screen would."""
    rows = _qr_matrix(text)
    cell = min(width, height) // (len(rows) + 8)
    left = (width - cell * len(rows)) // 2
    top = (height - cell * len(rows)) // 2
    luma = bytearray(b"\xff" * (width * height))
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            if dark:
                for y in range(top + r * cell, top + (r + 1) * cell):
                    start = y * width + left + c * cell
                    luma[start:start + cell] = b"\x10" * cell
    chroma = b"\x80" * (width // 2 * height // 2)
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode()
                     + b"FRAME\n" + bytes(luma) + chroma + chroma)


def test_scanning_the_till_code_opens_the_payment(app_server: AppServer, browser: Browser,
                                                  shots: Path, tmp_path: Path) -> None:
    env = app_server
    Account.enable_unaudited_hdwallet_features()
    member, words = Account.create_with_mnemonic()
    _issue(env.store, member.address, 1000, "GP-4001")
    pr = env.cafe.post("/v1/payment-requests", {"order_id": "CAFE-0088", "amount": 300}).json()
    video = tmp_path / "till.y4m"
    _camera_file(video, pr["url"])
    camera = launch(browser.browser_type, "--use-fake-ui-for-media-stream",
                    "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={video}")
    try:
        context = camera.new_context(viewport=PIXEL_7, is_mobile=True, locale="zh-CN")
        context.grant_permissions(["camera"], origin=env.url)
        page = context.new_page()
        j = Journey(page, shots)
        page.goto(env.url + "/app")
        page.get_by_role("button", name="用恢复词找回会员卡").click()
        page.fill("#words", words)
        page.fill("#pass1", PASSPHRASE)
        page.fill("#pass2", PASSPHRASE)
        page.locator("#restore-go button").click()
        page.wait_for_selector("#programs li", timeout=60_000)
        page.click("[data-tab=pay]")
        j.shot("pay-start")
        page.click("#scan-button")
        page.wait_for_selector("#pay-button:not([disabled])", timeout=30_000)
        j.shot("scanned-payment")
        assert "¥3.00" in page.locator("#due").inner_text()
        page.click("#pay-button")
        page.wait_for_selector("#result-title:has-text('支付成功')", timeout=60_000)
        program = env.alliance.contracts.program(env.store_merchant.program)
        assert program.balance_of(member.address) == 700
        context.close()
    finally:
        camera.close()
