"""The webhook API: a merchant registers endpoints (secret shown once, kept only encrypted),
lists them without secrets, reads the delivery log, replays, resumes and deletes; bad URLs
and unknown events are problem+json; another merchant's endpoints do not exist for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger.settings import Settings
from ledger.store.models import WebhookEndpoint
from tests.api.conftest import ApiEnv, make_env


@pytest.fixture
def wenv(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"webhooks_allow_private": True}))


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    return body


HOOK = "http://127.0.0.1:9/alliance/hooks"


def test_register_shows_the_secret_once_and_lists_without_it(wenv: ApiEnv) -> None:
    r = wenv.store.post("/v1/webhooks", {"url": HOOK,
                                         "events": ["points.issued", "points.issued",
                                                    "coupons.redeemed"]})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["id"].startswith("wh_") and made["secret"].startswith("whsec_")
    assert made["events"] == ["points.issued", "coupons.redeemed"]
    assert made["status"] == "active" and made["pending"] == 0
    listed = wenv.store.get("/v1/webhooks").json()["webhooks"]
    assert [w["id"] for w in listed] == [made["id"]]
    assert "secret" not in listed[0]
    assert wenv.store.get(f"/v1/webhooks/{made['id']}").json()["url"] == HOOK
    # The store keeps the secret only encrypted.
    with wenv.alliance.store.read_session() as s:
        row = s.get(WebhookEndpoint, made["id"])
        assert row is not None and made["secret"].encode() not in row.secret_enc
        assert wenv.alliance.master_key.decrypt(row.secret_enc).decode() == made["secret"]
    # The cafe does not see the store's endpoint.
    assert wenv.cafe.get("/v1/webhooks").json()["webhooks"] == []
    problem(wenv.cafe.get(f"/v1/webhooks/{made['id']}"), 404)
    problem(wenv.cafe.request("DELETE", f"/v1/webhooks/{made['id']}"), 404)


def test_delete_resume_deliveries_and_replay_answer_in_shape(wenv: ApiEnv) -> None:
    wid = wenv.store.post("/v1/webhooks", {"url": HOOK, "events": ["*"]}).json()["id"]
    log = wenv.store.get(f"/v1/webhooks/{wid}/deliveries?limit=10").json()
    assert log == {"deliveries": [], "next_after": None}
    resumed = wenv.store.post(f"/v1/webhooks/{wid}/resume", None)
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    problem(wenv.store.post(f"/v1/webhooks/{wid}/replay",
                            {"from_event_id": "evt_" + "0" * 32}), 404)
    gone = wenv.store.request("DELETE", f"/v1/webhooks/{wid}")
    assert gone.status_code == 200 and gone.json()["status"] == "deleted"
    assert wenv.store.get("/v1/webhooks").json()["webhooks"] == []
    problem(wenv.store.get(f"/v1/webhooks/{wid}/deliveries"), 404)


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:8000/v1/admin/merchants", "own API"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
    ("ftp://example.org/hook", "https"),
    ("https://user:pw@example.org/hook", "credentials"),
])
def test_urls_the_service_must_not_call_are_refused_as_problems(wenv: ApiEnv, url: str,
                                                                why: str) -> None:
    body = problem(wenv.store.post("/v1/webhooks", {"url": url, "events": ["points.issued"]}),
                   422)
    assert why in body["detail"] and body.get("field") == "url"
    assert wenv.store.get("/v1/webhooks").json()["webhooks"] == []


def test_private_urls_are_refused_unless_the_operator_allows_them(env: ApiEnv) -> None:
    body = problem(env.store.post("/v1/webhooks", {"url": HOOK, "events": ["points.issued"]}),
                   422)
    assert "private address" in body["detail"]


def test_unknown_event_types_and_empty_lists_are_refused(wenv: ApiEnv) -> None:
    problem(wenv.store.post("/v1/webhooks", {"url": HOOK, "events": ["points.stolen"]}), 422)
    problem(wenv.store.post("/v1/webhooks", {"url": HOOK, "events": []}), 422)
    problem(wenv.store.post("/v1/webhooks", {"url": HOOK, "events": ["event.reverted"]}), 422)


def test_a_merchant_has_a_bounded_number_of_endpoints(wenv: ApiEnv) -> None:
    for _ in range(10):
        assert wenv.store.post("/v1/webhooks", {"url": HOOK, "events": ["*"]}).status_code \
            == 201
    problem(wenv.store.post("/v1/webhooks", {"url": HOOK, "events": ["*"]}), 409)
