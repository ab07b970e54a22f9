"""Signing in with a wallet app already on the phone, in a real browser (Debian's Chromium,
Pixel-7-sized) against the real service on loopback. The wallet app is the one part that is
not ours: the page talks to it through the standard EIP-1193 ``window.ethereum``, so the test
puts one there whose signatures are real (made with eth-account in the test process) and whose
network and answers the test sets. A wallet app on another network, and a member who cancels
in it, each get a plain message and no session; switched and accepted, the member is signed in
with that wallet's address. Screenshots under ``$ALLIANCE_TEST_ARTIFACTS``."""

# ruff: noqa: F811 - the fixtures imported from test_member_app are the parameters below
from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import Browser

from tests.e2e.test_member_app import (  # noqa: F401 - fixtures
    AppServer,
    Journey,
    _issue,
    app_server,
)
from tests.e2e.test_member_app_coupons import new_page

# The wallet app: chain and answer are set by the test (window.__wallet); a signature comes
# from the test process (window.walletSign), as a real wallet app's would.
WALLET_APP = """
window.__wallet = { chainId: "0x1", reject: false, address: null, asked: [] };
window.ethereum = {
  isMetaMask: false,
  on() {}, removeListener() {},
  async request({ method, params }) {
    const w = window.__wallet;
    w.asked.push(method);
    if (method === "eth_chainId") return w.chainId;
    if (method === "net_version") return String(parseInt(w.chainId, 16));
    if (method === "eth_requestAccounts" || method === "eth_accounts") return [w.address];
    if (method === "personal_sign") {
      if (w.reject) {
        const e = new Error("User rejected the request."); e.code = 4001; throw e;
      }
      return await window.walletSign(params[0]);
    }
    const e = new Error("unsupported " + method); e.code = 4200; throw e;
  },
};
"""


def test_a_wallet_app_on_the_phone_signs_in_and_its_refusals_are_plain(
        app_server: AppServer, browser: Browser, shots: object) -> None:
    env = app_server
    wallet = Account.create()
    _issue(env.store, wallet.address, 120, "WA-1")
    context, page, errors = new_page(env, browser)
    context.add_init_script(WALLET_APP)
    page.expose_function("walletSign", lambda message_hex: "0x" + Account.sign_message(
        encode_defunct(hexstr=message_hex), wallet.key).signature.hex().removeprefix("0x"))
    j = Journey(page, shots)  # type: ignore[arg-type]
    page.goto(env.url + "/app")
    page.evaluate("a => { window.__wallet.address = a; }", wallet.address)
    use_wallet_app = page.get_by_role("button", name="使用手机里的钱包应用登录")

    # --- the wallet app is on another network: said plainly, nothing signed, no session
    use_wallet_app.click()
    page.wait_for_selector(".notice-error[data-code=wrong-chain]", timeout=30_000)
    assert "网络不对" in page.locator(".notice-error").inner_text()
    assert "personal_sign" not in page.evaluate("window.__wallet.asked")
    assert not [c for c in context.cookies() if c["name"] == "alliance_member"]
    j.shot("wallet-app-wrong-network")

    # --- switched, but the member cancels in the wallet app: said plainly, no session
    page.evaluate("() => { window.__wallet.chainId = '0x7a69'; window.__wallet.reject = true; }")
    use_wallet_app.click()
    page.wait_for_selector(".notice-error[data-code=ACTION_REJECTED]", timeout=30_000)
    assert "您已取消确认" in page.locator(".notice-error").inner_text()
    assert not [c for c in context.cookies() if c["name"] == "alliance_member"]
    j.shot("wallet-app-cancelled")

    # --- accepted: signed in as the wallet app's address, its points on the card
    page.evaluate("() => { window.__wallet.reject = false; }")
    use_wallet_app.click()
    page.wait_for_selector(".member-card", timeout=30_000)
    assert page.evaluate("window.AllianceApp.state.session.address").lower() == \
        wallet.address.lower()
    assert [c for c in context.cookies() if c["name"] == "alliance_member"]
    row = f"#programs li[data-merchant='{env.store_merchant.merchant_id}'] [data-points]"
    page.wait_for_selector(row, timeout=30_000)
    assert page.locator(row).inner_text() == "120"
    j.shot("wallet-app-signed-in")
    assert errors == []
    context.close()
