"""The member app's session and its own routes over HTTP (real app, anvil, SQLite): Sign-In
with Ethereum with a single-use nonce, the session cookie's flags, logout, the app header
against cross-site requests; a merchant's payment request paid once; erasure of the member's
off-chain records with the ledger left intact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from sqlalchemy import select, update

from ledger.store.models import Member, MemberLoginNonce, PaymentRequest
from tests.ledger.helpers import sign_conversion, sign_redemption

from .conftest import ApiEnv

APP = {"X-Alliance-App": "1"}


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def siwe_message(challenge: dict[str, Any], address: str, *, domain: str | None = None,
                 chain_id: int | None = None, expires_in: timedelta = timedelta(hours=1),
                 nonce: str | None = None) -> str:
    now = datetime.now(UTC)
    return (f"{domain or challenge['domain']} wants you to sign in with your Ethereum "
            f"account:\n{address}\n\n{challenge['statement']}\n\nURI: {challenge['uri']}\n"
            f"Version: 1\nChain ID: {chain_id or challenge['chain_id']}\n"
            f"Nonce: {nonce or challenge['nonce']}\nIssued At: {_iso(now)}\n"
            f"Expiration Time: {_iso(now + expires_in)}")


def _sign(member: LocalAccount, message: str) -> str:
    return "0x" + member.sign_message(encode_defunct(text=message)).signature.hex().removeprefix(
        "0x")


def sign_in(env: ApiEnv, member: LocalAccount, **kw: Any) -> Any:
    challenge = env.http.post("/app/api/sign-in/challenge", json={}, headers=APP).json()
    message = siwe_message(challenge, member.address, **kw)
    return env.http.post("/app/api/sign-in", json={"message": message,
                                                   "signature": _sign(member, message)},
                         headers=APP)


def test_sign_in_sets_an_httponly_strict_cookie_and_the_session_reads_balances(
        env: ApiEnv) -> None:
    member = Account.create()
    r = sign_in(env, member)
    assert r.status_code == 200, r.text
    assert r.json()["address"] == member.address
    cookie = r.headers["set-cookie"]
    assert "alliance_member=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Path=/app" in cookie
    assert "Secure" not in cookie  # plain HTTP here: Secure only over TLS
    me = env.http.get("/app/api/session")
    assert me.status_code == 200 and me.json()["address"] == member.address
    balances = env.http.get("/app/api/balances").json()
    assert {p["merchant_id"] for p in balances["programs"]} == {
        env.store_merchant.merchant_id, env.cafe_merchant.merchant_id}
    assert balances["settlement_unit"] == "CNY-fen" and balances["total_value"] == 0


def test_a_sign_in_nonce_works_once(env: ApiEnv) -> None:
    member = Account.create()
    challenge = env.http.post("/app/api/sign-in/challenge", json={}, headers=APP).json()
    message = siwe_message(challenge, member.address)
    body = {"message": message, "signature": _sign(member, message)}
    assert env.http.post("/app/api/sign-in", json=body, headers=APP).status_code == 200
    again = env.http.post("/app/api/sign-in", json=body, headers=APP)
    assert again.status_code == 422 and again.json()["code"] == "sign-in-rejected"


def test_a_refused_sign_in_spends_its_nonce(env: ApiEnv) -> None:
    member = Account.create()
    challenge = env.http.post("/app/api/sign-in/challenge", json={}, headers=APP).json()
    message = siwe_message(challenge, member.address)
    wrong = env.http.post("/app/api/sign-in", json={
        "message": message, "signature": _sign(Account.create(), message)}, headers=APP)
    assert wrong.status_code == 422 and wrong.json()["code"] == "sign-in-rejected"
    # The right signature of the same message comes too late: its nonce is gone.
    late = env.http.post("/app/api/sign-in", json={"message": message,
                                                   "signature": _sign(member, message)},
                         headers=APP)
    assert late.status_code == 422 and late.json()["code"] == "sign-in-rejected"


def test_sign_in_refuses_a_nonce_the_service_never_gave(env: ApiEnv) -> None:
    r = sign_in(env, Account.create(), nonce="a" * 24)
    assert r.status_code == 422 and r.json()["code"] == "sign-in-rejected"


def test_sign_in_refuses_another_domain_chain_or_signer(env: ApiEnv) -> None:
    member = Account.create()
    r = sign_in(env, member, domain="evil.example")
    assert r.status_code == 422 and r.json()["code"] == "sign-in-rejected"
    r = sign_in(env, member, chain_id=1)
    assert r.status_code == 422 and r.json()["code"] == "wrong-chain"
    challenge = env.http.post("/app/api/sign-in/challenge", json={}, headers=APP).json()
    message = siwe_message(challenge, member.address)
    r = env.http.post("/app/api/sign-in", json={
        "message": message, "signature": _sign(Account.create(), message)}, headers=APP)
    assert r.status_code == 422 and r.json()["code"] == "sign-in-rejected"
    assert env.http.get("/app/api/session").status_code == 401


def test_sign_in_refuses_an_expired_nonce(env: ApiEnv) -> None:
    member = Account.create()
    challenge = env.http.post("/app/api/sign-in/challenge", json={}, headers=APP).json()
    with env.alliance.store.session() as s:
        s.execute(update(MemberLoginNonce).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    message = siwe_message(challenge, member.address)
    r = env.http.post("/app/api/sign-in", json={"message": message,
                                                "signature": _sign(member, message)},
                      headers=APP)
    assert r.status_code == 422 and r.json()["code"] == "sign-in-expired"


def test_sign_in_refuses_a_message_without_expiry_far_ahead(env: ApiEnv) -> None:
    r = sign_in(env, Account.create(), expires_in=timedelta(days=30))
    assert r.status_code == 422 and r.json()["code"] == "validation-error"


def test_without_a_session_the_member_routes_answer_401_session_expired(env: ApiEnv) -> None:
    r = env.http.get("/app/api/balances")
    assert r.status_code == 401 and r.json()["code"] == "session-expired"
    assert r.headers["content-type"].startswith("application/problem+json")


def test_changes_without_the_app_header_are_refused(env: ApiEnv) -> None:
    assert sign_in(env, Account.create()).status_code == 200
    r = env.http.delete("/app/api/session")
    assert r.status_code == 403 and r.json()["code"] == "app-header-missing"
    assert env.http.get("/app/api/session").status_code == 200


def test_logout_ends_the_session_on_the_server(env: ApiEnv) -> None:
    assert sign_in(env, Account.create()).status_code == 200
    token = env.http.cookies.get("alliance_member")
    assert env.http.delete("/app/api/session", headers=APP).status_code == 204
    env.http.cookies.set("alliance_member", token or "", path="/app")
    assert env.http.get("/app/api/session").status_code == 401


def _funded(env: ApiEnv, points: int) -> LocalAccount:
    member = Account.create()
    r = env.store.post("/v1/points/issue", {"member": member.address, "points": points,
                                            "order_id": f"F-{member.address[2:10]}"})
    assert env.store.wait_operation(r.json()["id"])["status"] == "confirmed"
    return member


def _pay_signed(env: ApiEnv, member: LocalAccount, request_id: str) -> dict[str, Any]:
    quote = env.http.post(f"/app/api/payment-requests/{request_id}/quote",
                          json={"program_merchant_id": env.store_merchant.merchant_id},
                          headers=APP)
    assert quote.status_code == 200, quote.text
    q = quote.json()
    sig = sign_redemption(member, program=env.store_merchant.program,
                          chain_id=env.alliance.gateway.chain_id,
                          registry=env.alliance.contracts.registry.address,
                          amount=q["points"], merchant_id=env.cafe_merchant.merchant_id,
                          order_id=q["order_id"], nonce=q["nonce"], deadline=q["deadline"])
    return {"program_merchant_id": env.store_merchant.merchant_id, "points": q["points"],
            "nonce": q["nonce"], "deadline": q["deadline"], "signature": sig}


def test_a_payment_request_is_paid_once_whatever_is_sent_again(env: ApiEnv) -> None:
    member = _funded(env, 1000)
    created = env.cafe.post("/v1/payment-requests", {"order_id": "CAFE-PR-1", "amount": 360})
    assert created.status_code == 201, created.text
    pr = created.json()
    assert pr["status"] == "open" and pr["link"] == f"/app?pay={pr['id']}"
    assert pr["url"] == f"http://testserver/app?pay={pr['id']}"  # for the till's QR code
    assert sign_in(env, member).status_code == 200
    body = _pay_signed(env, member, pr["id"])
    assert body["points"] == 360  # the store's rate is 1 fen a point
    first = env.http.post(f"/app/api/payment-requests/{pr['id']}/pay", json=body, headers=APP)
    assert first.status_code == 200, first.text
    assert first.json()["status"] in ("paying", "paid")
    # The answer was lost; the app sends again, and also a second signature: same payment.
    again = env.http.post(f"/app/api/payment-requests/{pr['id']}/pay", json=body, headers=APP)
    other = env.http.post(f"/app/api/payment-requests/{pr['id']}/pay",
                          json={**body, "nonce": body["nonce"] + 1}, headers=APP)
    assert again.json()["operation_id"] == other.json()["operation_id"] == \
        first.json()["operation_id"]
    assert env.cafe.wait_operation(first.json()["operation_id"])["status"] == "confirmed"
    seen = env.cafe.get(f"/v1/payment-requests/{pr['id']}").json()
    assert seen["status"] == "paid" and seen["points"] == 360
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.balance_of(member.address) == 640
    assert env.cafe.get("/v1/clearing/position").json()["net"] == 360
    # Another merchant cannot read the cafe's payment request.
    assert env.store.get(f"/v1/payment-requests/{pr['id']}").status_code == 404


def test_an_expired_payment_request_cannot_be_paid(env: ApiEnv) -> None:
    member = _funded(env, 100)
    pr = env.cafe.post("/v1/payment-requests", {"order_id": "CAFE-PR-2", "amount": 50}).json()
    assert sign_in(env, member).status_code == 200
    body = _pay_signed(env, member, pr["id"])
    with env.alliance.store.session() as s:
        s.execute(update(PaymentRequest).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    r = env.http.post(f"/app/api/payment-requests/{pr['id']}/pay", json=body, headers=APP)
    assert r.status_code == 422 and r.json()["code"] == "payment-request-expired"
    assert env.cafe.get(f"/v1/payment-requests/{pr['id']}").json()["status"] == "expired"


def test_one_order_has_one_payment_request(env: ApiEnv) -> None:
    assert env.cafe.post("/v1/payment-requests", {"order_id": "CAFE-PR-3",
                                                  "amount": 50}).status_code == 201
    r = env.cafe.post("/v1/payment-requests", {"order_id": "CAFE-PR-3", "amount": 50})
    assert r.status_code == 409 and r.json()["code"] == "payment-request-exists"


def test_convert_quote_spells_out_the_rounding(env: ApiEnv) -> None:
    member = _funded(env, 1001)
    assert sign_in(env, member).status_code == 200
    q = env.http.post("/app/api/convert/quote", json={
        "from_merchant_id": env.store_merchant.merchant_id,
        "to_merchant_id": env.cafe_merchant.merchant_id, "points": 1001}, headers=APP).json()
    # store 1 fen a point, cafe 2: 1001 store points make 500 cafe points, paid by 1000.
    assert (q["points"], q["points_spent"], q["min_out"], q["value"]) == (500, 1000, 500, 1000)
    assert q["typed_data"]["primaryType"] == "Convert"
    assert q["typed_data"]["message"]["toMerchantId"] == env.cafe_merchant.merchant_id


def test_a_signed_conversion_is_relayed_and_only_its_member_reads_it(env: ApiEnv) -> None:
    member = _funded(env, 1001)
    assert sign_in(env, member).status_code == 200
    req = {"from_merchant_id": env.store_merchant.merchant_id,
           "to_merchant_id": env.cafe_merchant.merchant_id, "points": 1001}
    q = env.http.post("/app/api/convert/quote", json=req, headers=APP).json()
    sig = sign_conversion(member, program=env.store_merchant.program,
                          registry=env.alliance.contracts.registry.address,
                          chain_id=env.alliance.gateway.chain_id, amount=1001,
                          to_merchant_id=env.cafe_merchant.merchant_id, min_out=q["min_out"],
                          order_id=q["order_id"], nonce=q["nonce"], deadline=q["deadline"])
    r = env.http.post("/app/api/convert", json={**req, "min_out": q["min_out"],
                                                "order_id": q["order_id"], "nonce": q["nonce"],
                                                "deadline": q["deadline"], "signature": sig},
                      headers=APP)
    assert r.status_code == 202, r.text
    op_id = r.json()["id"]
    assert env.cafe.wait_operation(op_id)["status"] == "confirmed"
    mine = env.http.get(f"/app/api/operations/{op_id}")
    assert mine.status_code == 200 and mine.json()["status"] == "confirmed"
    cafe = env.alliance.contracts.program(env.cafe_merchant.program)
    assert cafe.balance_of(member.address) == 500
    assert env.alliance.contracts.program(env.store_merchant.program).balance_of(
        member.address) == 1
    assert sign_in(env, Account.create()).status_code == 200  # someone else's session
    assert env.http.get(f"/app/api/operations/{op_id}").status_code == 404


def test_delete_my_data_removes_links_and_sessions_and_leaves_the_ledger(env: ApiEnv) -> None:
    member = _funded(env, 500)
    with env.alliance.store.session() as s:
        s.add(Member(pseudonym="p" * 64, account=Account.create().address,
                     wallet=member.address))
    assert sign_in(env, member).status_code == 200
    mine = env.http.get("/app/api/my-data")
    assert mine.status_code == 200
    assert "attachment" in mine.headers["content-disposition"]
    data = mine.json()
    assert data["address"] == member.address and len(data["member_id_links"]) == 1
    assert data["balances"][0]["balance"] == 500 or data["balances"][1]["balance"] == 500
    erased = env.http.delete("/app/api/my-data", headers=APP)
    assert erased.status_code == 200, erased.text
    assert erased.json()["wallet_links"] == 1 and erased.json()["sessions"] == 1
    assert env.http.get("/app/api/session").status_code == 401
    with env.alliance.store.read_session() as s:
        assert s.scalar(select(Member).where(Member.wallet == member.address)) is None
    program = env.alliance.contracts.program(env.store_merchant.program)
    assert program.balance_of(member.address) == 500
