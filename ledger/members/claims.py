"""Claiming what the service kept for a member id (its custodial account) into the member's
own wallet.

At the counter, the merchant (who knows the member id) asks for a one-time link code
(:func:`issue_link_code`): short-lived, single use, stored as a hash, a few per member id an
hour. The member, signed in to the app with a wallet, submits it (:func:`claim`): in one
database transaction the member id is linked to the wallet (new points go there from then
on) and, for every program where the custodial account holds points, a ``move_account``
operation is queued: the custodial key signs ``MoveAccount(from, to, deadline)`` and the
program's merchant relays it, moving every lot with its period (so its expiry) and pending
points still pending, once. If the custodial account holds coupons (coupons read model), a
``coupon_move`` operation is queued in the same transaction: the key signs
``CouponMove(from, to, ids, deadline)`` and the merchant that issued the link code relays it;
the coupons move with their history, used or not, transferable or not. The same code sent
again by the same wallet gives the same claim; a used code is 409 ``link-code-used``, an
expired one 410 ``link-code-expired``. :func:`claim_status` says where each move is; a move
that failed on chain is queued again by :func:`retry_claim` (a fresh signature), so a claim
is never left half done.
The custodial key is kept (encrypted under the master key) only until every move is
confirmed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eth_account import Account
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import limits, signing
from ..alliance import Alliance
from ..coupons import kinds as coupon_kinds
from ..coupons import repos as coupon_repos
from ..coupons.signing import coupon_move_typed_data
from ..errors import (
    LedgerConflictError,
    LedgerGoneError,
    LedgerNotFoundError,
    LedgerRateLimitedError,
    LedgerValidationError,
)
from ..merchants.repos import get_merchant, list_merchants
from ..outbox import repos as outbox_repos
from ..points import kinds as point_kinds
from ..points import reads as point_reads
from ..store.models import (
    Member,
    MemberClaimMove,
    MemberLinkCode,
    Operation,
    OperationStatus,
)
from . import repos as member_repos

# A code lives long enough to type it in at the counter, no longer.
LINK_CODE_TTL = timedelta(minutes=15)
# Codes one member id may get in an hour (each new one ends the earlier unused ones).
LINK_CODES_PER_HOUR = 5
# Unambiguous characters only (no I, L, O, 0, 1): 10 of 31 give about 49.5 bits.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
# How far ahead a move's signature is valid (the contract allows up to 7 days).
MOVE_SIGNATURE_TTL_S = 6 * 86_400
# A claim's coupon moves are stored as moves of "merchants" 0, -1, -2, ... (the coupon book,
# no program), one per MAX_MOVED_COUPONS coupons: its relayer is the merchant that issued the
# link code.
COUPONS_MOVE = 0


def _is_coupon_move(mv: MemberClaimMove) -> bool:
    return mv.merchant_id <= COUPONS_MOVE
# Operation states before a transaction is confirmed.
ON_THE_WAY = (OperationStatus.QUEUED, OperationStatus.SENDING, OperationStatus.SUBMITTED)
# How long after a grant landed the claim checks the read model has its coupon (the indexer
# follows within seconds; past this a grant is taken as indexed).
INDEX_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class LinkCode:
    """A link code as the merchant hands it to the member (shown once, never stored)."""

    code: str
    expires_at: datetime


@dataclass(frozen=True)
class ClaimMove:
    """One move of a claim: ``asset`` ``points`` (one program's, ``merchant_id``'s, at
    ``program``) or ``coupons`` (every coupon held, at the coupon book ``program``, relayed by
    ``merchant_id``, the link code's merchant)."""

    merchant_id: int
    program: str
    operation_id: str
    status: OperationStatus
    tx_hash: str | None
    error_code: str | None
    asset: str = "points"


@dataclass(frozen=True)
class ClaimView:
    """A wallet's claim: ``state`` is ``none`` (no claim), ``moving`` (moves queued or on
    their way), ``done`` (every move confirmed, or nothing was held) or ``failed`` (at least
    one move failed: :func:`retry_claim` sends it again)."""

    wallet: str
    state: str
    moves: tuple[ClaimMove, ...]


def _now() -> datetime:
    return datetime.now(UTC)


def normalize_code(code: str) -> str:
    """The code as stored: capitals, without the spaces and dashes people type."""
    if not isinstance(code, str) or len(code) > 40:
        raise LedgerValidationError("a link code is 10 letters and digits", field="code")
    plain = code.upper().replace("-", "").replace(" ", "")
    if len(plain) != CODE_LENGTH or any(c not in ALPHABET for c in plain):
        raise LedgerValidationError("a link code is 10 letters and digits", field="code")
    return plain


def _hash(plain: str) -> str:
    return hashlib.sha256(b"alliance-link-code:" + plain.encode()).hexdigest()


def issue_link_code(alliance: Alliance, session: Session, *, merchant_id: int,
                    member_id: str) -> LinkCode:
    """A new one-time code for ``member_id`` (the merchant knows it: it is the counter's).
    Earlier unused codes of the member id stop working.

    Raises LedgerConflictError ``member-already-linked`` if the member id already has a
    wallet (its points go there), LedgerRateLimitedError past LINK_CODES_PER_HOUR."""
    member_id = limits.member_id(member_id)
    view = member_repos.get_or_create_member(session, alliance.master_key, member_id=member_id)
    if view.wallet is not None:
        raise LedgerConflictError("this member id is already linked to a wallet: its points "
                                  "go there", code="member-already-linked")
    now = _now()
    recent = session.scalar(select(func.count()).select_from(MemberLinkCode).where(
        MemberLinkCode.pseudonym == view.pseudonym,
        MemberLinkCode.created_at > now - timedelta(hours=1))) or 0
    if recent >= LINK_CODES_PER_HOUR:
        raise LedgerRateLimitedError("too many link codes for this member id in the last "
                                     "hour: try again later", code="link-codes-rate-limited")
    session.execute(update(MemberLinkCode).where(
        MemberLinkCode.pseudonym == view.pseudonym, MemberLinkCode.used_at.is_(None),
        MemberLinkCode.expires_at > now).values(expires_at=now, key_enc=None))
    plain = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    key = member_repos.custodial_key(session, alliance.master_key, member_id=member_id)
    expires_at = now + LINK_CODE_TTL
    session.add(MemberLinkCode(code_hash=_hash(plain), pseudonym=view.pseudonym,
                               merchant_id=merchant_id,
                               key_enc=alliance.master_key.encrypt(key), created_at=now,
                               expires_at=expires_at))
    session.flush()
    return LinkCode(f"{plain[:5]}-{plain[5:]}", expires_at)


def claim(alliance: Alliance, session: Session, *, code: str, wallet: str) -> ClaimView:
    """Link the code's member id to ``wallet`` and queue the moves of everything its
    custodial account holds, all or nothing; the same code from the same wallet again gives
    the same claim.

    Raises LedgerNotFoundError ``link-code-unknown``; LedgerConflictError ``link-code-used``
    (by another wallet), ``member-linked-elsewhere``, ``wallet-linked`` (the wallet is another
    member's), ``wallet-is-custodial``, ``coupons-on-the-way`` (a coupon grant to the member
    id is not on chain yet: nothing changed, try again); LedgerGoneError
    ``link-code-expired``."""
    wallet = limits.address(wallet)
    row = session.get(MemberLinkCode, _hash(normalize_code(code)), with_for_update=True)
    if row is None:
        raise LedgerNotFoundError("this link code is not known: check it, or ask at the "
                                  "counter for a new one", code="link-code-unknown")
    if row.used_at is not None:
        if row.wallet == wallet:
            return _view(session, wallet, [row.code_hash])
        raise LedgerConflictError("this link code was already used", code="link-code-used")
    if row.expires_at <= _now() or row.key_enc is None:
        raise LedgerGoneError("this link code has expired: ask at the counter for a new one",
                              code="link-code-expired")
    member = session.scalar(select(Member).where(Member.pseudonym == row.pseudonym))
    if member is None:
        raise LedgerNotFoundError("this link code is not known: check it, or ask at the "
                                  "counter for a new one", code="link-code-unknown")
    if member.wallet is not None and member.wallet != wallet:
        raise LedgerConflictError("this member id is already linked to another wallet",
                                  code="member-linked-elsewhere")
    if session.scalar(select(Member.id).where(Member.account == wallet)) is not None:
        raise LedgerConflictError("this address is an account the service keeps for a "
                                  "member id: sign in with your own wallet",
                                  code="wallet-is-custodial")
    if _coupons_on_the_way(session, member.account):
        raise LedgerConflictError("a coupon for this member id is still being issued: try "
                                  "again in a minute", code="coupons-on-the-way")
    try:
        with session.begin_nested():
            member.wallet = wallet
            session.flush()
    except IntegrityError as exc:
        raise LedgerConflictError("this wallet is linked to another member",
                                  code="wallet-linked") from exc
    key = alliance.master_key.decrypt(row.key_enc)
    if Account.from_key(key).address != member.account:
        raise LedgerConflictError("this link code does not open its member's account",
                                  code="link-code-unknown")
    on_the_way = _issuing_to(session, member.account)
    for merchant in list_merchants(session):
        if not merchant.program_address:
            continue
        program = alliance.contracts.program(merchant.program_address)
        if merchant.id not in on_the_way and program.balance_of(member.account) == 0:
            continue
        op_id = _queue_move(alliance, session, key=key, merchant_id=merchant.id,
                            signer=merchant.account_address,
                            program=merchant.program_address, account=member.account,
                            wallet=wallet)
        session.add(MemberClaimMove(code_hash=row.code_hash, merchant_id=merchant.id,
                                    program=merchant.program_address,
                                    account=member.account, wallet=wallet,
                                    operation_id=op_id))
    book = alliance.contracts.coupons
    coupon_ids = _coupons_held(session, member.account) if book is not None else []
    if book is not None and coupon_ids:
        relayer = get_merchant(session, row.merchant_id)
        if relayer is None:
            raise LedgerNotFoundError("this link code's merchant is not known",
                                      code="link-code-unknown")
        # Every coupon moves, in as many moves as it takes: the custodial key is erased once
        # the claim is done, so a coupon left behind could never be moved again.
        step = coupon_kinds.MAX_MOVED_COUPONS
        for part, start in enumerate(range(0, len(coupon_ids), step)):
            op_id = _queue_coupon_move(alliance, session, key=key, merchant_id=relayer.id,
                                       signer=relayer.account_address, book=book.address,
                                       account=member.account, wallet=wallet,
                                       ids=coupon_ids[start:start + step])
            session.add(MemberClaimMove(code_hash=row.code_hash,
                                        merchant_id=COUPONS_MOVE - part,
                                        program=book.address, account=member.account,
                                        wallet=wallet, operation_id=op_id))
    row.used_at = _now()
    row.wallet = wallet
    session.flush()
    return _view(session, wallet, [row.code_hash])


def _issuing_to(session: Session, account: str) -> set[int]:
    """Merchants with an issue to ``account`` not yet on chain: the merchant's operations go
    out in the order they were queued, so a move queued now lands after it and takes it too."""
    rows = session.execute(select(Operation.merchant_id, Operation.payload).where(
        Operation.kind.in_([point_kinds.ISSUE.name, point_kinds.ISSUE_BATCH.name]),
        Operation.status.in_([OperationStatus.QUEUED, OperationStatus.SENDING,
                              OperationStatus.SUBMITTED])))
    return {mid for mid, payload in rows
            if any(i.get("member") == account for i in (payload or {}).get("items", ()))}


def _queue_move(alliance: Alliance, session: Session, *, key: bytes, merchant_id: int,
                signer: str, program: str, account: str, wallet: str) -> str:
    deadline = point_reads.chain_now(alliance) + MOVE_SIGNATURE_TTL_S
    typed = signing.move_account_typed_data(
        chain_id=alliance.gateway.chain_id, program=program,
        registry=alliance.contracts.deployment.registry, from_=account, to=wallet,
        deadline=deadline)
    signature = bytes(Account.sign_typed_data(key, full_message=typed).signature)
    payload = point_kinds.MoveAccountPayload(program, merchant_id, account, wallet, deadline,
                                             signature)
    op = outbox_repos.enqueue(session, kind=point_kinds.MOVE_ACCOUNT, payload=payload,
                              merchant_id=merchant_id, signer=signer)
    return op.id


def _coupons_on_the_way(session: Session, account: str) -> bool:
    """Whether a grant to ``account`` is queued or on its way, or landed but is not yet in
    the coupons read model: its coupon's id is not known here, so a move signed now could not
    name it (and it would stay in the custodial account). The claim waits for it (the code
    stays unused). Landed grants are looked at for INDEX_GRACE after they changed."""
    mine = account.lower()
    rows = session.execute(select(Operation.status, Operation.payload, Operation.tx_hash)
                           .where(Operation.kind == coupon_kinds.GRANT.name,
                                  Operation.status.in_(ON_THE_WAY) | (
                                      (Operation.status == OperationStatus.CONFIRMED)
                                      & (Operation.updated_at > _now() - INDEX_GRACE))))
    for status, payload, tx_hash in rows:
        if not any(str(m).lower() == mine for m in (payload or {}).get("items", ())):
            continue
        if status != OperationStatus.CONFIRMED or not tx_hash:
            return True
        if not coupon_repos.granted_in_tx(session, tx_hash=tx_hash,
                                          campaign_id=int(payload["campaign_id"])):
            return True
    return False


def _coupons_held(session: Session, account: str) -> list[int]:
    """The coupons the read model says ``account`` holds (used ones too: they keep their
    history)."""
    return [c.coupon_id for c in coupon_repos.held_by(session, account)]


def _queue_coupon_move(alliance: Alliance, session: Session, *, key: bytes, merchant_id: int,
                       signer: str, book: str, account: str, wallet: str,
                       ids: list[int]) -> str:
    deadline = point_reads.chain_now(alliance) + MOVE_SIGNATURE_TTL_S
    typed = coupon_move_typed_data(
        chain_id=alliance.gateway.chain_id, book=book,
        registry=alliance.contracts.deployment.registry, from_=account, to=wallet, ids=ids,
        deadline=deadline)
    signature = bytes(Account.sign_typed_data(key, full_message=typed).signature)
    payload = coupon_kinds.MoveCouponsPayload(account, wallet, tuple(ids), deadline, signature)
    op = outbox_repos.enqueue(session, kind=coupon_kinds.MOVE_COUPONS, payload=payload,
                              merchant_id=merchant_id, signer=signer)
    return op.id


def _codes_of(session: Session, wallet: str) -> list[str]:
    return list(session.scalars(select(MemberLinkCode.code_hash).where(
        MemberLinkCode.wallet == wallet, MemberLinkCode.used_at.is_not(None))))


def _view(session: Session, wallet: str, codes: list[str]) -> ClaimView:
    if not codes:
        return ClaimView(wallet, "none", ())
    moves = []
    for mv in session.scalars(select(MemberClaimMove).where(
            MemberClaimMove.code_hash.in_(codes)).order_by(MemberClaimMove.merchant_id)):
        op = outbox_repos.get_operation(session, mv.operation_id)
        assert op is not None
        if _is_coupon_move(mv):
            moves.append(ClaimMove(op.merchant_id, mv.program, op.id,
                                   OperationStatus(op.status), op.tx_hash, op.error_code,
                                   "coupons"))
            continue
        moves.append(ClaimMove(mv.merchant_id, mv.program, op.id, OperationStatus(op.status),
                               op.tx_hash, op.error_code))
    statuses = {m.status for m in moves}
    if OperationStatus.FAILED in statuses:
        state = "failed"
    elif statuses <= {OperationStatus.CONFIRMED}:
        state = "done"
    else:
        state = "moving"
    return ClaimView(wallet, state, tuple(moves))


def claim_status(session: Session, *, wallet: str) -> ClaimView:
    """The wallet's claim and each program's move. Once every move is confirmed, the
    custodial key kept for it is erased."""
    wallet = limits.address(wallet)
    codes = _codes_of(session, wallet)
    view = _view(session, wallet, codes)
    if view.state == "done" and codes:
        session.execute(update(MemberLinkCode).where(
            MemberLinkCode.code_hash.in_(codes)).values(key_enc=None))
    return view


def retry_claim(alliance: Alliance, session: Session, *, wallet: str) -> ClaimView:
    """Queue again, with a fresh signature, every move of the wallet's claim that failed."""
    wallet = limits.address(wallet)
    codes = _codes_of(session, wallet)
    for mv in session.scalars(select(MemberClaimMove).where(
            MemberClaimMove.code_hash.in_(codes))).all():
        op = outbox_repos.get_operation(session, mv.operation_id)
        if op is None or op.status != OperationStatus.FAILED:
            continue
        row = session.get(MemberLinkCode, mv.code_hash)
        if row is None or row.key_enc is None:
            continue
        key = alliance.master_key.decrypt(row.key_enc)
        if _is_coupon_move(mv):
            relayer = get_merchant(session, op.merchant_id)
            # The failed move's coupons, less any the read model no longer has there.
            held = set(_coupons_held(session, mv.account))
            ids = [c for c in coupon_kinds.MOVE_COUPONS.parse(op.payload).coupon_ids
                   if c in held]
            if relayer is None or not ids:
                continue
            mv.operation_id = _queue_coupon_move(
                alliance, session, key=key, merchant_id=relayer.id,
                signer=relayer.account_address, book=mv.program, account=mv.account,
                wallet=wallet, ids=ids)
            continue
        merchant = get_merchant(session, mv.merchant_id)
        if merchant is None:
            continue
        mv.operation_id = _queue_move(alliance, session, key=key, merchant_id=mv.merchant_id,
                                      signer=merchant.account_address, program=mv.program,
                                      account=mv.account, wallet=wallet)
    session.flush()
    return _view(session, wallet, codes)
