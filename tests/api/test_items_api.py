"""Items over HTTP: a brand registers a product, its locations and a batch, prints labels,
records custody through the outbox, and anyone verifies a code without credentials; bad
input is a problem+json with a stable code and queues nothing."""

from __future__ import annotations

import csv
import io
import time
from typing import Any
from urllib.parse import quote

from eth_account import Account

from ledger.items import repos
from ledger.items import service as items
from ledger.items.codes import parse_code
from ledger.items.signing import claim_typed_data
from ledger.points.reads import balances

from .conftest import ApiEnv

GTIN = "09506000134352"
FACTORY, SHOP = "urn:epc:id:sgln:9506000.13435.0", "store:cafe:1"


def _ok(env: ApiEnv, response: Any, client: Any = None) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    for op in body.get("operations", [body.get("operation", body)]):
        done = (client or env.store).wait_operation(op["id"])
        assert done["status"] == "confirmed", done
    return body


def _until(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        out = check()
        if out:
            return out
        assert time.monotonic() < deadline, "the read model did not catch up"
        time.sleep(0.1)


def _brand(env: ApiEnv) -> list[dict[str, str]]:
    items.grant_brand(env.alliance, merchant_id=env.store_merchant.merchant_id)
    _ok(env, env.store.post("/v1/items/products", {"gtin": GTIN, "name": "Jade tea set",
                                                   "claim_points": 7}))
    _ok(env, env.store.post("/v1/items/locations", {"locations": [FACTORY]}))
    _ok(env, env.cafe.post("/v1/items/locations", {"locations": [SHOP]}), env.cafe)
    batch = _ok(env, env.store.post("/v1/items/batches",
                                    {"gtin": GTIN, "count": 3, "prefix": "JT"}))
    path = f"/v1/items/batches/{batch['batch_id']}/labels"
    labels = _until(lambda: (r := env.store.get(path)).status_code == 200 and r.json()["labels"])
    assert len(labels) == 3
    return list(labels)


def _event(env: ApiEnv, client: Any, code: str, step: str, loc: str,
           dest: str | None = None) -> None:
    ev: dict[str, Any] = {"code": code, "biz_step": step, "location": loc}
    if dest:
        ev["destination"] = dest
    _ok(env, client.post("/v1/items/events", {"events": [ev]}), client)


def _kinds(env: ApiEnv, code: str) -> list[str]:
    r = env.store.get(f"/v1/items/history?code={quote(code, safe='')}")
    assert r.status_code == 200, r.text
    return [e["kind"] for e in r.json()["events"]]


def _verify(env: ApiEnv, code: str) -> dict[str, Any]:
    r = env.http.get(f"/v1/public/items/verify?code={quote(code, safe='')}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def test_a_brands_item_goes_from_label_to_sold_to_claimed_over_http(env: ApiEnv) -> None:
    labels = _brand(env)
    code = labels[0]["uri"]
    # Commissioning waits for the batch to be known on chain (the indexer's round).
    _until(lambda: env.store.post("/v1/items/events", {"events": [
        {"code": code, "biz_step": "commissioning", "location": FACTORY}]}).status_code == 202)
    # Polling uses the history route: every public verify is a scan, and clone detection
    # counts scans.
    _until(lambda: len(_kinds(env, code)) == 1)
    _event(env, env.store, code, "shipping", FACTORY, SHOP)
    _until(lambda: len(_kinds(env, code)) == 2)
    _event(env, env.cafe, code, "receiving", SHOP)
    _until(lambda: len(_kinds(env, code)) == 3)
    _event(env, env.cafe, code, "retail_selling", SHOP)
    _until(lambda: len(_kinds(env, code)) == 4)
    v = _verify(env, code)
    assert v["status"] == "sold"
    assert v["verdict"] == "genuine" and len(v["history"]) == 4
    assert set(v["message"]) == {"en", "zh-CN"}
    page = env.http.get("/" + code.split("/", 3)[3])  # the label's own URI, resolved here
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # both scans are written by the store's scan buffer soon after, without a shutdown
    iid = "0x" + parse_code(code).item_id.hex()

    def scans_written() -> bool:
        with env.alliance.store.read_session() as s:
            return repos.count_scans(s, iid, 0) == 2
    _until(scans_written)
    assert "正品" in page.text and "Genuine" in page.text

    buyer = Account.create()
    deadline = int(env.alliance.gateway.block("latest")["timestamp"]) + 3600  # chain clock
    assert env.alliance.contracts.items is not None
    typed = claim_typed_data(chain_id=env.alliance.gateway.chain_id,
                             items=env.alliance.contracts.items.address,
                             registry=env.alliance.contracts.registry.address,
                             member=buyer.address, item_id=parse_code(code).item_id, nonce=0,
                             deadline=deadline)
    sig = "0x" + Account.sign_typed_data(buyer.key, full_message=typed).signature.hex()
    claim = {"code": code, "member": buyer.address, "nonce": 0, "deadline": deadline,
             "signature": sig}
    _ok(env, env.cafe.post("/v1/items/claim", claim), env.store)
    _until(lambda: balances(env.alliance, member=buyer.address,
                            merchant_id=env.store_merchant.merchant_id)[0].balance == 7)
    again = env.cafe.post("/v1/items/claim", claim)
    assert again.status_code == 409 and again.json()["code"] == "ItemAlreadyClaimed"
    # the second claim is a clone signal: the item is flagged on chain, and verify says so
    _until(lambda: "flagged" in _kinds(env, code))
    flagged = _verify(env, code)
    assert flagged["verdict"] == "suspicious" and flagged["reasons"] == ["flagged"]

    hist = env.store.get(f"/v1/items/history?code={quote(code, safe='')}&format=epcis")
    assert hist.headers["content-type"].startswith("application/ld+json")
    assert len(hist.json()["epcisBody"]["eventList"]) == 4


def test_labels_come_as_csv_png_and_svg(env: ApiEnv) -> None:
    _brand(env)
    batch_id = 1
    r = env.store.get(f"/v1/items/batches/{batch_id}/labels?format=csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["serial"] for row in rows] == ["JT1", "JT2", "JT3"]
    assert rows[0]["uri"].startswith("https://id.alliance.example/01/09506000134352/21/JT1?s=")
    png = env.store.get(f"/v1/items/batches/{batch_id}/labels/JT1?format=png")
    assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    svg = env.store.get(f"/v1/items/batches/{batch_id}/labels/JT1?format=svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    # another merchant cannot print the brand's labels
    assert env.cafe.get(f"/v1/items/batches/{batch_id}/labels").status_code == 404


def test_a_bad_check_digit_is_a_problem_and_queues_nothing(env: ApiEnv) -> None:
    r = env.store.post("/v1/items/products", {"gtin": "09506000134353", "name": "x"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "invalid-gtin"
    v = _verify(env, "https://id.alliance.example/01/09506000134352/21/NOPE")
    assert v["verdict"] == "unknown"
    bad = env.http.get("/v1/public/items/verify?code=" + quote(
        "https://id.alliance.example/01/09506000134353/21/X", safe=""))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid-gtin"


def test_a_members_own_items_need_the_member_session(env: ApiEnv) -> None:
    """The member app's read of the items a member claimed: 401 without the session cookie,
    the member's (here none yet) with it, at /app/api/items (where the browser sends the
    cookie, path /app) and at /v1/items/mine for a client sending the cookie itself."""
    from .test_member_session import sign_in

    assert env.http.get("/app/api/items").status_code == 401
    member = Account.create()
    r = sign_in(env, member)
    assert r.status_code == 200, r.text
    mine = env.http.get("/app/api/items")  # the member app's own read (ledger/members/scans)
    assert mine.status_code == 200 and mine.json() == {"items": []}
    token = env.http.cookies.get("alliance_member")
    assert token
    v1 = env.http.get("/v1/items/mine", headers={"Cookie": f"alliance_member={token}"})
    assert v1.status_code == 200 and v1.json() == {"member": member.address, "items": []}
