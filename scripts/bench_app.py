"""Member app figures, one run on loopback: first meaningful paint of /app, page weight (JS and
CSS, as sent gzip-compressed), and the time from tapping "pay" to the paid screen (the
redemption confirmed on chain).

A fresh anvil, the real service (uvicorn, its workers), two merchants, and Debian's Chromium
at 390x844 driven by Playwright:

    .venv/bin/python scripts/bench_app.py [--payments 5]

First meaningful paint is the first paint after the app drew its first screen with content
(the page's ``app-ready`` performance mark): cold (no cache, no session: the welcome screen)
and signed in (the member card with every program's balance, read from the chain).
"""

from __future__ import annotations

import argparse
import gzip
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import _serve  # noqa: E402

from api.client import AllianceClient  # noqa: E402
from ledger.alliance import Alliance  # noqa: E402
from ledger.chain import anvil  # noqa: E402
from ledger.merchants.service import admit_merchant  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from tests.browsers import chromium as chromium_browser  # noqa: E402
from tests.servers import free_port  # noqa: E402

PASSPHRASE = "bench-card-2026"
# Loaded by the page only when needed: ethers to open a card or sign, jsQR to scan a code,
# qrcode to show one, and the screens other than home when first opened (app.js's LAZY).
LAZY = ("/app/vendor/ethers.umd.min.js", "/app/vendor/jsQR.js", "/app/vendor/qrcode.js",
        "/app/static/coupons.js", "/app/static/items.js", "/app/static/consent.js",
        "/app/static/gifts.js", "/app/static/cards.js", "/app/static/claim.js")
PAINT = """() => {
  const ready = performance.getEntriesByName("app-ready")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  return {ready: ready ? ready.startTime : null, fcp: fcp ? fcp.startTime : null};
}"""


def page_weight(base: str) -> dict[str, tuple[int, int]]:
    """(raw bytes, gzip bytes as sent) of the page and every script and style it loads,
    the lazily loaded ethers bundle included."""
    out: dict[str, tuple[int, int]] = {}
    with httpx.Client(base_url=base) as http:
        html = http.get("/app").text
        paths = list(dict.fromkeys(["/app", *re.findall(r'(?:src|href)="(/app/[^"]+)"', html),
                                    *LAZY]))
        for path in paths:
            raw = http.get(path, headers={"Accept-Encoding": "identity"}).content
            sent = http.get(path, headers={"Accept-Encoding": "gzip"})
            out[path] = (len(raw), int(sent.headers.get("content-length") or
                                       len(gzip.compress(raw))))
    return out


def paint_after_ready(page: Page) -> tuple[float, float]:
    """(ms to the app-ready mark, ms to the first contentful paint) of the loaded page; the
    meaningful paint is the later of the two (a paint at or after the content was drawn)."""
    # Selectors, not wait_for_function: the page's CSP forbids the eval that polling uses.
    page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
    page.wait_for_timeout(100)
    marks = page.evaluate(PAINT)
    return float(marks["ready"]), float(marks["fcp"] or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=5)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is needed (scripts/install.sh --test)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    chain_settings = Settings(data_dir=tmp / "anvil")
    url = anvil.start(chain_settings)
    try:
        settings = Settings(data_dir=tmp / "service", rpc_url=url, chain_id=31337)
        alliance = Alliance.open(settings)
        store = admit_merchant(alliance, name="Grand Plaza Department Store", symbol="GPDS",
                               rate=1)
        cafe = admit_merchant(alliance, name="Corner Cafe", symbol="CAFE", rate=2)
        port = free_port()
        server, thread = _serve(alliance, port)
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, timeout=30)
        store_api = AllianceClient(http, store.key_id, store.secret)
        cafe_api = AllianceClient(http, cafe.key_id, cafe.secret)

        weight = page_weight(base)
        print("page weight (raw / gzip as sent):")
        for path, (raw, sent) in weight.items():
            print(f"  {path:40s} {raw / 1024:8.1f} KiB {sent / 1024:8.1f} KiB")
        first = {p: w for p, w in weight.items() if p not in LAZY}
        js_css = {p: w for p, w in weight.items() if p.endswith((".js", ".css"))}
        print(f"  first screen (html, css, js; not the lazy ones): "
              f"{sum(s for _, s in first.values()) / 1024:.1f} KiB gzip")
        print(f"  all JS + CSS, lazy ones included:             "
              f"{sum(s for _, s in js_css.values()) / 1024:.1f} KiB gzip "
              f"({sum(r for r, _ in js_css.values()) / 1024:.1f} KiB raw)")

        with chromium_browser() as browser:
            device = {"viewport": {"width": 390, "height": 844}, "is_mobile": True,
                      "has_touch": True, "locale": "zh-CN"}
            cold = []
            for _ in range(3):  # a fresh context each time: empty cache, no session
                fresh = browser.new_context(**device)
                probe = fresh.new_page()
                probe.goto(base + "/app")
                cold.append(paint_after_ready(probe))
                fresh.close()
            print("first meaningful paint, cold (welcome), 3 loads: " + ", ".join(
                f"{max(r, f):.0f} ms (drawn {r:.0f}, FCP {f:.0f})" for r, f in cold))
            context = browser.new_context(**device)
            page = context.new_page()
            page.goto(base + "/app")
            page.wait_for_selector("#welcome-actions")

            # A member: a card made in the page, points from both merchants.
            page.get_by_role("button", name="一键领取会员卡").click()
            page.fill("#pass1", PASSPHRASE)
            page.fill("#pass2", PASSPHRASE)
            t0 = time.perf_counter()
            page.locator("#create-go button").click()
            page.wait_for_selector("#backup-words li", timeout=60_000)
            made = time.perf_counter() - t0
            page.check("#backup-ok")
            page.locator("#backup-go button").click()
            page.wait_for_selector(".member-card", timeout=60_000)
            print(f"card created and encrypted in the page (scrypt N=2^16): {made * 1000:.0f} ms")
            address = page.evaluate("window.AllianceApp.state.session.address")
            for client, order, pts in ((store_api, "GP-1", 100_000), (cafe_api, "CF-1", 100)):
                r = client.post("/v1/points/issue", {"member": address, "points": pts,
                                                     "order_id": order})
                client.wait_operation(r.json()["id"])
            warm = []
            for _ in range(3):
                page.reload()
                page.wait_for_selector("#programs li >> nth=1")
                warm.append(paint_after_ready(page))
            print("first meaningful paint, signed in (card with balances), 3 reloads: "
                  + ", ".join(f"{max(r, f):.0f} ms" for r, f in warm))

            # Tap "pay" -> paid screen, the redemption confirmed on chain. The card is opened
            # once (passphrase) before timing: the figure is the payment, not scrypt.
            page.evaluate("() => { window.AllianceApp.needSigner(); }")
            page.fill("#dlg-pass", PASSPHRASE)
            page.click("#dlg-ok")
            page.wait_for_selector("#dialog", state="hidden", timeout=60_000)
            times = []
            for i in range(args.payments):
                pr = cafe_api.post("/v1/payment-requests", {"order_id": f"BENCH-{i}",
                                                            "amount": 1200}).json()
                page.evaluate(f"window.AllianceApp.go('pay', '{pr['id']}')")
                page.wait_for_selector("#pay-button:not([disabled])")
                page.check(f"input[name=program][value='{store.merchant_id}']")
                t0 = time.perf_counter()
                page.click("#pay-button")
                page.wait_for_selector("#result-title:has-text('支付成功')", timeout=90_000)
                times.append(time.perf_counter() - t0)
                status = cafe_api.get(f"/v1/payment-requests/{pr['id']}").json()["status"]
                assert status == "paid", status
            print(f"tap pay -> paid on chain, {len(times)} payments: median "
                  f"{statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
                  f"max {max(times) * 1000:.0f} ms")
        http.close()
        server.should_exit = True
        thread.join(timeout=30)
        alliance.close()
    finally:
        anvil.stop(chain_settings)


if __name__ == "__main__":
    main()
