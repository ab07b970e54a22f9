"""Bodies and answers of the items routes (issue 11)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger import limits

from .common import Address, Nonce, OperationOut, Signature, Strict, UnixTime

Gtin = Annotated[str, Field(pattern=r"^[0-9]{8,14}$", examples=["09506000134352"])]
Serial = Annotated[str, Field(pattern=r"^[0-9A-Za-z\-._]{1,20}$", examples=["JT00001"])]
Code = Annotated[str, Field(min_length=10, max_length=300, examples=[
    "https://id.alliance.example/01/09506000134352/21/JT00001?s=q2Wc0v8mB1m2n3b4v5c6xA"])]
LocationLabel = Annotated[str, Field(min_length=1, max_length=128,
                                     examples=["urn:epc:id:sgln:9506000.13435.0"])]
# CBV 2.0 names (snake case), as patterns: every string a body carries is bounded.
BizStepName = Annotated[str, Field(
    pattern=r"^(commissioning|shipping|receiving|retail_selling|returning|recalling|"
            r"destroying)$", examples=["shipping"])]
DispositionName = Annotated[str, Field(
    pattern=r"^(active|in_transit|in_progress|sellable_accessible|retail_sold|returned|"
            r"recalled|destroyed)$", examples=["in_transit"])]


class ProductRequest(Strict):
    """Register one of your products (you need the brand role)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"gtin": "09506000134352", "name": "Jade tea set", "claim_points": 10}]})

    gtin: Gtin
    name: str = Field(min_length=1, max_length=128)
    claim_points: int = Field(default=0, strict=True, ge=0, le=limits.MAX_POINTS,
                              description="points a buyer earns by claiming one item")


class LocationsRequest(Strict):
    """Register your locations (GLN URIs or store ids): events are recorded at them."""

    locations: list[LocationLabel] = Field(min_length=1, max_length=256)


class BatchRequest(Strict):
    """A production batch: ``serials``, or ``count`` serials ``<prefix><n>``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"gtin": "09506000134352", "count": 1000, "prefix": "JT"}]})

    gtin: Gtin
    serials: list[Serial] | None = Field(default=None, max_length=100_000)
    count: int | None = Field(default=None, strict=True, ge=1, le=100_000)
    prefix: str = Field(default="", pattern=r"^[0-9A-Za-z\-._]{0,10}$")


class BatchOut(BaseModel):
    batch_id: int
    gtin: str
    count: int
    root: str
    operation: OperationOut


class EventIn(Strict):
    code: Code
    biz_step: BizStepName
    location: LocationLabel
    destination: LocationLabel | None = None
    disposition: DispositionName | None = None
    event_time: UnixTime | None = None


class EventsRequest(Strict):
    """Custody events (EPCIS 2.0 bizSteps), each at one of your locations."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"events": [{"code": "https://id.alliance.example/01/09506000134352/21/JT00001",
                     "biz_step": "shipping", "location": "urn:epc:id:sgln:9506000.13435.0",
                     "destination": "store:gpds:1"}]}]})

    events: list[EventIn] = Field(min_length=1, max_length=256)


class RecallRequest(Strict):
    """Recall whole batches and single items, in one transaction."""

    batch_ids: list[Annotated[int, Field(strict=True, ge=1, le=limits.MAX_ID)]] = Field(
        default_factory=list, max_length=256)
    codes: list[Code] = Field(default_factory=list, max_length=256)
    reason: str = Field(default="", max_length=500, examples=["Battery may overheat"],
                        description="why (English); shown on verify, the scan page and the "
                                    "member app")
    reason_zh: str | None = Field(default=None, max_length=500, examples=["电池可能过热"],
                                  description="why, in Chinese (else the English text)")


class ClaimRequest(Strict):
    """A buyer's claim: the scanned code (with its label secret) and the buyer's EIP-712
    ``Claim(address member,bytes32 itemId,uint256 nonce,uint256 deadline)`` signature in the
    ItemRegistry's domain ("Alliance Items", "1", salt = the registry)."""

    code: Code
    member: Address
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class HistoryEntry(BaseModel):
    kind: str
    merchant_id: int | None
    location: str | None
    destination: str | None
    disposition: str | None
    event_time: int | None
    event_hash: str | None
    member: str | None
    reason: str | None
    tx_hash: str
    block_number: int
    at: int


class VerifyOut(BaseModel):
    """genuine (with history), unknown, or suspicious (with reasons), in zh-CN and en."""

    verdict: Literal["genuine", "unknown", "suspicious"]
    reasons: list[str]
    gtin: str | None
    serial: str | None
    product: str | None
    status: str | None
    recalled: bool
    recall_reason: dict[str, str] | None = Field(
        default=None, description="the brand's reason of the recall, by language (en, zh-CN)")
    claimed: bool
    history: list[HistoryEntry]
    message: dict[str, str]


class MemberItem(BaseModel):
    """An item the member claimed, and whether it is recalled (and why)."""

    gtin: str
    serial: str
    product: str | None
    claimed_at: int | None
    status: str
    recalled: bool
    recall_reason: dict[str, str] | None


class MemberItemsOut(BaseModel):
    member: str
    items: list[MemberItem]


class HistoryOut(BaseModel):
    events: list[HistoryEntry]
