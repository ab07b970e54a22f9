"""The member app (``/app``): one mobile page, its scripts and styles, and the front-end
libraries it uses, all served by the service (no CDN, no build step: the libraries are the
pinned npm packages' own browser files). And the merchant's side of paying with points:
``POST /v1/payment-requests`` makes the link / QR the member opens in the app.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Path as FastApiPath
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from ledger.members import consent, payments, presentations

from ..deps import AllianceDep, BodyDep, MerchantDep
from ..errors import ApiError
from ..idempotency import run_idempotent
from ..schemas.members import (
    ConsentRewardIn,
    ConsentRewardOut,
    CouponPresentationOut,
    CouponScanRequest,
    PaymentRequestCreate,
    PaymentRequestOut,
)
from .members import CouponCodePath, PaymentRequestIdPath, payment_out, presentation_out

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "api" / "app_static"
NODE_MODULES = ROOT / "node_modules"
# The front-end libraries, by the name the page asks for: pinned in package.json.
VENDOR = {
    "ethers.umd.min.js": NODE_MODULES / "ethers" / "dist" / "ethers.umd.min.js",
    "qrcode.js": NODE_MODULES / "qrcode-generator" / "dist" / "qrcode.js",
    "jsQR.js": NODE_MODULES / "jsqr" / "dist" / "jsQR.js",
}
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml",
         ".json": "application/json"}
# The page talks only to its own origin; no inline script; inline styles only as attributes
# set by the page's script (progress bars, QR sizes).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")

router = APIRouter(include_in_schema=False)
merchant_router = APIRouter(prefix="/v1/payment-requests", tags=["payment requests"])
coupon_code_router = APIRouter(prefix="/v1/coupon-codes", tags=["coupons"])
consent_router = APIRouter(prefix="/v1/consent-rewards", tags=["members"])
ConsentKindPath = Annotated[str, FastApiPath(pattern=r"^(birth_month|phone|history)$")]


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    etag: str
    media_type: str


_assets: dict[Path, Asset] = {}


def _asset(path: Path) -> Asset:
    """A static file read once, with its gzip form and ETag (files change only on deploy)."""
    found = _assets.get(path)
    if found is None:
        if not path.is_file():
            raise ApiError(404, "not-found", "no such file")
        body = path.read_bytes()
        found = Asset(body, gzip.compress(body, 9, mtime=0),
                      '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
                      TYPES.get(path.suffix, "application/octet-stream"))
        _assets[path] = found
    return found


def _serve(request: Request, path: Path, *, cache: str) -> Response:
    asset = _asset(path)
    headers = {"ETag": asset.etag, "Cache-Control": cache, "Vary": "Accept-Encoding",
               "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.get("/app", response_class=HTMLResponse)
def app_page(request: Request) -> Response:
    """The member app's one page (every screen is drawn by app.js)."""
    response = _serve(request, STATIC / "index.html", cache="no-cache")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/app/static/{name}")
def app_static(name: str, request: Request) -> Response:
    """The page's own scripts and styles (flat directory: no path walks out of it)."""
    if "/" in name or "\\" in name or name.startswith("."):
        raise ApiError(404, "not-found", "no such file")
    return _serve(request, STATIC / name, cache="no-cache")


@router.get("/app/vendor/{name}")
def app_vendor(name: str, request: Request) -> Response:
    """A pinned front-end library (only those listed in :data:`VENDOR`)."""
    path = VENDOR.get(name)
    if path is None:
        raise ApiError(404, "not-found", "no such library")
    return _serve(request, path, cache="public, max-age=86400")


@merchant_router.post("", status_code=201, response_model=PaymentRequestOut)
def create_payment_request(req: PaymentRequestCreate, request: Request, body: BodyDep,
                           alliance: AllianceDep, who: MerchantDep) -> Response:
    """A request to be paid with points for one of your orders: show ``link`` as a QR code
    at the till (or send it); the member opens it in the member app, picks which points pay,
    and signs. Paid once at most; ``GET`` it to see when it is paid."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        view = payments.create_payment_request(s, merchant_id=mid, order_id=req.order_id,
                                               amount=req.amount, ttl_s=req.ttl_s)
        return 201, _with_url(request, payment_out(view)).model_dump(mode="json")

    return run_idempotent(request, body, alliance, who, work)


@merchant_router.get("/{request_id}", response_model=PaymentRequestOut)
def get_payment_request(request_id: PaymentRequestIdPath, request: Request,
                        alliance: AllianceDep, who: MerchantDep) -> PaymentRequestOut:
    """One of your payment requests and where its payment is."""
    with alliance.store.read_session() as s:
        return _with_url(request, payment_out(payments.payment_request(
            s, request_id=request_id, merchant_id=who.merchant_id)))


def _with_url(request: Request, out: PaymentRequestOut) -> PaymentRequestOut:
    return out.model_copy(update={"url": str(request.base_url).rstrip("/") + out.link})


@coupon_code_router.post("/{code}/scan", response_model=CouponPresentationOut)
def scan_coupon_code(code: CouponCodePath, req: CouponScanRequest, request: Request,
                     body: BodyDep, alliance: AllianceDep, who: MerchantDep) -> Response:
    """The till scanned a member's coupon QR (``ALC-…``): bind it to this order of yours.
    The coupon is checked against the order (nothing is used); the member then confirms the
    discount in the app and signs; ``GET`` the code to see it ``used``. First merchant to
    scan takes the code: 409 ``coupon-code-taken`` for any other order; 422
    ``coupon-code-expired`` after five minutes unscanned."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        view = presentations.scan(alliance, s, merchant_id=mid, code=code,
                                  order_id=req.order_id, order_amount=req.order_amount)
        return 200, presentation_out(view).model_dump(mode="json")

    return run_idempotent(request, body, alliance, who, work)


@coupon_code_router.get("/{code}", response_model=CouponPresentationOut)
def get_coupon_code(code: CouponCodePath, alliance: AllianceDep,
                    who: MerchantDep) -> CouponPresentationOut:
    """A coupon code you scanned and where its redemption is (``used`` once on chain)."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return presentation_out(presentations.merchant_presentation(
            s, merchant_id=who.merchant_id, code=code))


@consent_router.post("/{kind}", response_model=ConsentRewardOut)
def set_consent_reward(kind: ConsentKindPath, req: ConsentRewardIn, request: Request,
                       body: BodyDep, alliance: AllianceDep, who: MerchantDep) -> Response:
    """Offer points of your program to a member who grants you this consent (``birth_month``,
    ``phone``, ``history``); paid once per member and kind, when the grant is on chain."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        return 200, consent.set_reward(s, merchant_id=mid, kind=kind, points=req.points)

    return run_idempotent(request, body, alliance, who, work)
