"""Public, rate-limited, read-only member info (issue 8): a wallet learns the chain, the
programs, their EIP-712 domains and its unused nonces without merchant credentials, and what
it signs from that alone lands."""

from __future__ import annotations

from typing import Any

from eth_account import Account

from api.ratelimit import RateLimiter
from ledger.points.service import order_ref
from ledger.signing import domain, domain_salt

from .conftest import ApiEnv


def _wallet_signs_redeem(info: dict[str, Any], program: dict[str, Any], key: bytes,
                         message: dict[str, Any]) -> str:
    """What a wallet written from the public endpoint alone does: its domain and types."""
    typed = {"types": {"EIP712Domain": info["types"]["EIP712Domain"],
                       "Redeem": info["types"]["Redeem"]},
             "primaryType": "Redeem", "domain": program["domain"], "message": message}
    return "0x" + bytes(Account.sign_typed_data(key, full_message=typed).signature).hex()


def test_alliance_info_is_public_and_enough_to_sign_a_redemption(env: ApiEnv) -> None:
    r = env.http.get("/v1/public/alliance")  # no credentials at all
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["chain_id"] == env.alliance.gateway.chain_id
    assert info["registry"] == env.alliance.contracts.deployment.registry
    assert info["settlement_unit"] and info["max_deadline_ahead_s"] > 0
    by_id = {p["merchant_id"]: p for p in info["programs"]}
    store = by_id[env.store_merchant.merchant_id]
    assert store["program"] == env.store_merchant.program and store["symbol"] == "GPDS"
    assert store["rate"] == 1 and by_id[env.cafe_merchant.merchant_id]["rate"] == 2
    assert store["status"] == "active"
    assert store["domain"]["verifyingContract"] == env.store_merchant.program
    assert store["domain"]["chainId"] == info["chain_id"]
    assert {"Redeem", "Convert", "CancelNonces", "EIP712Domain"} <= set(info["types"])
    # The salt binds signatures to this alliance (its registry), as the program checks it.
    assert store["domain"]["salt"] == domain_salt(info["registry"])
    assert store["domain"] == domain(chain_id=info["chain_id"], program=store["program"],
                                     registry=info["registry"])
    assert [f["name"] for f in info["types"]["EIP712Domain"]] == [
        "name", "version", "chainId", "verifyingContract", "salt"]

    member = Account.create()
    r = env.store.post("/v1/points/issue", {"member": member.address, "points": 30,
                                            "order_id": "PUB-EARN"})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    nonces = env.http.get(f"/v1/public/programs/{env.store_merchant.merchant_id}/nonces/"
                          f"{member.address}").json()
    nonce = nonces["suggested"][0]
    deadline = int(env.alliance.gateway.block("latest")["timestamp"]) + 600
    sig = _wallet_signs_redeem(info, store, member.key, {
        "member": member.address, "amount": 12, "merchantId": env.store_merchant.merchant_id,
        "orderRef": "0x" + order_ref("PUB-SALE").hex(), "nonce": nonce, "deadline": deadline})
    r = env.store.post("/v1/points/redeem", {"member": member.address, "points": 12,
                                             "order_id": "PUB-SALE", "nonce": nonce,
                                             "deadline": deadline, "signature": sig})
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    after = env.http.get(f"/v1/public/programs/{env.store_merchant.merchant_id}/nonces/"
                         f"{member.address}?nonce={nonce}").json()
    assert after["used"] is True and nonce not in after["suggested"]
    assert len(after["suggested"]) == len(set(after["suggested"])) >= 2


def test_nonce_suggestions_of_a_new_member_are_unused(env: ApiEnv) -> None:
    member = Account.create().address
    r = env.http.get(f"/v1/public/programs/{env.cafe_merchant.merchant_id}/nonces/{member}"
                     "?nonce=5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["program"] == env.cafe_merchant.program and body["member"] == member
    assert body["nonce"] == 5 and body["used"] is False
    assert body["suggested"][:3] == [0, 1, 2]


def test_public_routes_refuse_bad_input_as_problem_json(env: ApiEnv) -> None:
    member = Account.create().address
    for path, status in ((f"/v1/public/programs/999/nonces/{member}", 404),
                         ("/v1/public/programs/1/nonces/0x1234", 422),
                         (f"/v1/public/programs/1/nonces/{member}?nonce=-1", 422),
                         (f"/v1/public/programs/1/nonces/{member}?nonce={2**64}", 422),
                         (f"/v1/public/programs/{2**63}/nonces/{member}", 422)):
        r = env.http.get(path)
        assert r.status_code == status, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


def test_public_routes_are_rate_limited_per_client_address(env: ApiEnv) -> None:
    env.http.app.state.public_rate_limiter = RateLimiter(3)  # type: ignore[attr-defined]
    for _ in range(3):
        assert env.http.get("/v1/public/alliance").status_code == 200
    r = env.http.get("/v1/public/alliance")
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["Retry-After"]) >= 1 and r.json()["code"] == "rate-limited"
    # Merchants' signed routes keep their own per-key budget.
    assert env.store.get("/v1/merchants/me").status_code == 200
