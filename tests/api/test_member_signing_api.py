"""A member's signatures over HTTP (issue 8): cancelling unused nonces, and what balances
and history say of pending points."""

from __future__ import annotations

from eth_account import Account

from ledger.runtime import indexer
from ledger.signing import cancel_nonces_typed_data

from .conftest import ApiEnv


def _cancel_sig(env: ApiEnv, key: bytes, member: str, *, mask: int, deadline: int) -> str:
    typed = cancel_nonces_typed_data(
        chain_id=env.alliance.gateway.chain_id, program=env.store_merchant.program,
        registry=env.alliance.contracts.deployment.registry, member=member, word_pos=0,
        mask=mask, deadline=deadline)
    return "0x" + bytes(Account.sign_typed_data(key, full_message=typed).signature).hex()


def test_cancel_signatures_is_relayed_and_marks_the_nonces_used(env: ApiEnv) -> None:
    member = Account.create()
    deadline = int(env.alliance.gateway.block("latest")["timestamp"]) + 600
    mask = 1 << 3 | 1 << 200
    body = {"member": member.address, "word_pos": 0, "mask": hex(mask), "deadline": deadline,
            "signature": _cancel_sig(env, member.key, member.address, mask=mask,
                                     deadline=deadline)}
    r = env.store.post("/v1/points/cancel-signatures", body)
    assert r.status_code == 202, r.text
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.nonce_bitmap(member.address, 0) == mask
    nonces = env.http.get(f"/v1/public/programs/{env.store_merchant.merchant_id}/nonces/"
                          f"{member.address}?nonce=200").json()
    assert nonces["used"] is True and 3 not in nonces["suggested"]
    # Signed by someone else: refused before anything is queued.
    other = Account.create()
    r = env.store.post("/v1/points/cancel-signatures", {**body, "mask": "0x10", "signature":
                       _cancel_sig(env, other.key, member.address, mask=0x10,
                                   deadline=deadline)})
    assert r.status_code == 422 and r.json()["code"] == "signature-mismatch"
    r = env.store.post("/v1/points/cancel-signatures", {**body, "mask": "0x0"})
    assert r.status_code == 422


def test_balances_over_http_carry_releases_lots_and_expired(env: ApiEnv) -> None:
    member = Account.create().address
    release_at = int(env.alliance.gateway.block("latest")["timestamp"]) + 86_400
    r = env.store.post("/v1/points/issue", {"member": member, "points": 9, "order_id": "H-1",
                                            "release_at": release_at})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    indexer(env.alliance).catch_up()  # release times come from the indexer's read model
    bal = env.store.get(f"/v1/members/{member}/balances").json()
    (gpds,) = [p for p in bal["programs"] if p["symbol"] == "GPDS"]
    assert (gpds["balance"], gpds["spendable"], gpds["pending"], gpds["expired"]) == \
        (9, 0, 9, 0)
    assert [x["points"] for x in gpds["releases"]] == [9]
    assert gpds["releases"][0]["release_at"] >= release_at
    assert [lot["points"] for lot in gpds["lots"]] == [9]
    hist = env.store.get(f"/v1/members/{member}/history").json()
    (issued,) = hist["events"]
    assert issued["kind"] == "issued" and issued["release_at"] == \
        gpds["releases"][0]["release_at"]
