"""Points reads: a member's balances (from the chain's views), history (from the indexed read
model), and what a wallet needs to sign (programs, domains, free nonces).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy.orm import Session

from .. import limits, signing
from ..alliance import Alliance
from ..indexer import repos as cursors
from ..limits import address as _address
from ..merchants import repos as merchant_repos
from ..merchants.service import program_of, require_merchant
from ..types import MerchantId
from . import repos as point_repos
from .clients import PointProgramClient
from .projection import CURSOR
from .service import MAX_DEADLINE_AHEAD_S, nonce_used


@dataclass(frozen=True)
class Lot:
    """Points of one earn period a member holds, and when they expire (None: never)."""

    period: int
    points: int
    expires_at: int | None


@dataclass(frozen=True)
class Release:
    """Pending points of one order and when they become spendable."""

    order_ref: str | None
    points: int
    release_at: int


@dataclass(frozen=True)
class ProgramBalance:
    """A member's points in one program: ``balance`` (ERC-20 ``balanceOf``, what the Transfer
    logs say) = ``spendable`` + ``pending`` + ``expired`` (expired, not swept yet)."""

    merchant_id: MerchantId
    merchant_name: str
    program: str
    symbol: str
    balance: int
    spendable: int
    pending: int
    expired: int
    releases: list[Release]
    lots: list[Lot]
    next_nonce: int


@dataclass(frozen=True)
class Balances:
    """A member's points in every program, all read at one block (``as_of_block``)."""

    as_of_block: int
    programs: list[ProgramBalance]


@dataclass(frozen=True)
class HistoryPage:
    """A page of a member's history, newest first, as of the block the read model reflects
    (``as_of_block``; None: nothing indexed yet); ``next_cursor`` continues below it."""

    as_of_block: int | None
    events: list[dict[str, Any]]
    next_cursor: int | None


def balances(alliance: Alliance, *, member: str,
             merchant_id: MerchantId | None = None) -> list[ProgramBalance]:
    """The member's points in every program (see :func:`balances_at`)."""
    return balances_at(alliance, member=member, merchant_id=merchant_id).programs


def balances_at(alliance: Alliance, *, member: str,
                merchant_id: MerchantId | None = None) -> Balances:
    """The member's points in every program (with ``merchant_id``: in that merchant's program
    only), read from the chain's views at one block (spendable, pending, expired not yet
    swept, lots with their expiry times), with pending orders' release times from the read
    model (net of reversals)."""
    address = _address(member)
    head = alliance.gateway.block("latest")
    block, now = int(head["number"]), int(head["timestamp"])
    with alliance.store.read_session() as s:
        merchants = [(m.id, m.name, m.program_address) for m in merchant_repos.list_merchants(s)
                     if m.program_address and merchant_id in (None, m.id)]
        pending = point_repos.pending_issues(s, member=address, now=now)
        reversals = _reversals(s, [(p.program, p.order_ref) for p in pending])
    out = []
    for mid, name, program in merchants:
        assert program is not None
        client = alliance.contracts.program(program)
        releases = []
        for p in pending:
            taken = reversals.get((p.program, p.order_ref or ""), [])
            left = p.amount - sum(x for _, x in taken)
            if p.program == program and left > 0:
                releases.append(Release(p.order_ref, left, p.release_at))
        out.append(ProgramBalance(
            merchant_id=MerchantId(mid), merchant_name=name, program=program,
            symbol=client.symbol(),
            balance=client.balance_of(address, block=block),
            spendable=client.spendable_of(address, block=block),
            pending=client.pending_of(address, block=block),
            expired=client.expired_of(address, block=block),
            releases=releases,
            lots=[Lot(period, points, expiry_of(alliance, program=program, period=period))
                  for period, points in client.lots_of(address, block=block)],
            next_nonce=client.free_nonce(address, block=block)))
    return Balances(block, out)


# What a member's history says of each kind of event (README "Member history").
HISTORY_KINDS = {
    "issued": "points credited for a merchant's order (pending until release_at if set)",
    "released": "pending points of an issue became spendable (at: the release time)",
    "reversed": "points an order issued taken back by a refund (burned: what was taken)",
    "redeemed": "points spent at a merchant (elsewhere: not the issuing merchant)",
    "refunded": "points a redemption took given back",
    "converted_out": "points turned into another merchant's points",
    "converted_in": "points received from a conversion",
    "expired": "a lot's points expired unspent (expired_at: when; at: when swept)",
    "moved_out": "every point of a kept (custodial) account moved to the member's wallet",
    "moved_in": "points kept for the member id arrived in the wallet (a claim)",
}
NEVER = 2**256 - 1
# Expiry times per program client (a program's periods never change; a client belongs to one
# deployment, so a program address reused by another deployment gets its own cache).
_expiries: WeakKeyDictionary[PointProgramClient, dict[int, int]] = WeakKeyDictionary()


def chain_now(alliance: Alliance) -> int:
    """The chain's latest block time: the clock the programs release and expire by."""
    return int(alliance.gateway.block("latest")["timestamp"])


def expiry_of(alliance: Alliance, *, program: str, period: int) -> int | None:
    """When points earned in ``period`` of a program expire (unix time; None: never)."""
    client = alliance.contracts.program(program)
    known = _expiries.setdefault(client, {})
    if period not in known:
        known[period] = client.expiry_of(period)
    return None if known[period] >= NEVER else known[period]


def history(alliance: Alliance, *, member: str, limit: int = 50,
            cursor: int | None = None, merchant_id: MerchantId | None = None
            ) -> tuple[list[dict[str, Any]], int | None]:
    """The member's point events, newest first, and the next cursor (see
    :func:`history_page`)."""
    page = history_page(alliance, member=member, limit=limit, cursor=cursor,
                        merchant_id=merchant_id)
    return page.events, page.next_cursor


def history_page(alliance: Alliance, *, member: str, limit: int = 50,
                 cursor: int | None = None, merchant_id: MerchantId | None = None) -> HistoryPage:
    """The member's point events, newest first, from the indexed read model (with
    ``merchant_id``: only its program's events and those at its store), each with its
    time (``at``) and what its kind needs (see :data:`HISTORY_KINDS`): an issue's release and
    expiry times, a release's amount net of reversals before it, a reversal's ``burned``, a
    redemption's ``elsewhere``, an expiry's ``expired_at``.

    The read model is the indexer's (it runs as a worker; this read does not sync it):
    ``as_of_block`` says which block it reflects."""
    address = _address(member)
    limits.bounded_int(limit, "limit", low=1, high=limits.MAX_HISTORY_LIMIT,
                       message=f"limit must be 1-{limits.MAX_HISTORY_LIMIT}")
    with alliance.store.read_session() as s:
        synced = cursors.get_cursor(s, CURSOR)
        issuers = {m.program_address: m.id for m in merchant_repos.list_merchants(s)}
        events, nxt = point_repos.member_events(s, member=address, limit=limit, cursor=cursor,
                                           merchant_id=merchant_id)
        reversals = _reversals(s, [(e["program"], e["order_ref"]) for e in events
                                   if e["kind"] == "released"])
    shown = []
    for e in events:
        e["program_merchant_id"] = issuers.get(e["program"])
        kind = e["kind"]
        if kind == "issued":
            e["expires_at"] = (None if e["period"] is None else
                               expiry_of(alliance, program=e["program"], period=e["period"]))
        elif kind == "released":
            # Points of the order reversed while still pending never became spendable; an
            # order reversed in full while pending releases nothing (no row).
            e["amount"] -= sum(p for t, p in reversals.get((e["program"], e["order_ref"]), [])
                               if t < e["at"])
            if e["amount"] <= 0:
                continue
        elif kind == "redeemed":
            e["elsewhere"] = e["merchant_id"] != e["program_merchant_id"]
        elif kind == "expired" and e["period"] is not None:
            e["expired_at"] = expiry_of(alliance, program=e["program"], period=e["period"])
        shown.append(e)
    return HistoryPage(synced[0] if synced is not None else None, shown, nxt)


def _reversals(session: Session, orders: Sequence[tuple[str, str | None]]
               ) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(block time, points taken) of the reversals of these (program, order ref) orders."""
    out: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for program in {p for p, _ in orders}:
        refs = [r for p, r in orders if p == program and r]
        for ref, taken in point_repos.reversed_before(session, program=program,
                                                order_refs=refs).items():
            out[(program, ref)] = taken
    return out


# ---------------------------------------------------------------------- public reads
#
# What a wallet needs to sign, without merchant credentials: served rate-limited by
# api/routes/public.py. The chain's own views answer the same questions (registry
# ``merchant(id)``, program ``eip712Domain()`` and ``nonceBitmap``).

# ERC-5267 field bits of ``eip712Domain()``: name, version, chainId, verifyingContract, salt.
_DOMAIN_FIELDS = (("name", "string"), ("version", "string"), ("chainId", "uint256"),
                  ("verifyingContract", "address"), ("salt", "bytes32"))
# How many unused nonces a suggestion lists (one per payment a wallet signs at once).
NONCE_SUGGESTIONS = 8
# Bitmap words scanned for unused nonces before the suggestion jumps to a random word.
NONCE_WORDS_SCANNED = 16


@dataclass(frozen=True)
class PublicProgram:
    """One program as a wallet needs it to sign: where, in which domain, at what rate."""

    merchant_id: MerchantId
    merchant_name: str
    status: str
    program: str
    symbol: str
    rate: int
    domain: dict[str, Any]


@dataclass(frozen=True)
class PublicAlliance:
    """The alliance as a wallet sees it: chain, registry, unit, programs and the types."""

    chain_id: int
    registry: str
    settlement_unit: str
    max_deadline_ahead_s: int
    programs: list[PublicProgram]
    types: dict[str, list[dict[str, str]]]


@dataclass(frozen=True)
class NonceInfo:
    """A member's signature nonces in one program: ``nonce`` used or not (when asked), and
    unused nonces to sign with (each payment signed at the same time takes its own)."""

    merchant_id: MerchantId
    program: str
    member: str
    nonce: int | None
    used: bool | None
    suggested: list[int]


# A program's symbol and EIP-712 domain never change: read once per program client (the
# public route is unauthenticated; each request then costs two views per program, not four).
_identities: WeakKeyDictionary[PointProgramClient, tuple[str, dict[str, Any]]] = \
    WeakKeyDictionary()


def _identity(alliance: Alliance, program: str) -> tuple[str, dict[str, Any]]:
    client = alliance.contracts.program(program)
    if client not in _identities:
        _identities[client] = (client.symbol(), program_domain(alliance, program))
    return _identities[client]


def program_domain(alliance: Alliance, program: str) -> dict[str, Any]:
    """A program's EIP-712 domain, read from the contract (ERC-5267 ``eip712Domain``):
    exactly the fields the contract hashes, so a wallet signs what the program verifies."""
    fields, name, version, chain_id, contract, salt, _ = alliance.contracts.program(
        program).view("eip712Domain")
    values = (str(name), str(version), int(chain_id), str(contract), "0x" + bytes(salt).hex())
    bits = bytes(fields)[0] if isinstance(fields, bytes | bytearray) else int(fields)
    return {key: values[i] for i, (key, _) in enumerate(_DOMAIN_FIELDS) if bits >> i & 1}


def domain_types(domain: dict[str, Any]) -> list[dict[str, str]]:
    """The ``EIP712Domain`` type of a domain (its fields, in the standard's order)."""
    return [{"name": k, "type": t} for k, t in _DOMAIN_FIELDS if k in domain]


def public_alliance(alliance: Alliance) -> PublicAlliance:
    """Chain id, registry, settlement unit, every program with its domain and rate, and the
    EIP-712 types members sign (see README "The member's signature")."""
    with alliance.store.read_session() as s:
        merchants = [(m.id, m.name, m.program_address) for m in merchant_repos.list_merchants(s)
                     if m.program_address]
    registry = alliance.contracts.registry
    programs = []
    for mid, name, program in merchants:
        assert program is not None
        symbol, domain = _identity(alliance, program)
        programs.append(PublicProgram(
            merchant_id=MerchantId(mid), merchant_name=name,
            status=registry.merchant(mid).status,
            program=program, symbol=symbol, rate=registry.rate_of(mid), domain=dict(domain)))
    types: dict[str, list[dict[str, str]]] = {
        "EIP712Domain": domain_types(programs[0].domain) if programs
        else list(signing.EIP712_DOMAIN_TYPES),
        "Redeem": list(signing.REDEEM_TYPES), "Convert": list(signing.CONVERT_TYPES),
        "CancelNonces": list(signing.CANCEL_NONCES_TYPES)}
    deployment = alliance.contracts.deployment
    return PublicAlliance(chain_id=alliance.gateway.chain_id, registry=deployment.registry,
                          settlement_unit=deployment.settlement_unit,
                          max_deadline_ahead_s=MAX_DEADLINE_AHEAD_S, programs=programs,
                          types=types)


def member_nonces(alliance: Alliance, *, merchant_id: MerchantId, member: str,
                  nonce: int | None = None) -> NonceInfo:
    """Whether ``nonce`` is used in the merchant's program, and unused nonces to sign with:
    the lowest free ones of the member's first bitmap word that has any (so the relayer
    writes a slot already warm), or of a random word once the first words are full."""
    address = _address(member)
    if nonce is not None:
        limits.nonce(nonce)
    with alliance.store.read_session() as s:
        program = program_of(require_merchant(s, limits.merchant_id(merchant_id)))
    client = alliance.contracts.program(program)
    used = None if nonce is None else nonce_used(alliance, program=program, member=address,
                                                 nonce=nonce)
    suggested: list[int] = []
    words = [*range(NONCE_WORDS_SCANNED), secrets.randbelow(2**56 - NONCE_WORDS_SCANNED)
             + NONCE_WORDS_SCANNED]
    for word_pos in words:
        word = client.nonce_bitmap(address, word_pos)
        suggested = [word_pos << 8 | bit for bit in range(256) if not word >> bit & 1]
        if suggested:
            break
    return NonceInfo(merchant_id=merchant_id, program=program, member=address, nonce=nonce,
                     used=used, suggested=suggested[:NONCE_SUGGESTIONS])
