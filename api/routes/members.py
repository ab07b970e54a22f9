"""A member's points, read from the chain (balances) and the indexed events (history).

Scoped by who asks: a merchant sees its own program (balances, history) and what happened at
its store (other programs' points spent or converted there); the operator (and auditors, with
operator read credentials) sees everything. The member sees everything of its own through the
member app's session: ``app_router`` below, behind a Sign-In with Ethereum cookie."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from ledger.errors import ConsentRequiredError
from ledger.members import claims, consent, payments, presentations, privacy, scans, sessions
from ledger.points import reads as points
from ledger.types import MerchantId

from ..auth import Principal
from ..deps import AllianceDep, AnyPrincipalDep, BodyDep, MerchantDep
from ..errors import ApiError
from ..idempotency import run_idempotent
from ..schemas.common import AddressPath, Cursor, HistoryLimit, OperationIdPath
from ..schemas.members import (
    BalancesOut,
    ClaimOut,
    ClaimRequest,
    ConsentQuoteIn,
    ConsentSigned,
    ConvertQuoteRequest,
    CouponPresentationOut,
    CouponRedeemSigned,
    ErasedOut,
    HistoryOut,
    ItemClaimSigned,
    ItemCodeIn,
    LinkCodeOut,
    LinkCodeRequest,
    MemberConvertRequest,
    MemberOperationOut,
    MemberProfileOut,
    MyBalancesOut,
    PaymentRequestOut,
    PayQuoteRequest,
    PayRequest,
    ProfileIn,
    ProgramBalanceOut,
    ProgramValueOut,
    SessionOut,
    SignInChallengeOut,
    SignInRequest,
    SignRequestOut,
    VoucherClaimIn,
)
from .public import public_client

PaymentRequestIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{8,32}$")]
CouponCodePath = Annotated[str, Path(pattern=r"^ALC-[A-Za-z0-9_-]{16,40}$")]
CouponIdPath = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,77}$")]

router = APIRouter(prefix="/v1/members", tags=["members"])


def _scope(who: Principal) -> MerchantId | None:
    """The merchant whose view this is (None: the operator's, everything)."""
    return None if who.role == "admin" else who.merchant_id or MerchantId(-1)


@router.get("/{address}/balances", response_model=BalancesOut)
def balances(address: AddressPath, alliance: AllianceDep, who: AnyPrincipalDep) -> BalancesOut:
    """Per program: balance (what the Transfer logs say) = spendable + pending + expired not
    yet swept; pending orders' release times; lots with their expiry times; an unused nonce.
    In your own program (a merchant), or in every program (the operator)."""
    read = points.balances_at(alliance, member=address, merchant_id=_scope(who))
    return BalancesOut(member=address, programs=[
        ProgramBalanceOut.model_validate(asdict(b)) for b in read.programs],
        as_of_block=read.as_of_block)


@router.get("/{address}/history", response_model=HistoryOut)
def history(address: AddressPath, alliance: AllianceDep, who: AnyPrincipalDep,
            limit: HistoryLimit = 50,
            cursor: Cursor = None,
            scope: Literal["mine", "alliance"] = "mine") -> HistoryOut:
    """The member's point events, newest first; pass ``next_cursor`` for the next page.
    A merchant sees its own program's events and those at its store; ``scope=alliance``
    (the member's history at every merchant) only under the member's live on-chain consent
    ``history`` to you (else 403 ``consent-required``)."""
    merchant = _scope(who)
    if scope == "alliance" and merchant is not None:
        consent.require_consent(alliance, member=address, merchant_id=merchant, kind="history")
        merchant = None
    page = points.history_page(alliance, member=address, limit=limit, cursor=cursor,
                               merchant_id=merchant)
    return HistoryOut(member=address, events=page.events, next_cursor=page.next_cursor,
                      as_of_block=page.as_of_block)


@router.get("/{address}/profile", response_model=MemberProfileOut)
def member_profile(address: AddressPath, alliance: AllianceDep,
                   who: AnyPrincipalDep) -> MemberProfileOut:
    """The profile fields (birth month, phone) the member granted you, each under a live
    on-chain consent of its kind; none granted (or all revoked): 403 ``consent-required``."""
    if who.merchant_id is None:
        raise ConsentRequiredError("a member's profile is shared with merchants it consents "
                                   "to, not with the operator")
    with alliance.store.read_session() as s:
        return MemberProfileOut.model_validate(consent.merchant_profile(
            alliance, s, merchant_id=who.merchant_id, member=address))


@router.post("/link-codes", status_code=201, response_model=LinkCodeOut)
def create_link_code(req: LinkCodeRequest, request: Request, body: BodyDep,
                     alliance: AllianceDep, who: MerchantDep) -> Response:
    """A one-time code for a member id at your counter: the member enters it in the member
    app, signed in with a wallet, to move everything kept for the member id there. It works
    for 15 minutes, once; a new code ends the earlier unused ones (at most 5 an hour per
    member id: 429 ``link-codes-rate-limited``). 409 ``member-already-linked`` once the
    member id has a wallet."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        code = claims.issue_link_code(alliance, s, merchant_id=mid, member_id=req.member_id)
        return 201, LinkCodeOut(code=code.code,
                                expires_at=int(code.expires_at.timestamp())).model_dump()

    return run_idempotent(request, body, alliance, who, work)


# ---------------------------------------------------------------------- the member app
# The member's own routes, behind the session cookie the app gets by Sign-In with Ethereum.
# Not in the OpenAPI document (it describes the merchants' and operator's signed API); the
# README lists them. Every change (POST, DELETE) must carry ``X-Alliance-App: 1``: a
# cross-site form cannot set it and a cross-site script would need CORS, which is never
# granted; the cookie is SameSite=Strict as well.

SESSION_COOKIE = "alliance_member"
APP_HEADER = "x-alliance-app"
SIGN_IN_STATEMENT = "Sign in to the Alliance member app."

app_router = APIRouter(prefix="/app/api", tags=["member app"], include_in_schema=False)


def _host(request: Request) -> str:
    return request.headers.get("host") or request.url.netloc


def _require_app_header(request: Request) -> None:
    if request.method not in ("GET", "HEAD") and request.headers.get(APP_HEADER) != "1":
        raise ApiError(403, "app-header-missing", f"send {APP_HEADER}: 1 with every change")


def member_session(request: Request, alliance: AllianceDep) -> sessions.SessionView:
    """The signed-in member of the request's session cookie, or 401 ``session-expired``."""
    _require_app_header(request)
    with alliance.store.read_session() as s:
        view = sessions.current(s, request.cookies.get(SESSION_COOKIE))
    if view is None:
        raise ApiError(401, "session-expired", "your session has ended: sign in again",
                       {"WWW-Authenticate": 'Cookie realm="member-app"'})
    return view


MemberDep = Annotated[sessions.SessionView, Depends(member_session)]


@app_router.post("/sign-in/challenge", response_model=SignInChallengeOut,
                 dependencies=[Depends(public_client)])
def sign_in_challenge(request: Request, alliance: AllianceDep) -> SignInChallengeOut:
    """A fresh single-use nonce and what the SIWE message must name."""
    _require_app_header(request)
    with alliance.store.session() as s:
        challenge = sessions.new_challenge(s)
    host = _host(request)
    return SignInChallengeOut(nonce=challenge.nonce,
                              expires_at=int(challenge.expires_at.timestamp()), domain=host,
                              uri=f"{request.url.scheme}://{host}/app",
                              chain_id=alliance.gateway.chain_id, statement=SIGN_IN_STATEMENT)


@app_router.post("/sign-in", response_model=SessionOut, dependencies=[Depends(public_client)])
def sign_in(req: SignInRequest, request: Request, response: Response,
            alliance: AllianceDep) -> SessionOut:
    """Verify the signed SIWE message and set the session cookie (httpOnly, SameSite=Strict,
    Secure over TLS)."""
    _require_app_header(request)
    opened = sessions.sign_in(alliance.store, message=req.message, signature=req.signature,
                              domain=_host(request), chain_id=alliance.gateway.chain_id)
    max_age = max(1, int(opened.expires_at.timestamp() - time.time()))
    response.set_cookie(SESSION_COOKIE, opened.token, max_age=max_age, path="/app",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return SessionOut(address=opened.address, expires_at=int(opened.expires_at.timestamp()))


@app_router.delete("/session", status_code=204)
def sign_out(request: Request, alliance: AllianceDep) -> Response:
    """End the session (always 204) and clear the cookie."""
    _require_app_header(request)
    with alliance.store.session() as s:
        sessions.sign_out(s, request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/app", httponly=True, samesite="strict")
    return response


@app_router.get("/session", response_model=SessionOut)
def my_session(me: MemberDep) -> SessionOut:
    return SessionOut(address=me.address, expires_at=int(me.expires_at.timestamp()))


@app_router.get("/balances", response_model=MyBalancesOut)
def my_balances(me: MemberDep, alliance: AllianceDep) -> MyBalancesOut:
    """Every program's points of the member, with their value in settlement units."""
    read = points.balances_at(alliance, member=me.address, merchant_id=None)
    registry = alliance.contracts.registry
    programs = []
    for b in read.programs:
        rate = registry.rate_of(b.merchant_id)
        data = {k: v for k, v in asdict(b).items() if k not in ("program", "next_nonce")}
        programs.append(ProgramValueOut.model_validate(
            {**data, "rate": rate, "value": b.spendable * rate}))
    return MyBalancesOut(member=me.address,
                         settlement_unit=alliance.contracts.deployment.settlement_unit,
                         programs=programs, total_value=sum(p.value for p in programs),
                         as_of_block=read.as_of_block)


@app_router.get("/history", response_model=HistoryOut)
def my_history(me: MemberDep, alliance: AllianceDep, limit: HistoryLimit = 50,
               cursor: Cursor = None) -> HistoryOut:
    page = points.history_page(alliance, member=me.address, limit=limit, cursor=cursor)
    return HistoryOut(member=me.address, events=page.events, next_cursor=page.next_cursor,
                      as_of_block=page.as_of_block)


@app_router.get("/payment-requests/{request_id}", response_model=PaymentRequestOut)
def payment_request(request_id: PaymentRequestIdPath, me: MemberDep,
                    alliance: AllianceDep) -> PaymentRequestOut:
    with alliance.store.read_session() as s:
        return payment_out(payments.payment_request(s, request_id=request_id))


@app_router.post("/payment-requests/{request_id}/quote", response_model=SignRequestOut)
def quote_payment(request_id: PaymentRequestIdPath, req: PayQuoteRequest, me: MemberDep,
                  alliance: AllianceDep) -> SignRequestOut:
    """What to sign to pay the request with one program's points (and what it costs)."""
    with alliance.store.read_session() as s:
        quote = payments.quote_payment(alliance, s, request_id=request_id, member=me.address,
                                       program_merchant_id=req.program_merchant_id)
    return SignRequestOut.model_validate(asdict(quote))


@app_router.post("/payment-requests/{request_id}/pay", response_model=PaymentRequestOut)
def pay(request_id: PaymentRequestIdPath, req: PayRequest, me: MemberDep,
        alliance: AllianceDep) -> PaymentRequestOut:
    """Queue the signed payment, once per request: asking again answers with the same
    payment (the request is its own idempotency key)."""
    with alliance.store.session() as s:
        view = payments.pay(alliance, s, request_id=request_id, member=me.address,
                            program_merchant_id=req.program_merchant_id,
                            points_signed=req.points, nonce=req.nonce, deadline=req.deadline,
                            signature=req.signature)
    return payment_out(view)


@app_router.post("/convert/quote", response_model=SignRequestOut)
def quote_convert(req: ConvertQuoteRequest, me: MemberDep,
                  alliance: AllianceDep) -> SignRequestOut:
    """What to sign to convert points, with the rate's rounding spelled out."""
    with alliance.store.read_session() as s:
        quote = payments.quote_convert(alliance, s, member=me.address,
                                       from_merchant_id=req.from_merchant_id,
                                       to_merchant_id=req.to_merchant_id, points_in=req.points)
    return SignRequestOut.model_validate(asdict(quote))


@app_router.post("/convert", response_model=MemberOperationOut, status_code=202)
def convert(req: MemberConvertRequest, me: MemberDep, alliance: AllianceDep
            ) -> MemberOperationOut:
    with alliance.store.session() as s:
        op_id = payments.convert(alliance, s, member=me.address,
                                 from_merchant_id=req.from_merchant_id,
                                 to_merchant_id=req.to_merchant_id, points_in=req.points,
                                 min_out=req.min_out, order_id=req.order_id, nonce=req.nonce,
                                 deadline=req.deadline, signature=req.signature)
        return MemberOperationOut.model_validate(
            asdict(payments.member_operation(s, operation_id=op_id, member=me.address)))


def _claim_out(view: claims.ClaimView) -> ClaimOut:
    return ClaimOut.model_validate(asdict(view))


@app_router.post("/claims", response_model=ClaimOut, status_code=202)
def claim(req: ClaimRequest, me: MemberDep, alliance: AllianceDep) -> ClaimOut:
    """Claim what was kept for a member id with the counter's link code: links it to this
    wallet and moves its points here (the same code again: the same claim)."""
    with alliance.store.session() as s:
        return _claim_out(claims.claim(alliance, s, code=req.code, wallet=me.address))


@app_router.get("/claims", response_model=ClaimOut)
def my_claim(me: MemberDep, alliance: AllianceDep) -> ClaimOut:
    with alliance.store.session() as s:
        return _claim_out(claims.claim_status(s, wallet=me.address))


@app_router.post("/claims/retry", response_model=ClaimOut, status_code=202)
def retry_claim(me: MemberDep, alliance: AllianceDep) -> ClaimOut:
    """Send again every move of this wallet's claim that failed."""
    with alliance.store.session() as s:
        return _claim_out(claims.retry_claim(alliance, s, wallet=me.address))


@app_router.get("/operations/{operation_id}", response_model=MemberOperationOut)
def my_operation(operation_id: OperationIdPath, me: MemberDep,
                 alliance: AllianceDep) -> MemberOperationOut:
    with alliance.store.read_session() as s:
        return MemberOperationOut.model_validate(
            asdict(payments.member_operation(s, operation_id=operation_id, member=me.address)))


@app_router.get("/my-data")
def my_data(me: MemberDep, alliance: AllianceDep) -> JSONResponse:
    """Everything the service keeps about the member off chain, with the member's balances
    and history as the chain has them, as a JSON download."""
    with alliance.store.read_session() as s:
        data = privacy.export(s, address=me.address)
    data["balances"] = [asdict(b) for b in points.balances_at(
        alliance, member=me.address, merchant_id=None).programs]
    data["history"] = points.history_page(alliance, member=me.address, limit=200).events
    return JSONResponse(jsonable_encoder(data), headers={
        "Content-Disposition": 'attachment; filename="my-alliance-data.json"'})


@app_router.delete("/my-data", response_model=ErasedOut)
def erase_my_data(me: MemberDep, alliance: AllianceDep, response: Response) -> ErasedOut:
    """Remove the member's off-chain personal records and sign out; the ledger is intact."""
    with alliance.store.session() as s:
        erased = privacy.erase(s, address=me.address)
    response.delete_cookie(SESSION_COOKIE, path="/app", httponly=True, samesite="strict")
    return ErasedOut.model_validate(asdict(erased))


# ---------------------------------------------------------------------- coupons


@app_router.get("/coupons")
def my_coupons(me: MemberDep, alliance: AllianceDep) -> dict[str, object]:
    """The member's coupons: valid first (soonest to expire first), then used, expired."""
    with alliance.store.read_session() as s:
        return {"coupons": presentations.my_coupons(alliance, s, holder=me.address)}


@app_router.post("/coupons/{coupon_id}/present", response_model=CouponPresentationOut,
                 status_code=201)
def present_coupon(coupon_id: CouponIdPath, me: MemberDep,
                   alliance: AllianceDep) -> CouponPresentationOut:
    """A fresh one-time code of a valid coupon of the member's, for the till to scan."""
    with alliance.store.session() as s:
        return presentation_out(presentations.present(alliance, s, holder=me.address,
                                                      coupon_id=coupon_id))


@app_router.get("/coupon-codes/{code}", response_model=CouponPresentationOut)
def my_coupon_code(code: CouponCodePath, me: MemberDep,
                   alliance: AllianceDep) -> CouponPresentationOut:
    """Where one of the member's coupon codes is (shown, scanned: confirm, used …)."""
    with alliance.store.read_session() as s:
        return presentation_out(presentations.member_presentation(s, holder=me.address,
                                                                  code=code))


@app_router.post("/coupon-codes/{code}/quote", response_model=SignRequestOut)
def quote_coupon(code: CouponCodePath, me: MemberDep, alliance: AllianceDep) -> SignRequestOut:
    """What to sign to use the coupon on the order the till scanned it for."""
    with alliance.store.read_session() as s:
        quote = presentations.quote(alliance, s, holder=me.address, code=code)
    return SignRequestOut.model_validate(asdict(quote))


@app_router.post("/coupon-codes/{code}/redeem", response_model=CouponPresentationOut)
def redeem_coupon(code: CouponCodePath, req: CouponRedeemSigned, me: MemberDep,
                  alliance: AllianceDep) -> CouponPresentationOut:
    """Queue the member's signed redemption, once (asking again answers the same)."""
    with alliance.store.session() as s:
        return presentation_out(presentations.redeem(
            alliance, s, holder=me.address, code=code, nonce=req.nonce,
            deadline=req.deadline, signature=req.signature))


@app_router.post("/vouchers/claim", response_model=MemberOperationOut, status_code=202)
def claim_voucher(req: VoucherClaimIn, me: MemberDep, alliance: AllianceDep
                  ) -> MemberOperationOut:
    """Claim a merchant's voucher (its link or code) into the member's wallet."""
    with alliance.store.session() as s:
        op_id = presentations.claim_voucher(alliance, s, holder=me.address, code=req.code)
        return MemberOperationOut.model_validate(asdict(presentations.voucher_claim(
            s, holder=me.address, operation_id=op_id)))


@app_router.get("/vouchers/claims/{operation_id}", response_model=MemberOperationOut)
def voucher_claim(operation_id: OperationIdPath, me: MemberDep,
                  alliance: AllianceDep) -> MemberOperationOut:
    with alliance.store.read_session() as s:
        return MemberOperationOut.model_validate(asdict(presentations.voucher_claim(
            s, holder=me.address, operation_id=operation_id)))


# ---------------------------------------------------------------------- items (scan a product)


@app_router.post("/items/verify")
def verify_item(req: ItemCodeIn, me: MemberDep, alliance: AllianceDep) -> dict[str, Any]:
    """Is this product genuine (history, recall), and can the member claim its points."""
    with alliance.store.session() as s:
        return scans.verify(s, code=req.code)


@app_router.post("/items/claim/quote", response_model=SignRequestOut)
def quote_item_claim(req: ItemCodeIn, me: MemberDep, alliance: AllianceDep) -> SignRequestOut:
    """What to sign to claim the item's points (``points``: what the brand pays)."""
    with alliance.store.read_session() as s:
        quote = scans.quote_claim(alliance, s, member=me.address, code=req.code)
    return SignRequestOut.model_validate(asdict(quote))


@app_router.post("/items/claim", response_model=MemberOperationOut, status_code=202)
def claim_item(req: ItemClaimSigned, me: MemberDep, alliance: AllianceDep
               ) -> MemberOperationOut:
    """Queue the member's signed claim (the brand relays it); poll ``/operations/{id}``."""
    op_id = scans.claim(alliance, member=me.address, code=req.code, nonce=req.nonce,
                        deadline=req.deadline, signature=req.signature)
    with alliance.store.read_session() as s:
        return MemberOperationOut.model_validate(
            asdict(payments.member_operation(s, operation_id=op_id, member=me.address)))


@app_router.get("/items")
def my_items(me: MemberDep, alliance: AllianceDep) -> dict[str, Any]:
    """The items the member claimed, with recall notices."""
    with alliance.store.read_session() as s:
        return {"items": scans.my_items(s, member=me.address)}


# ---------------------------------------------------------------------- consent, profile


@app_router.get("/consents")
def my_consents(me: MemberDep, alliance: AllianceDep) -> dict[str, Any]:
    """Every merchant and consent kind, live or not (from the chain), with the texts."""
    with alliance.store.read_session() as s:
        return {"consents": consent.consents_of(alliance, s, member=me.address)}


@app_router.post("/consents/quote", response_model=SignRequestOut)
def quote_consent(req: ConsentQuoteIn, me: MemberDep, alliance: AllianceDep) -> SignRequestOut:
    """What to sign to grant (or revoke) a consent."""
    with alliance.store.read_session() as s:
        q = consent.quote(alliance, s, grant=req.grant, member=me.address,
                          merchant_id=req.merchant_id, kind=req.kind)
    return SignRequestOut.model_validate(asdict(q))


@app_router.post("/consents", response_model=MemberOperationOut, status_code=202)
def submit_consent(req: ConsentSigned, me: MemberDep, alliance: AllianceDep
                   ) -> MemberOperationOut:
    """Queue the member's signed grant (or revocation), relayed by the merchant it names;
    poll ``/operations/{id}``."""
    with alliance.store.session() as s:
        op_id = consent.submit(alliance, s, grant=req.grant, member=me.address,
                               merchant_id=req.merchant_id, kind=req.kind, nonce=req.nonce,
                               deadline=req.deadline, signature=req.signature)
        return MemberOperationOut.model_validate(
            asdict(payments.member_operation(s, operation_id=op_id, member=me.address)))


@app_router.get("/profile")
def my_profile(me: MemberDep, alliance: AllianceDep) -> dict[str, Any]:
    with alliance.store.read_session() as s:
        return consent.profile(s, member=me.address)


@app_router.put("/profile")
def set_my_profile(req: ProfileIn, me: MemberDep, alliance: AllianceDep) -> dict[str, Any]:
    """Keep (or clear) the member's birth month and phone; merchants see them only under the
    member's consent."""
    with alliance.store.session() as s:
        return consent.set_profile(s, member=me.address, birth_month=req.birth_month,
                                   phone=req.phone)


def presentation_out(view: presentations.PresentationView) -> CouponPresentationOut:
    return CouponPresentationOut.model_validate(asdict(view))


def payment_out(view: payments.PaymentRequestView) -> PaymentRequestOut:
    return PaymentRequestOut.model_validate({**asdict(view), "link": f"/app?pay={view.id}"})
