"""The console's JSON routes through the ASGI app: the signed sign-in (once per signature),
the X-Console header, and who may open a console session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api.client import sign_request
from ledger.audit.service import create_auditor_credential
from ledger.settings import Settings

from .conftest import ApiEnv, make_env

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


# ---------------------------------------------------------------------- webhooks panel

HOOK = "http://127.0.0.1:9/alliance/hooks"


def _cookie(env: ApiEnv, key_id: str, secret: str) -> dict[str, str]:
    """The console headers of a fresh session of this key (the client's jar left empty, so
    two sessions never mix)."""
    r = env.http.post(SESSION, content=b"{}", headers={**_signed(key_id, secret),
                                                       "X-Console": "1"})
    assert r.status_code == 200, r.text
    token = r.cookies["alliance_console"]
    env.http.cookies.clear()
    return {"X-Console": "1", "Cookie": f"alliance_console={token}"}


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def wenv(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"webhooks_allow_private": True}))


def test_the_console_registers_a_merchants_endpoint_and_shows_its_secret_once(
        wenv: ApiEnv) -> None:
    store = _cookie(wenv, wenv.store_merchant.key_id, wenv.store_merchant.secret)
    session = wenv.http.get(SESSION, headers=store).json()
    assert session["features"]["webhooks"] is True
    r = wenv.http.post("/console/api/webhooks", headers=store,
                       json={"url": HOOK, "events": ["points.issued"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["id"].startswith("wh_") and made["secret"].startswith("whsec_")
    assert made["status"] == "active" and made["events"] == ["points.issued"]
    listed = wenv.http.get("/console/api/webhooks", headers=store).json()["webhooks"]
    assert [w["id"] for w in listed] == [made["id"]] and "secret" not in listed[0]
    # The very endpoint the API client sees, under the same merchant.
    assert [w["id"] for w in wenv.store.get("/v1/webhooks").json()["webhooks"]] == [made["id"]]
    # Another merchant's console neither sees nor touches it.
    cafe = _cookie(wenv, wenv.cafe_merchant.key_id, wenv.cafe_merchant.secret)
    assert wenv.http.get("/console/api/webhooks", headers=cafe).json()["webhooks"] == []
    for method, path in (("GET", f"/console/api/webhooks/{made['id']}/deliveries"),
                         ("POST", f"/console/api/webhooks/{made['id']}/resume"),
                         ("DELETE", f"/console/api/webhooks/{made['id']}")):
        _problem(wenv.http.request(method, path, headers=cafe), 404)
    # Deleted from the console: gone from the list.
    gone = wenv.http.delete(f"/console/api/webhooks/{made['id']}", headers=store)
    assert gone.status_code == 200 and gone.json()["status"] == "deleted"
    assert wenv.http.get("/console/api/webhooks", headers=store).json()["webhooks"] == []


def test_console_webhook_routes_refuse_bad_input_the_operator_and_a_missing_header(
        wenv: ApiEnv) -> None:
    store = _cookie(wenv, wenv.store_merchant.key_id, wenv.store_merchant.secret)
    _problem(wenv.http.post("/console/api/webhooks", headers=store,
                            json={"url": "ftp://example.com/x", "events": ["*"]}), 422)
    _problem(wenv.http.post("/console/api/webhooks", headers=store,
                            json={"url": HOOK, "events": ["points.minted"]}), 422)
    # Nothing was registered by the refusals.
    assert wenv.http.get("/console/api/webhooks", headers=store).json()["webhooks"] == []
    # Without X-Console (a cross-site form) the cookie alone does nothing.
    _problem(wenv.http.post("/console/api/webhooks",
                            headers={"Cookie": store["Cookie"]},
                            json={"url": HOOK, "events": ["*"]}), 400)
    # No cookie: 401.
    _problem(wenv.http.get("/console/api/webhooks", headers={"X-Console": "1"}), 401)
    # The operator has no endpoints of its own.
    admin = _cookie(wenv, wenv.admin.key_id, wenv.admin.secret)
    assert wenv.http.get(SESSION, headers=admin).json()["role"] == "admin"
    _problem(wenv.http.get("/console/api/webhooks", headers=admin), 403)
    _problem(wenv.http.post("/console/api/webhooks", headers=admin,
                            json={"url": HOOK, "events": ["*"]}), 403)


def test_console_delivery_log_resume_and_replay_answer_like_the_api(wenv: ApiEnv) -> None:
    store = _cookie(wenv, wenv.store_merchant.key_id, wenv.store_merchant.secret)
    wid = wenv.http.post("/console/api/webhooks", headers=store,
                         json={"url": HOOK, "events": ["*"]}).json()["id"]
    log = wenv.http.get(f"/console/api/webhooks/{wid}/deliveries?limit=10", headers=store)
    assert log.status_code == 200 and log.json() == {"deliveries": [], "next_after": None}
    resumed = wenv.http.post(f"/console/api/webhooks/{wid}/resume", headers=store)
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    # Replay from an event this endpoint never had: the service's own refusal.
    api_answer = wenv.store.post(f"/v1/webhooks/{wid}/replay",
                                 {"from_event_id": "evt_" + "0" * 32})
    console_answer = wenv.http.post(f"/console/api/webhooks/{wid}/replay", headers=store,
                                    json={"from_event_id": "evt_" + "0" * 32})
    assert console_answer.status_code == api_answer.status_code, console_answer.text
    assert console_answer.json()["type"] == api_answer.json()["type"]
    _problem(wenv.http.post(f"/console/api/webhooks/{wid}/replay", headers=store,
                            json={"from_event_id": "nope"}), 422)
