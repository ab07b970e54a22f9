"""Items (issue 11): products, locations, batches and their labels, custody events, recall,
claims (scan to earn), item history (JSON and EPCIS 2.0), and the public verify endpoint.

Writes queue outbox operations (202). Verify is public (no credentials, rate-limited per
client address) and reads only the store's read model: no chain call per scan."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.orm import Session

from ledger.errors import LedgerNotFoundError
from ledger.items import service as items
from ledger.items.codes import DEFAULT_RESOLVER

from ..deps import AllianceDep, BodyDep, MerchantDep
from ..idempotency import run_idempotent
from ..schemas.common import OperationOut, OperationsOut
from ..schemas.items import (
    BatchOut,
    BatchRequest,
    ClaimRequest,
    EventsRequest,
    HistoryOut,
    LocationsRequest,
    MemberItemsOut,
    ProductRequest,
    RecallRequest,
    Serial,
    VerifyOut,
)
from .members import MemberDep
from .points import ACCEPTED, operation_out, queue
from .public import TOO_MANY, public_client

router = APIRouter(prefix="/v1/items", tags=["items"])
public_router = APIRouter(prefix="/v1/public/items", tags=["public"],
                          dependencies=[Depends(public_client)])

CodeQuery = Annotated[str, Query(min_length=10, max_length=300)]
BatchIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
# A batch of 100,000 serials is a body of ~2.5 MB.
BATCH_MAX_BODY = 4 * 1024 * 1024


@router.post("/products", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def register_product(req: ProductRequest, request: Request, body: BodyDep,
                     alliance: AllianceDep, who: MerchantDep) -> Response:
    """Register a product (GTIN, check digit validated) of yours; you need the brand role."""
    return queue(request, body, alliance, who, lambda s, mid: items.register_product(
        alliance, s, merchant_id=mid, gtin=req.gtin, name=req.name,
        claim_points=req.claim_points))


@router.post("/locations", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def register_locations(req: LocationsRequest, request: Request, body: BodyDep,
                       alliance: AllianceDep, who: MerchantDep) -> Response:
    """Register your locations; each goes on chain as keccak256 of its GLN URI or id."""
    return queue(request, body, alliance, who, lambda s, mid: items.register_locations(
        alliance, s, merchant_id=mid, labels=req.locations))


@router.post("/batches", status_code=202, response_model=BatchOut,
             responses={202: {"model": BatchOut, "description": "queued"}},
             max_body_size=BATCH_MAX_BODY)
def register_batch(req: BatchRequest, request: Request, body: BodyDep, alliance: AllianceDep,
                   who: MerchantDep) -> Response:
    """Register a production batch as one Merkle root (one transaction for up to 100,000
    serials). Labels: ``GET /v1/items/batches/{id}/labels``."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        b = items.register_batch(alliance, s, merchant_id=mid, gtin=req.gtin,
                                 serials=req.serials, count=req.count, prefix=req.prefix)
        return 202, {"batch_id": b.batch_id, "gtin": b.gtin, "count": b.count,
                     "root": b.root, "operation": operation_out(b.operation)}

    return run_idempotent(request, body, alliance, who, work)


@router.get("/batches/{batch_id}/labels",
            responses={200: {"content": {"application/json": {}, "text/csv": {}},
                             "description": "every label's GTIN, serial and URI"}})
def batch_labels(batch_id: BatchIdPath, alliance: AllianceDep, who: MerchantDep,
                 format: Literal["json", "csv"] = "json",  # noqa: A002 - the query's name
                 resolver: Annotated[str, Query(pattern=r"^[a-z0-9.\-]{3,100}$")] =
                 DEFAULT_RESOLVER) -> Response:
    """The batch's labels (with their secrets): JSON or CSV for the printer. Brand only."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        codes = items.batch_labels(alliance, s, merchant_id=who.merchant_id,
                                   batch_id=batch_id)
    if format == "csv":
        return Response(items.labels_csv(codes, resolver), media_type="text/csv")
    return Response(json.dumps({"labels": [{"gtin": f"{c.gtin:014d}", "serial": c.serial,
                                            "uri": c.uri(resolver)} for c in codes]}),
                    media_type="application/json")


@router.get("/batches/{batch_id}/labels/{serial}",
            responses={200: {"content": {"image/png": {}, "image/svg+xml": {}},
                             "description": "the label's QR code"}})
def label_image(batch_id: BatchIdPath, serial: Serial, alliance: AllianceDep, who: MerchantDep,
                format: Literal["png", "svg"] = "png",  # noqa: A002 - the query's name
                ) -> Response:
    """One label's QR code (GS1 Digital Link URI with its secret), PNG or SVG. Brand only."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        codes = items.batch_labels(alliance, s, merchant_id=who.merchant_id,
                                   batch_id=batch_id)
    code = next((c for c in codes if c.serial == serial), None)
    if code is None:
        raise LedgerNotFoundError("no such label")
    media = "image/png" if format == "png" else "image/svg+xml"
    return Response(items.label_image(code, DEFAULT_RESOLVER, kind=format), media_type=media)


@router.post("/events", status_code=202, response_model=OperationsOut,
             responses={202: {"model": OperationsOut, "description": "queued"}},
             max_body_size=1024 * 1024)
def record_events(req: EventsRequest, request: Request, body: BodyDep, alliance: AllianceDep,
                  who: MerchantDep) -> Response:
    """Record custody events (one or many; queued events share transactions). Commissioning
    activates an item with its Merkle proof."""
    lines = [items.EventLine(e.code, e.biz_step, e.location, e.destination, e.disposition,
                             e.event_time) for e in req.events]
    return queue(request, body, alliance, who, lambda s, mid: items.record_events(
        alliance, s, merchant_id=mid, lines=lines))


@router.post("/recall", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def recall(req: RecallRequest, request: Request, body: BodyDep, alliance: AllianceDep,
           who: MerchantDep) -> Response:
    """Recall batches and single items of yours, in one transaction."""
    return queue(request, body, alliance, who, lambda s, mid: items.recall(
        alliance, s, merchant_id=mid, batch_ids=req.batch_ids, codes=req.codes,
        reason=req.reason, reason_zh=req.reason_zh))


@router.post("/claim", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def claim(req: ClaimRequest, request: Request, body: BodyDep, alliance: AllianceDep,
          who: MerchantDep) -> Response:
    """Relay a buyer's signed claim of a sold item (scan to earn): once it lands, the brand's
    points are issued to the buyer under an order id derived from the serial (never twice).
    A second claim of an item is 409 ``ItemAlreadyClaimed`` and flags it as a possible clone."""
    def work(s: Session | None) -> tuple[int, Any]:
        view = items.claim(alliance, code=req.code, member=req.member, nonce=req.nonce,
                           deadline=req.deadline, signature=req.signature)
        return 202, operation_out(view)

    return run_idempotent(request, body, alliance, who, work, in_transaction=False)


@router.get("/history", response_model=HistoryOut,
            responses={200: {"content": {"application/json": {}, "application/ld+json": {}},
                             "description": "history, or an EPCIS 2.0 document"}})
def history(code: CodeQuery, alliance: AllianceDep, who: MerchantDep,
            format: Literal["json", "epcis"] = "json",  # noqa: A002 - the query's name
            ) -> Any:
    """An item's history from the read model; ``format=epcis``: an EPCIS 2.0 JSON-LD
    document of its custody events (whose event hashes the chain carries)."""
    with alliance.store.read_session() as s:
        if format == "epcis":
                    return Response(json.dumps(items.epcis_export(s, code=code)),
                            media_type="application/ld+json")
        return HistoryOut.model_validate({"events": items.item_history(s, code=code)})


# The signed-in member's own items (the member app's session cookie, path /app): at
# /app/api/items where the browser sends the cookie, and at /v1/items/mine for clients that
# send it themselves.
member_router = APIRouter(include_in_schema=False)


def _member_items(me: MemberDep, alliance: AllianceDep) -> MemberItemsOut:
    with alliance.store.read_session() as s:
        rows = items.member_items(alliance, s, holder=me.address)
    return MemberItemsOut.model_validate({"member": me.address, "items": rows})


@member_router.get("/v1/items/mine", response_model=MemberItemsOut)
def my_items_v1(me: MemberDep, alliance: AllianceDep) -> MemberItemsOut:
    """The items you claimed, with their recall state and reason (en, zh-CN)."""
    return _member_items(me, alliance)


@public_router.get("/verify", response_model=VerifyOut, responses=TOO_MANY)
def verify(code: CodeQuery, alliance: AllianceDep,
           lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
           lon: Annotated[float | None, Query(ge=-180, le=180)] = None) -> VerifyOut:
    """No login: genuine (with its history), unknown, or suspicious with the reason, in
    Chinese and English. Read from the store only; the scan is kept for clone detection."""
    # Read only: the scan (and a clone flag) goes to the store's scan buffer, written in
    # batches (see ledger.items.scans), so no request waits for a commit of its own.
    with alliance.store.read_session() as s:
        v = items.verify(s, code=code, lat=lat, lon=lon,
                         scans=items.scan_buffer(alliance.store))
    return VerifyOut.model_validate(asdict(v))


# The GS1 Digital Link path itself: a label's URI, resolved by this service, opens the public
# scan page (HTML; not part of the JSON API's document).
scan_router = APIRouter(tags=["public"], dependencies=[Depends(public_client)],
                        include_in_schema=False)


@scan_router.get("/01/{gtin}/21/{serial}")
def scan_page(gtin: Annotated[str, Path(pattern=r"^[0-9]{8,14}$")], serial: Serial,
              request: Request, alliance: AllianceDep,
              s: Annotated[str | None, Query(pattern=r"^[0-9A-Za-z\-_]{22}$")] = None
              ) -> Response:
    """The public scan page: the verdict, its reason in Chinese and English, and the
    history, from the read model."""
    code = f"https://{request.url.hostname or 'scan'}/01/{gtin}/21/{serial}"
    if s is not None:
        code += f"?s={s}"
    with alliance.store.read_session() as session:
        v = items.verify(session, code=code, scans=items.scan_buffer(alliance.store))
    rows = "".join(
        f"<li>{html.escape(h['kind'])} — {html.escape(str(h['disposition'] or ''))} "
        f"(block {h['block_number']})</li>" for h in v.history)
    page = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(v.verdict)}</title></head><body>"
        f"<h1 class='verdict {html.escape(v.verdict)}'>{html.escape(v.message['zh-CN'])}</h1>"
        f"<p lang='en'>{html.escape(v.message['en'])}</p>"
        f"<p>{html.escape(v.product or '')} · GTIN {html.escape(v.gtin or '')} · "
        f"{html.escape(v.serial or '')}</p><ol>{rows}</ol></body></html>")
    return Response(page, media_type="text/html; charset=utf-8")
