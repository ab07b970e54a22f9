"""Merchants' point requests over HTTP, end to end on a real chain and store."""

from __future__ import annotations

from eth_account import Account

from ledger.outbox import repos as outbox_repos
from ledger.points.reads import chain_now
from ledger.runtime import indexer
from tests.ledger.helpers import sign_redemption

from .conftest import ApiEnv


def _count_ops(env: ApiEnv) -> int:
    with env.alliance.store.session() as s:
        return outbox_repos.count_operations(s)


def test_issue_is_accepted_then_confirmed_on_chain(env: ApiEnv) -> None:
    member = Account.create().address
    r = env.store.post("/v1/points/issue", {"member": member, "points": 120,
                                            "order_id": "POS-1"})
    assert r.status_code == 202, r.text
    op = r.json()
    assert op["status"] in {"queued", "submitted", "confirmed"} and op["items"] == 1
    done = env.store.wait_operation(op["id"])
    assert done["status"] == "confirmed" and done["tx_hash"].startswith("0x")
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.balance_of(member) == 120  # checked on the chain itself
    indexer(env.alliance).catch_up()  # history reads the indexer's read model
    bal = env.store.get(f"/v1/members/{member}/balances").json()
    (gpds,) = [p for p in bal["programs"] if p["symbol"] == "GPDS"]
    assert gpds["spendable"] == 120 and gpds["pending"] == 0
    hist = env.store.get(f"/v1/members/{member}/history").json()
    assert [e["kind"] for e in hist["events"]] == ["issued"]
    # Each read says the block it reflects: at or past the issue's.
    assert hist["as_of_block"] >= hist["events"][0]["block_number"]
    assert bal["as_of_block"] >= hist["events"][0]["block_number"]


def test_batch_issue_and_reverse_over_http(env: ApiEnv) -> None:
    members = [Account.create().address for _ in range(5)]
    r = env.store.post("/v1/points/issue-batch", {"items": [
        {"member": m, "points": 10 * (i + 1), "order_id": f"B-{i}"}
        for i, m in enumerate(members)]})
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    r = env.store.post("/v1/points/reverse", {"order_id": "B-4", "points": 30})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    r = env.store.post("/v1/points/reverse", {"order_id": "B-4", "points": 21})
    failed = env.store.wait_operation(r.json()["id"])
    assert failed["status"] == "failed" and failed["error_code"] == "PointsReverseExceedsIssued"
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert [program.balance_of(m) for m in members] == [10, 20, 30, 40, 20]


def test_redeem_relays_a_members_signature(env: ApiEnv) -> None:
    member = Account.create()
    r = env.store.post("/v1/points/issue", {"member": member.address, "points": 100,
                                            "order_id": "P-9"})
    env.store.wait_operation(r.json()["id"])
    deadline = chain_now(env.alliance) + 600
    sig = sign_redemption(member, program=env.store_merchant.program,
                          chain_id=env.alliance.gateway.chain_id,
                          registry=env.alliance.contracts.registry.address, amount=40,
                          merchant_id=env.store_merchant.merchant_id, order_id="SALE-9",
                          nonce=0, deadline=deadline)
    r = env.store.post("/v1/points/redeem", {"member": member.address, "points": 40,
                                             "order_id": "SALE-9", "nonce": 0,
                                             "deadline": deadline, "signature": sig})
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    # The same signature for another amount is refused before it is queued (it used to be
    # accepted with 202 and fail on chain with PointsInvalidSignature).
    ops_before = _count_ops(env)
    r = env.store.post("/v1/points/redeem", {"member": member.address, "points": 41,
                                             "order_id": "SALE-10", "nonce": 1,
                                             "deadline": deadline, "signature": sig})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "signature-mismatch" and r.json()["field"] == "signature"
    assert _count_ops(env) == ops_before
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.balance_of(member.address) == 60


def test_member_id_is_resolved_without_putting_it_on_chain(env: ApiEnv) -> None:
    r = env.store.post("/v1/points/issue", {"member_id": "13800138000", "points": 5,
                                            "order_id": "M-1"})
    done = env.store.wait_operation(r.json()["id"])
    assert done["status"] == "confirmed"
    tx = env.alliance.gateway.transaction(done["tx_hash"])
    assert tx is not None
    assert b"13800138000" not in bytes(tx["input"])
    assert "13800138000" not in bytes(tx["input"]).hex()


def test_suspended_merchant_is_refused_at_the_api_and_can_act_again_once_reinstated(
        env: ApiEnv) -> None:
    # Before: a suspended merchant's issue was accepted (202) and failed later on chain with
    # RegistryInvalidStatus. Now the API refuses it (403) and queues nothing.
    r = env.admin.post(f"/v1/admin/merchants/{env.cafe_merchant.merchant_id}/suspend", None)
    assert r.status_code == 200 and r.json()["status"] == "suspended"
    before = _count_ops(env)
    member = Account.create().address
    for path, payload in [
            ("/v1/points/issue", {"member": member, "points": 5, "order_id": "S-1"}),
            ("/v1/points/issue-batch", {"items": [{"member": member, "points": 5,
                                                   "order_id": "S-1b"}]}),
            ("/v1/points/reverse", {"order_id": "S-1", "points": 1}),
            ("/v1/clearing/offchain-payments", {"period": 1, "debtor": 1, "amount": 5})]:
        r = env.cafe.post(path, payload)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["code"] == "merchant-suspended"
    assert _count_ops(env) == before
    # It may still read its own record.
    me = env.cafe.get("/v1/merchants/me")
    assert me.status_code == 200 and me.json()["status"] == "suspended"
    r = env.admin.post(f"/v1/admin/merchants/{env.cafe_merchant.merchant_id}/reinstate", None)
    assert r.json()["status"] == "active"
    r = env.cafe.post("/v1/points/issue", {"member": Account.create().address, "points": 5,
                                           "order_id": "S-2"})
    assert env.cafe.wait_operation(r.json()["id"])["status"] == "confirmed"


def test_admin_admits_a_merchant_whose_credentials_work_once_shown(env: ApiEnv) -> None:
    r = env.admin.post("/v1/admin/merchants", {"name": "Starlight Cinema", "symbol": "STAR",
                                               "rate": 5})
    assert r.status_code == 201, r.text
    created = r.json()
    from api.client import AllianceClient

    cinema = AllianceClient(env.http, created["key_id"], created["secret"])
    me = cinema.get("/v1/merchants/me").json()
    assert me["merchant_id"] == created["merchant_id"] and me["rate"] == 5
    listed = env.admin.get("/v1/admin/merchants").json()
    assert {m["name"] for m in listed} >= {"Starlight Cinema", "Corner Cafe"}
    assert all("secret" not in m for m in listed)
    r = env.admin.request("PUT", f"/v1/admin/merchants/{created['merchant_id']}/rate",
                          {"rate": 7})
    assert r.json()["rate"] == 7
    assert env.alliance.contracts.registry.rate_of(created["merchant_id"]) == 7
