"""Consent over HTTP (real app, anvil, SQLite): a merchant cannot read a member's profile or
history at other merchants without the member's live on-chain consent; the member grants it
(signed, relayed by the merchant), the merchant reads; the member revokes, the merchant is
refused again. A signature of someone else is refused before anything is queued."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger import runtime
from ledger.settings import Settings

from .conftest import ApiEnv, make_env
from .test_member_session import APP, sign_in


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings.model_copy(update={"rate_limit_per_minute": 10**9}))


def _signed(env: ApiEnv, member: LocalAccount, body: dict[str, Any],
            signer: LocalAccount | None = None) -> dict[str, Any]:
    q = env.http.post("/app/api/consents/quote", json=body, headers=APP)
    assert q.status_code == 200, q.text
    quote = q.json()
    sig = Account.sign_typed_data((signer or member).key, full_message=quote["typed_data"])
    return {**body, "nonce": quote["nonce"], "deadline": quote["deadline"],
            "signature": "0x" + bytes(sig.signature).hex()}


def _consent(env: ApiEnv, member: LocalAccount, body: dict[str, Any]) -> None:
    r = env.http.post("/app/api/consents", json=_signed(env, member, body), headers=APP)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    op = r.json()
    while op["status"] not in ("confirmed", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)
        op = env.http.get(f"/app/api/operations/{op['id']}").json()
    assert op["status"] == "confirmed", op


def test_profile_and_history_are_read_only_under_a_live_consent(env: ApiEnv) -> None:
    member = Account.create()
    assert sign_in(env, member).status_code == 200
    r = env.http.put("/app/api/profile", json={"birth_month": 5, "phone": "+86 138 0000 0000"},
                     headers=APP)
    assert r.status_code == 200, r.text
    cafe = env.cafe_merchant.merchant_id
    # Spent or earned elsewhere: the store's points (its own program is visible to it).
    issued = env.store.post("/v1/points/issue", {"member": member.address, "points": 40,
                                                 "order_id": "GP-C-1"})
    assert env.store.wait_operation(issued.json()["id"])["status"] == "confirmed"

    refused = env.cafe.get(f"/v1/members/{member.address}/profile")
    assert refused.status_code == 403 and refused.json()["code"] == "consent-required"
    refused = env.cafe.get(f"/v1/members/{member.address}/history?scope=alliance")
    assert refused.status_code == 403 and refused.json()["code"] == "consent-required"
    assert env.cafe.get(f"/v1/members/{member.address}/history").json()["events"] == []

    # Someone else's signature over the member's grant: refused, nothing queued.
    bad = _signed(env, member, {"merchant_id": cafe, "kind": "birth_month", "grant": True},
                  signer=Account.create())
    r = env.http.post("/app/api/consents", json=bad, headers=APP)
    assert r.status_code == 422 and r.json()["code"] == "signature-mismatch"

    _consent(env, member, {"merchant_id": cafe, "kind": "birth_month", "grant": True})
    prof = env.cafe.get(f"/v1/members/{member.address}/profile")
    assert prof.status_code == 200, prof.text
    assert prof.json()["birth_month"] == 5 and prof.json()["phone"] is None  # not granted
    # Only the merchant granted: the store still may not read the profile.
    assert env.store.get(f"/v1/members/{member.address}/profile").status_code == 403
    listed = env.http.get("/app/api/consents").json()["consents"]
    live = [(c["merchant_id"], c["kind"]) for c in listed if c["live"]]
    assert live == [(cafe, "birth_month")]

    _consent(env, member, {"merchant_id": cafe, "kind": "history", "grant": True})
    hist = env.cafe.get(f"/v1/members/{member.address}/history?scope=alliance")
    assert hist.status_code == 200 and [e["amount"] for e in hist.json()["events"]] == [40]

    _consent(env, member, {"merchant_id": cafe, "kind": "birth_month", "grant": False})
    _consent(env, member, {"merchant_id": cafe, "kind": "history", "grant": False})
    refused = env.cafe.get(f"/v1/members/{member.address}/profile")
    assert refused.status_code == 403 and refused.json()["code"] == "consent-required"
    refused = env.cafe.get(f"/v1/members/{member.address}/history?scope=alliance")
    assert refused.status_code == 403
    # Revoking what is not live is refused before signing.
    r = env.http.post("/app/api/consents/quote", headers=APP,
                      json={"merchant_id": cafe, "kind": "phone", "grant": False})
    assert r.status_code == 409 and r.json()["code"] == "ConsentNotGranted"


def test_my_data_carries_the_profile_and_erasure_removes_it(env: ApiEnv) -> None:
    member = Account.create()
    assert sign_in(env, member).status_code == 200
    env.http.put("/app/api/profile", json={"birth_month": 11, "phone": "13800000000"},
                 headers=APP)
    assert env.http.get("/app/api/my-data").json()["profile"] == \
        {"birth_month": 11, "phone": "13800000000"}
    assert env.http.delete("/app/api/my-data", headers=APP).status_code == 200
    assert sign_in(env, member).status_code == 200
    assert env.http.get("/app/api/profile").json() == {"birth_month": None, "phone": None}


def test_points_offered_for_a_consent_are_paid_once_per_member_and_kind(env: ApiEnv) -> None:
    member = Account.create()
    assert sign_in(env, member).status_code == 200
    cafe = env.cafe_merchant.merchant_id
    r = env.cafe.post("/v1/consent-rewards/phone", {"points": 30})
    assert r.status_code == 200, r.text
    offered = [c for c in env.http.get("/app/api/consents").json()["consents"]
               if (c["merchant_id"], c["kind"]) == (cafe, "phone")]
    assert offered[0]["reward_points"] == 30
    program = env.alliance.contracts.program(env.cafe_merchant.program)
    body = {"merchant_id": cafe, "kind": "phone"}
    _consent(env, member, {**body, "grant": True})
    for _ in range(2):
        runtime.indexer(env.alliance).catch_up()  # the grant's event queues the issue
        runtime.outbox_worker(env.alliance).drain()
    deadline = time.monotonic() + 30
    while program.balance_of(member.address) != 30 and time.monotonic() < deadline:
        runtime.indexer(env.alliance).catch_up()
        time.sleep(0.2)
    assert program.balance_of(member.address) == 30
    # Revoked and granted again: no second payment.
    _consent(env, member, {**body, "grant": False})
    _consent(env, member, {**body, "grant": True})
    runtime.indexer(env.alliance).catch_up()
    runtime.outbox_worker(env.alliance).drain()
    runtime.indexer(env.alliance).catch_up()
    assert program.balance_of(member.address) == 30
