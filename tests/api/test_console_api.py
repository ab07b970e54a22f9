"""The console's JSON routes through the ASGI app: the signed sign-in (once per signature),
the X-Console header, and who may open a console session."""

from __future__ import annotations

from api.client import sign_request
from ledger.audit.service import create_auditor_credential

from .conftest import ApiEnv

SESSION = "/console/api/session"


def _signed(key_id: str, secret: str) -> dict[str, str]:
    h = sign_request(key_id, secret, "POST", SESSION, b"{}")
    h["Content-Type"] = "application/json"
    return h


def test_sign_in_sets_an_http_only_cookie_once_per_signed_request(env: ApiEnv) -> None:
    m = env.store_merchant
    headers = {**_signed(m.key_id, m.secret), "X-Console": "1"}
    r = env.http.post(SESSION, content=b"{}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["merchant_id"] == m.merchant_id and r.json()["role"] == "merchant"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    # The same signed request sent again is a replay.
    again = env.http.post(SESSION, content=b"{}", headers=headers)
    assert again.status_code == 401
    # The cookie reads the page's routes, with the console's header only.
    assert env.http.get("/console/api/figures", headers={"X-Console": "1"}).status_code == 200
    bare = env.http.get("/console/api/figures")
    assert bare.status_code == 400
    assert bare.headers["content-type"].startswith("application/problem+json")


def test_sign_in_wants_the_console_header_and_a_merchant_or_operator_key(env: ApiEnv) -> None:
    m = env.store_merchant
    r = env.http.post(SESSION, content=b"{}", headers=_signed(m.key_id, m.secret))
    assert r.status_code == 400 and "set-cookie" not in r.headers
    wrong = env.http.post(SESSION, content=b"{}", headers={
        **_signed(m.key_id, "not-the-secret"), "X-Console": "1"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    key_id, secret = create_auditor_credential(env.alliance)
    auditor = env.http.post(SESSION, content=b"{}", headers={**_signed(key_id, secret),
                                                             "X-Console": "1"})
    assert auditor.status_code == 403 and "set-cookie" not in auditor.headers
