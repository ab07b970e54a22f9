"""Points: issue, batch issue, reverse and redeem requests; balances and history.

Mutations are *requests*: each validates its input, resolves the member, and writes one
operation into the outbox inside the caller's database transaction (the same one that holds
the idempotency record). The outbox worker sends it. Reads come from the chain's views
(balances) and the indexed read model (history).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import limits, signing
from ..alliance import Alliance
from ..chain.encoding import keccak256
from ..chain.secp import recover_public_key
from ..errors import (
    ChainError,
    LedgerError,
    LedgerNotFoundError,
    LedgerSignatureError,
    LedgerValidationError,
)
from ..limits import address as _address
from ..members import repos as member_repos
from ..merchants.repos import MerchantRow
from ..merchants.service import program_of, require_merchant
from ..outbox import repos as outbox
from ..outbox.views import OperationView, operation_view
from ..store import repos as store_repos
from ..store.models import Operation, OperationStatus, OrderSpend
from ..store.repos import QueuedRequest
from ..types import MerchantId, OrderRef
from . import kinds
from .kinds import (
    CancelNoncesPayload,
    ConvertPayload,
    IssueLinePayload,
    IssuePayload,
    RedeemLinePayload,
    RedeemPayload,
    RefundRedemptionPayload,
    ReversePayload,
)

SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
# How far ahead a member's signed deadline may be (PointProgram refuses later ones).
MAX_DEADLINE_AHEAD_S = signing.MAX_DEADLINE_AHEAD_S


@dataclass(frozen=True)
class IssueLine:
    """One line of a batch issue request."""

    points: int
    order_id: str
    member: str | None = None
    member_id: str | None = None
    release_at: int | None = None
    # The order's amount in minor units (offers2): kept off chain, for spend-based offers.
    spend: int | None = None


def order_ref(order_id: str) -> OrderRef:
    """The on-chain reference of a merchant's order id (keccak-256 of its UTF-8 bytes)."""
    return OrderRef(keccak256(order_id.encode("utf-8")))


# ---------------------------------------------------------------------- validation
# Bounds and checkers live in ledger/limits.py (the API's schemas read the same ones).

_points = limits.points
_order_id = limits.order_id
_redeem_points = limits.redeem_points
_merchant_id = limits.merchant_id


def resolve_members(alliance: Alliance, session: Session,
                    refs: Sequence[tuple[str | None, str | None]]) -> list[str]:
    """The on-chain accounts of members given by wallet address or alliance member id.

    A wallet address stays itself: a linked wallet *is* the member's account on chain. A
    member id becomes its custodial account (created on first sight, keyed pseudonym only)."""
    out: list[str] = []
    for i, (member, member_id) in enumerate(refs):
        try:
            if (member is None) == (member_id is None):
                raise LedgerValidationError(
                    "give exactly one of member (address) or member_id")
            if member is not None:
                out.append(_address(member))
                continue
            out.append(member_repos.member_account(session, alliance.master_key,
                                                   member_id=limits.member_id(member_id)))
        except LedgerValidationError as exc:
            if len(refs) == 1:
                raise
            raise LedgerValidationError(f"items[{i}]: {exc.message}", code=exc.code, index=i,
                                        **exc.details) from exc
    return out


def _check_batch_size(alliance: Alliance, items: Sequence[object]) -> None:
    if not items:
        raise LedgerValidationError("a batch needs at least one item", field="items")
    if len(items) > alliance.settings.max_batch_items:
        raise LedgerValidationError(
            f"a batch holds at most {alliance.settings.max_batch_items} items", field="items")


def _release_at(value: int | None) -> int:
    return 0 if value is None else limits.unix_time(value, "release_at")


def _merchant(session: Session, merchant_id: MerchantId) -> MerchantRow:
    """A merchant with its point program (every admitted merchant has one)."""
    return require_merchant(session, merchant_id, program=True)


# ---------------------------------------------------------------------- requests


def request_issue(alliance: Alliance, session: Session, *, merchant_id: MerchantId,
                  member: str | None = None, member_id: str | None = None, points: int,
                  order_id: str, release_at: int | None = None,
                  spend: int | None = None) -> OperationView:
    """Queue an issue of ``points`` to a member for the merchant's order ``order_id``
    (``spend``: what the order was worth, in minor units; recorded off chain)."""
    line = IssueLine(points, order_id, member, member_id, release_at, spend)
    return request_issue_batch(alliance, session, merchant_id=merchant_id, items=[line],
                               kind=kinds.ISSUE)


def request_issue_batch(alliance: Alliance, session: Session, *, merchant_id: MerchantId,
                        items: Sequence[IssueLine], kind: kinds.IssueKind = kinds.ISSUE_BATCH
                        ) -> OperationView:
    """Queue many issue lines as one operation: they land in one transaction, all or none."""
    return queue_issues(alliance, session, check_issue_batch(
        alliance, merchant_id=merchant_id, items=items, kind=kind))


@dataclass(frozen=True)
class LeanIssue:
    """An issue request checked whole before the store is touched (:func:`lean_issue`): its
    typed payload, and that payload's JSON as :func:`queue_issues` writes it."""

    payload: IssuePayload
    data: dict[str, Any]


def lean_issue(alliance: Alliance, *, merchant_id: MerchantId, member: str | None = None,
               member_id: str | None = None, points: int, order_id: str,
               release_at: int | None = None, spend: int | None = None) -> LeanIssue | None:
    """The operation of an issue request that needs nothing of the store but the merchant's
    own row (a wallet's line, no spend given) and passed its checks; None for any other
    (a member id, a spend, a refusal: :func:`request_issue` then takes it in the request's
    transaction, which resolves the member, records the spend or records the refusal)."""
    if member is None or member_id is not None or spend is not None:
        return None
    checked = check_issue_batch(alliance, merchant_id=merchant_id, kind=kinds.ISSUE,
                                items=[IssueLine(points, order_id, member, None, release_at)])
    if checked.error is not None or len(checked.lines) != 1:
        return None
    (line,), (data,) = checked.lines, checked.data
    if not isinstance(line, IssueLinePayload) or data is None:
        return None
    return LeanIssue(IssuePayload((line,)), {"items": [data]})


def queue_lean_issues(alliance: Alliance, group: Sequence[tuple[LeanIssue, QueuedRequest]]
                      ) -> list[bool | Exception]:
    """Queue :func:`lean_issue` operations, each with its request's replay and idempotency
    records (its response already in the request), a group of requests in one round trip and
    one transaction (PostgreSQL: :func:`ledger.store.repos.queue_merchant_requests`); the
    typed payloads kept for this process's worker, as every ``enqueue`` does. Each request's
    answer in order: True queued, False nothing written (see there), an exception: that
    request's error alone. The store not answering raises for the group."""
    results = store_repos.queue_merchant_requests(
        alliance.store.engine, [request for _, request in group],
        notify_spacing_s=alliance.settings.batch_window_ms / 1000)
    for (issue, request), done in zip(group, results, strict=True):
        if done is True:
            outbox.QUEUED_PAYLOADS.put(request.operation_id, kinds.ISSUE.name, issue.payload, 1)
    return results


@dataclass(frozen=True)
class _ByMemberId:
    """An issue line whose member is an alliance member id, checked, its account resolved in
    the transaction (it may be created there); the other fields checked too."""

    member_id: str
    points: int
    order_id: str
    order_ref: OrderRef
    release_at: int


@dataclass(frozen=True)
class CheckedIssues:
    """An issue batch checked line by line (:func:`check_issue_batch`), to be queued by
    :func:`queue_issues`; ``error``: why it cannot be (its first failing line named), raised
    only when it is queued, so the request's own transaction records the refusal under its
    idempotency key, as when the lines were checked there. ``early``: the error comes before
    the merchant's own check (the batch's size), as it did.

    ``lines``: per line, its payload when its account is known (a wallet) or what resolves it
    in the transaction; ``data``: per line, its payload's JSON as ``kind.dump`` writes it
    (None for a member id's line, written once resolved); ``spends``: the orders' spends
    given (order reference, minor units), kept off chain."""

    merchant_id: MerchantId
    kind: kinds.IssueKind
    lines: tuple[IssueLinePayload | _ByMemberId, ...] = ()
    data: tuple[dict[str, Any] | None, ...] = ()
    spends: tuple[tuple[OrderRef, int], ...] = ()
    error: LedgerError | None = None
    early: bool = False


def check_issue_batch(alliance: Alliance, *, merchant_id: MerchantId,
                      items: Sequence[IssueLine], kind: kinds.IssueKind = kinds.ISSUE_BATCH
                      ) -> CheckedIssues:
    """Check issue lines without touching the store: bounds, wallets' checksums, the order
    ids (each once in the batch) and their on-chain references, every line's payload built
    and written to JSON. A 200-line batch did all of it while holding the store's one writer
    (SQLite), queueing every other request, the outbox and the indexer behind it; checked
    first, a request holds the writer only for its statements. An alliance member id is
    checked here and resolved to its account in the transaction (it may be created there)."""
    try:
        _check_batch_size(alliance, items)
    except LedgerValidationError as exc:
        return CheckedIssues(merchant_id, kind, error=exc, early=True)
    try:
        return _checked_lines(merchant_id, kind, items)
    except LedgerValidationError as exc:
        return CheckedIssues(merchant_id, kind, error=exc)


def _line_error(exc: LedgerValidationError, i: int) -> LedgerValidationError:
    """A line's error as a batch reports it (its index named)."""
    return LedgerValidationError(f"items[{i}]: {exc.message}", code=exc.code, index=i,
                                 **exc.details)


_new_line = object.__new__


def _issue_line(member: str, points: int, order_id: str, ref: OrderRef, release_at: int
                ) -> IssueLinePayload:
    """``IssueLinePayload(member, points, order_id, ref, release_at)`` for fields the checks
    of :func:`_checked_lines` bounded already, more narrowly than the payload's own type
    checks (a checksummed address, points within the program's bounds, an order id's text,
    its 32-byte Keccak, a unix time): those are not run a second time (a sixth of a line's
    cost). ``tests/ledger/test_points_batches.py`` compares the two."""
    line = _new_line(IssueLinePayload)
    line.__dict__.update(member=member, points=points, order_id=order_id, order_ref=ref,
                         release_at=release_at)
    return line


def _checked_lines(merchant_id: MerchantId, kind: kinds.IssueKind, items: Sequence[IssueLine]
                   ) -> CheckedIssues:
    """Every line checked, the members first (as :func:`resolve_members` did, in order),
    then each line's bounds and order id; the first failing line's error is raised. A line
    whose account is known is built and written to JSON here, once."""
    one = len(items) == 1
    members: list[str | None] = []
    for i, it in enumerate(items):
        try:
            if (it.member is None) == (it.member_id is None):
                raise LedgerValidationError(
                    "give exactly one of member (address) or member_id")
            members.append(_address(it.member) if it.member is not None
                           else limits.member_id(it.member_id))
        except LedgerValidationError as exc:
            if one:
                raise
            raise _line_error(exc, i) from exc
    lines: list[IssueLinePayload | _ByMemberId] = []
    data: list[dict[str, Any] | None] = []
    spends: list[tuple[OrderRef, int]] = []
    seen: set[str] = set()
    for i, it in enumerate(items):
        try:
            pts = _points(it.points)
            oid = _order_id(it.order_id)
            rel = _release_at(it.release_at)
            if it.spend is not None:
                limits.spend(it.spend)
        except LedgerValidationError as exc:
            if one:
                raise
            raise _line_error(exc, i) from exc
        if oid in seen:
            raise LedgerValidationError(f"items[{i}]: order_id {oid} twice in one batch",
                                        index=i, field="order_id")
        seen.add(oid)
        ref = order_ref(oid)
        if it.spend is not None:
            spends.append((ref, it.spend))
        member = members[i]
        if it.member is None:
            assert member is not None
            lines.append(_ByMemberId(member, pts, oid, ref, rel))
            data.append(None)
            continue
        assert member is not None
        lines.append(_issue_line(member, pts, oid, ref, rel))
        # IssueLinePayload.to_json, written out (the test above compares them too)
        data.append({"member": member, "points": pts, "order_id": oid,
                     "order_ref": "0x" + ref.hex(), "release_at": rel})
    return CheckedIssues(merchant_id, kind, tuple(lines), tuple(data), tuple(spends))


def queue_issues(alliance: Alliance, session: Session, checked: CheckedIssues
                 ) -> OperationView:
    """Queue checked issue lines (:func:`check_issue_batch`) as one operation in the caller's
    transaction; raise what the check found instead, if anything (after the merchant's own
    check, as before, unless the batch's size was wrong). Member ids are resolved here."""
    if checked.early and checked.error is not None:
        raise checked.error
    merchant = _merchant(session, checked.merchant_id)
    if checked.error is not None:
        raise checked.error
    typed: Sequence[IssueLinePayload | _ByMemberId] = checked.lines
    data: Sequence[dict[str, Any] | None] = checked.data
    if None in data:
        resolved: list[IssueLinePayload] = []
        written: list[dict[str, Any]] = []
        for c, d in zip(checked.lines, checked.data, strict=True):
            if isinstance(c, _ByMemberId):
                account = member_repos.member_account(session, alliance.master_key,
                                                      member_id=c.member_id)
                line = IssueLinePayload(account, c.points, c.order_id, c.order_ref,
                                        c.release_at)
                resolved.append(line)
                written.append(line.to_json())
            else:
                assert d is not None
                resolved.append(c)
                written.append(d)
        typed, data = resolved, written
    # The payload's JSON as ``kind.dump`` writes it, its lines written before the writer
    # for those whose account was known; the typed payload kept for this process's worker,
    # as every ``enqueue`` does.
    op = outbox.enqueue(session, kind=checked.kind,
                        payload=IssuePayload(cast(tuple[IssueLinePayload, ...], tuple(typed))),
                        data={"items": data}, merchant_id=merchant.id,
                        signer=merchant.account_address)
    for ref, spend in checked.spends:
        _record_spend(session, merchant_id=merchant.id, ref=ref, spend=spend,
                      operation_id=op.id)
    return operation_view(op)


def _record_spend(session: Session, *, merchant_id: int, ref: bytes, spend: int,
                  operation_id: str) -> None:
    """Keep an order's spend off chain, keyed by the order: the first request's stays (its
    issue is the one the chain takes, or took) unless that request's operation failed."""
    key = "0x" + bytes(ref).hex()
    row = session.get(OrderSpend, (merchant_id, key))
    if row is None:
        session.add(OrderSpend(merchant_id=merchant_id, order_ref=key, spend=spend,
                               operation_id=operation_id))
        session.flush()
        return
    previous = session.scalar(select(Operation.status).where(Operation.id == row.operation_id))
    if previous is OperationStatus.FAILED:
        row.spend, row.operation_id = spend, operation_id
        session.flush()


def order_spend(session: Session, *, merchant_id: int, order_ref_hex: str) -> int | None:
    """The spend an issue request recorded for the merchant's order (0x-hex ref), if any."""
    row = session.get(OrderSpend, (merchant_id, order_ref_hex))
    return None if row is None else row.spend


def request_reverse(alliance: Alliance, session: Session, *, merchant_id: MerchantId, order_id: str,
                    points: int) -> OperationView:
    """Queue a reversal (refund) of ``points`` of what the merchant's order issued."""
    merchant = _merchant(session, merchant_id)
    payload = ReversePayload(_order_id(order_id), order_ref(order_id), _points(points))
    op = outbox.enqueue(session, kind=kinds.REVERSE, payload=payload, merchant_id=merchant.id,
                        signer=merchant.account_address)
    return operation_view(op)


@dataclass(frozen=True)
class SignedRedemption:
    """A redemption a member signed: ``points`` of ``program_merchant_id``'s program (None:
    the relaying merchant's own) spent at the relaying merchant for its order ``order_id``."""

    member: str
    points: int
    order_id: str
    nonce: int
    deadline: int
    signature: str
    program_merchant_id: MerchantId | None = None


def _nonce_deadline_signature(nonce: Any, deadline: Any, signature: Any) -> None:
    limits.nonce(nonce)
    limits.unix_time(deadline, "deadline", low=1)
    limits.signature(signature)


def _program_merchant(session: Session, acceptor: MerchantRow, program_merchant_id: Any,
                      known: dict[int, MerchantRow] | None = None) -> MerchantRow:
    """The merchant whose points are spent: the acceptor itself when none (or itself) is named;
    ``known`` caches lookups across the lines of one batch."""
    if program_merchant_id in (None, acceptor.id):
        return acceptor
    mid = _merchant_id(program_merchant_id, "program_merchant_id")
    known = {} if known is None else known
    if mid not in known:
        known[mid] = _merchant(session, mid)
    return known[mid]


# The storage slot of ``SignedActions._nonceBitmap`` (``mapping(address => mapping(uint256 =>
# uint256))``) in ``PointProgram``'s layout, as solc lays it out (MerchantGated's two slots
# first; OpenZeppelin's upgradeable bases keep theirs in namespaced storage).
# tests/ledger/test_nonce_bitmap_slot.py holds it to the compiler's storage layout and to
# what the program's own ``nonceBitmap`` answers on a real chain.
NONCE_BITMAP_SLOT = 2
# A storage word as a node answers ``eth_getStorageAt`` (32 bytes; leading zeros may go).
_WORD_HEX = re.compile(r"0x[0-9a-fA-F]{1,64}")


def nonce_bitmap_slot(member: str, word: int) -> str:
    """The storage key (0x-hex) of ``_nonceBitmap[member][word]`` in a point program: Solidity's
    ``keccak256(word . keccak256(member . slot))``, each key padded to 32 bytes."""
    inner = keccak256(bytes.fromhex(member[2:]).rjust(32, b"\0")
                      + NONCE_BITMAP_SLOT.to_bytes(32, "big"))
    return "0x" + keccak256(word.to_bytes(32, "big") + inner).hex()


class SignatureCheck:
    """Checks a member's signed message the way the program will, before it is queued: a
    relayed signature that cannot land is refused at once (4xx), not failed later on chain.

    The signature is recovered locally against the program's EIP-712 domain first, as the
    program does (``SignedActions._requireSignedBy``): if it recovers to the member it is
    good, whatever the member's code. Otherwise only a contract wallet (code at the member's
    address) may still have signed, by ERC-1271, which only the chain can judge, so its
    signature is left to the program; an account without code is refused. The member's code is
    therefore read only for a signature that does not recover to it. Deadline and nonce are
    checked for both, against the chain's clock and the program's nonce bitmap. One instance
    serves one request: the chain's time and each member's code are read once."""

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance
        self._now: int | None = None
        self._contract: dict[str, bool] = {}
        # (program, member, word) -> the program's nonce bitmap word, read by prefetch.
        self._bitmaps: dict[tuple[str, str, int], int] = {}

    def prefetch(self, reads: Sequence[tuple[str, str, int | None]]) -> None:
        """Read in one JSON-RPC batch what :meth:`check` will ask the chain for the messages
        ``(program, member, nonce)``: the chain's time and the nonce bitmap word of each nonce
        (a batch of 200 redemptions asked 401 questions one by one). Not the members' code:
        :meth:`check_digest` reads it only for a signature that does not recover to its
        member (the code of each of 200 members was half of a 200-line batch's reads).

        Each word is read from the program's storage (``eth_getStorageAt`` of its slot in
        ``SignedActions._nonceBitmap``, :func:`nonce_bitmap_slot`), not by calling
        ``nonceBitmap``: the same word at the same block, but an ``eth_call`` cost the node
        ~40-48 us of CPU and a storage read ~8-10 (scratch measurement on anvil, 2026-11-27):
        on two cores shared with the node, the node's CPU per redemption is the figure's.
        What the batch does not answer cleanly is left to be read one by one (the call)."""
        words = [k for k in dict.fromkeys((p, m, n >> 8) for p, m, n in reads if n is not None)
                 if k not in self._bitmaps]
        if not words and self._now is not None:
            return
        gw = self.alliance.gateway
        # The latest block's header rides along (web3's own call for it took a tenth of a
        # 200-line request's checks).
        clock = self._now is None
        calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", False])] \
            if clock else []
        for program, member, word in words:
            calls.append(("eth_getStorageAt", [program, nonce_bitmap_slot(member, word),
                                               "latest"]))
        try:
            # Through the lean client: web3's provider encoded the ~400 calls of a 200-line
            # batch one by one through its formatters (a fifth of a handler's CPU).
            answers = gw.reads.batch(calls, errors_in_place=True)
        except ChainError:
            return
        if clock:
            block, answers = answers[0], answers[1:]
            if isinstance(block, dict) and isinstance(block.get("timestamp"), str):
                self._now = int(block["timestamp"], 16)
        for key, word_hex in zip(words, answers, strict=False):
            if isinstance(word_hex, str) and _WORD_HEX.fullmatch(word_hex):
                self._bitmaps[key] = int(word_hex, 16)

    def nonce_used(self, program: str, member: str, nonce: int) -> bool:
        word = self._bitmaps.get((program, member, nonce >> 8))
        if word is None:
            return nonce_used(self.alliance, program=program, member=member, nonce=nonce)
        return _nonce_bit(word, nonce)

    def now(self) -> int:
        """The chain's latest block time (the clock the program checks deadlines by)."""
        if self._now is None:
            self._now = int(self.alliance.gateway.block("latest")["timestamp"])
        return self._now

    def is_contract(self, member: str) -> bool:
        if member not in self._contract:
            self._contract[member] = len(self.alliance.gateway.code(member)) > 0
        return self._contract[member]

    def check(self, typed: dict[str, Any], *, member: str, nonce: int | None, deadline: int,
              signature: str) -> None:
        """Raise LedgerSignatureError unless ``signature`` can authorise ``typed`` now
        (``nonce`` None: a message without a nonce of its own, e.g. ``CancelNonces``)."""
        self.check_digest(lambda: typed_digest(typed), primary=str(typed["primaryType"]),
                          program=str(typed["domain"]["verifyingContract"]),
                          member=member, nonce=nonce, deadline=deadline,
                          signature=bytes.fromhex(signature[2:]))

    def check_digest(self, digest: Callable[[], bytes], *, primary: str, program: str,
                     member: str, nonce: int | None, deadline: int, signature: bytes) -> None:
        """:meth:`check` of a message whose EIP-712 digest ``digest()`` gives (hashed only
        when an EOA's signature is to be recovered), a ``primary`` in ``program``'s domain."""
        now = self.now()
        if deadline < now:
            raise LedgerSignatureError(f"the signature's deadline {deadline} has passed "
                                       f"(chain time {now})", code="deadline-passed",
                                       field="deadline")
        if deadline > now + MAX_DEADLINE_AHEAD_S:
            raise LedgerSignatureError(
                f"the signature's deadline is more than {MAX_DEADLINE_AHEAD_S} s ahead",
                code="deadline-too-far", field="deadline")
        if nonce is not None and self.nonce_used(program, member, nonce):
            raise LedgerSignatureError(f"nonce {nonce} of {member} is already used or "
                                       "cancelled in this program", code="nonce-used",
                                       field="nonce")
        raw = signature
        signer = None
        # OpenZeppelin's ECDSA takes only 65-byte signatures with v 27/28 and a low s: a
        # signature eth-account would also recover (v 0/1, high s) would still fail on chain.
        if len(raw) == 65 and raw[64] in (27, 28) and \
                int.from_bytes(raw[32:64], "big") <= SECP256K1_HALF_N:
            try:
                signer = recover_signer(digest(), raw)
            except Exception:  # noqa: BLE001 - any unrecoverable signature is a mismatch
                signer = None
        # Recovered to the member: good on chain too, code or none (the program recovers
        # first). Else only a contract wallet can still have signed (ERC-1271: the chain's to
        # judge); the code is read for such a line only.
        if signer != member.lower() and not self.is_contract(member):
            raise LedgerSignatureError(
                f"the signature is not {member}'s over this {primary} in the "
                f"domain of program {program} (chain {self.alliance.gateway.chain_id}): sign "
                "in the domain of the program whose points are spent, with exactly these "
                "fields", field="signature")


# EIP-712 hashed here for the messages of ledger/signing.py (flat structs of atomic fields in
# the standard domain): eth-account's encode_typed_data parses the types and ABI-encodes every
# field through eth-abi, ~0.3 ms a message, the most of a signed line's check. A message of
# any other shape goes through eth-account. Tests hold the digests equal to eth-account's.
# Each message's two hashes go through keccak256, which keeps the GIL (eth_utils' keccak,
# through pycryptodome's cffi handle, lets it go three times a hash); the type and domain
# hashes are computed once and kept.
_ATOMIC = re.compile(r"address|bytes32|bool|uint(8|16|24|32|40|48|56|64|96|128|160|192|256)")
_type_hashes: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}
_domain_hashes: dict[tuple[int, str, str], bytes] = {}


def _atomic_word(kind: str, value: Any) -> bytes:
    if kind == "address":
        raw = bytes.fromhex(str(value)[2:])
        if len(raw) != 20:
            raise ValueError("an address is 20 bytes")
        return raw.rjust(32, b"\0")
    if kind == "bytes32":
        raw = value if isinstance(value, bytes) else bytes.fromhex(str(value)[2:])
        if len(raw) != 32:
            raise ValueError("bytes32 is 32 bytes")
        return raw
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("a bool")
        return int(value).to_bytes(32, "big")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or \
            value.bit_length() > int(kind[4:]):
        raise ValueError(f"{kind} out of range")
    return value.to_bytes(32, "big")


def typed_digest(typed: dict[str, Any]) -> bytes:
    """The EIP-712 digest of ``typed`` (``eth_signTypedData_v4`` shape), as eth-account's
    ``encode_typed_data`` hashes it."""
    primary = str(typed["primaryType"])
    fields = tuple((str(f["name"]), str(f["type"])) for f in typed["types"][primary])
    dom = typed["domain"]
    if len(typed["types"]) != 2 or typed["types"]["EIP712Domain"] != signing.EIP712_DOMAIN_TYPES \
            or dom.get("name") != signing.DOMAIN_NAME \
            or dom.get("version") != signing.DOMAIN_VERSION or set(dom) != {
                "name", "version", "chainId", "verifyingContract", "salt"} \
            or not all(_ATOMIC.fullmatch(kind) for _, kind in fields) \
            or set(typed["message"]) != {name for name, _ in fields}:
        signable = encode_typed_data(full_message=typed)
        return keccak256(b"\x19" + signable.version + signable.header + signable.body)
    domain_hash = _domain_hash(int(dom["chainId"]), str(dom["verifyingContract"]),
                               str(dom["salt"]))
    type_hash = _type_hashes.get((primary, fields))
    if type_hash is None:
        type_hash = keccak(text=f"{primary}(" + ",".join(f"{k} {n}" for n, k in fields) + ")")
        _type_hashes[(primary, fields)] = type_hash
    msg = typed["message"]
    struct = keccak256(type_hash + b"".join(_atomic_word(k, msg[n]) for n, k in fields))
    return keccak256(b"\x19\x01" + domain_hash + struct)


def recover_signer(digest: bytes, signature: bytes) -> str:
    """The lower-case 0x address that signed ``digest`` (32 bytes; ``signature`` 65 bytes,
    v 27/28).

    Straight through libsecp256k1 (coincurve's copy), as eth-keys' coincurve backend recovers
    but without its wrapper objects and checks (~130 -> ~85 us a line here), and called holding
    the GIL (:mod:`ledger.chain.secp`: coincurve's cffi calls let it go three times a recovery;
    beside two busy threads a recovery took 0.35 ms of wall time that way against 0.15 held,
    for the same CPU). The caller has checked length, v and low s first; a digest that is not
    32 bytes is refused here. Raises ValueError when nothing recovers (r or s zero or not below the
    order, r no point's x). Tests hold it equal to eth-account's recovery."""
    if len(digest) != 32 or len(signature) != 65 or signature[64] not in (27, 28):
        raise ValueError("a 32-byte digest and a 65-byte signature with v 27 or 28")
    key = recover_public_key(digest, signature[:64], signature[64] - 27)
    return "0x" + keccak256(key)[12:].hex()


def _domain_hash(chain_id: int, program: str, salt: str) -> bytes:
    key = (chain_id, program.lower(), salt.lower())
    domain_hash = _domain_hashes.get(key)
    if domain_hash is None:
        domain_hash = keccak(
            keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                        "address verifyingContract,bytes32 salt)")
            + keccak(text=signing.DOMAIN_NAME) + keccak(text=signing.DOMAIN_VERSION)
            + _atomic_word("uint256", key[0]) + _atomic_word("address", key[1])
            + _atomic_word("bytes32", key[2]))
        _domain_hashes[key] = domain_hash
    return domain_hash


_REDEEM_TYPEHASH = keccak(text="Redeem(" + ",".join(
    f"{f['type']} {f['name']}" for f in signing.REDEEM_TYPES) + ")")


def redeem_digest(*, chain_id: int, program: str, registry: str, member: str, amount: int,
                  merchant_id: int, order_ref: bytes, nonce: int, deadline: int) -> bytes:
    """The EIP-712 digest of ``signing.redeem_typed_data`` with the same arguments, packed
    directly (one redeem-batch line built and parsed a typed-data dict for it)."""
    member_raw = bytes.fromhex(member[2:])
    if len(member_raw) != 20 or len(order_ref) != 32:
        raise ValueError("a member is 20 bytes, an order reference 32")
    domain_hash = _domain_hash(chain_id, program, signing.domain_salt(registry))
    return keccak256(b"\x19\x01" + domain_hash + keccak256(
        _REDEEM_TYPEHASH + b"\0" * 12 + member_raw + amount.to_bytes(32, "big")
        + merchant_id.to_bytes(32, "big") + order_ref + nonce.to_bytes(32, "big")
        + deadline.to_bytes(32, "big")))


def _nonce_bit(word: int, nonce: int) -> bool:
    """Bit ``nonce & 0xff`` of the bitmap word holding ``nonce``: set once spent or cancelled."""
    return bool(word >> (nonce & 0xFF) & 1)


def nonce_used(alliance: Alliance, *, program: str, member: str, nonce: int) -> bool:
    """Whether a member's signature nonce is spent or cancelled in a program (unordered
    nonces, as Permit2: bit ``nonce & 0xff`` of word ``nonce >> 8`` of ``nonceBitmap``)."""
    word = alliance.contracts.program(program).nonce_bitmap(member, nonce >> 8)
    return _nonce_bit(word, nonce)


def _redemption_line(session: Session, acceptor: MerchantRow, r: SignedRedemption,
                     known: dict[int, MerchantRow] | None = None,
                     checker: SignatureCheck | None = None) -> RedeemLinePayload:
    _nonce_deadline_signature(r.nonce, r.deadline, r.signature)
    program_merchant = _program_merchant(session, acceptor, r.program_merchant_id, known)
    points = _redeem_points(r.points)
    member = _address(r.member)
    oid = _order_id(r.order_id)
    line = RedeemLinePayload(member, points, oid, order_ref(r.order_id), r.nonce, r.deadline,
                             bytes.fromhex(r.signature[2:]), acceptor.id, program_merchant.id,
                             program_of(program_merchant))
    if checker is not None:
        _check_redemption(checker, line)
    return line


def _check_redemption(checker: SignatureCheck, line: RedeemLinePayload) -> None:
    alliance = checker.alliance
    checker.check_digest(lambda: redeem_digest(
        chain_id=alliance.gateway.chain_id, program=line.program,
        registry=alliance.contracts.deployment.registry, member=line.member,
        amount=line.points, merchant_id=line.merchant_id, order_ref=line.order_ref,
        nonce=line.nonce, deadline=line.deadline), primary="Redeem", program=line.program,
        member=line.member, nonce=line.nonce, deadline=line.deadline, signature=line.signature)


def request_redeem(alliance: Alliance, session: Session, *, merchant_id: MerchantId, member: str,
                   points: int, order_id: str, nonce: int, deadline: int,
                   signature: str, program_merchant_id: MerchantId | None = None) -> OperationView:
    """Queue a redemption the member authorised by an EIP-712 signature; the merchant relays.

    ``program_merchant_id`` names whose points are spent (default: the merchant's own); at
    another merchant's program the value clears in the same transaction."""
    acceptor = _merchant(session, merchant_id)
    line = _redemption_line(session, acceptor, SignedRedemption(
        member, points, order_id, nonce, deadline, signature, program_merchant_id),
        checker=SignatureCheck(alliance))
    op = outbox.enqueue(session, kind=kinds.REDEEM,
                        payload=RedeemPayload(line.program, (line,)),
                        merchant_id=acceptor.id, signer=acceptor.account_address)
    return operation_view(op)


@dataclass(frozen=True)
class CheckedRedemptions:
    """A redeem batch checked as the programs will check it and grouped by program, to be
    queued by :func:`queue_redemptions`; ``error``: why it cannot be (its first failing line
    named), raised only when it is queued, so that the request's own transaction records the
    refusal under its idempotency key as before."""

    merchant_id: MerchantId
    # One payload per program, with its JSON written before the write transaction (a
    # 200-line batch's JSON took ~10% of a handler's CPU, under the store's one writer).
    groups: tuple[tuple[RedeemPayload, dict[str, Any]], ...] = ()
    error: LedgerError | None = None


def check_redeem_batch(alliance: Alliance, *, merchant_id: MerchantId,
                       items: Sequence[SignedRedemption], session: Session | None = None
                       ) -> CheckedRedemptions:
    """Check many signed redemptions relayed by one merchant, as :func:`request_redeem_batch`
    does, without a write transaction: the merchants are read through ``session`` (default:
    a read session of its own, closed before the chain is asked), the chain's answers in one
    batch, then every EOA's signature recovered. A 200-line batch's checks held the store's
    one writer (SQLite) for their whole time, queueing every other request, the outbox and
    the indexer behind them; checked first, a request holds it only to queue."""
    try:
        if session is None:
            with alliance.store.read_session() as read:
                lines, invalid = _redemption_lines(alliance, read, merchant_id, items)
        else:
            lines, invalid = _redemption_lines(alliance, session, merchant_id, items)
        groups: dict[str, list[RedeemLinePayload]] = {}
        checker = SignatureCheck(alliance)
        checker.prefetch([(line.program, line.member, line.nonce) for line in lines])
        for i, line in enumerate(lines):
            try:
                _check_redemption(checker, line)
            except LedgerSignatureError as exc:
                raise LedgerSignatureError(f"items[{i}]: {exc.message}", code=exc.code, index=i,
                                           **exc.details) from exc
            groups.setdefault(line.program, []).append(line)
        if invalid is not None:
            raise invalid
    except LedgerError as exc:
        return CheckedRedemptions(merchant_id, error=exc)
    payloads = [RedeemPayload(p, tuple(g)) for p, g in groups.items()]
    return CheckedRedemptions(merchant_id, tuple(
        (payload, kinds.REDEEM_BATCH.dump(payload)) for payload in payloads))


def _redemption_lines(alliance: Alliance, session: Session, merchant_id: MerchantId,
                      items: Sequence[SignedRedemption]
                      ) -> tuple[list[RedeemLinePayload], LedgerError | None]:
    """Every line validated in order, up to the first invalid one, whose error is given
    apart: it is raised after the signature checks of the lines before it (the first line
    that fails, of either pass, is the one reported, as when each line was checked in turn)."""
    _check_batch_size(alliance, items)
    acceptor = _merchant(session, merchant_id)
    seen: set[str] = set()
    known: dict[int, MerchantRow] = {}
    lines: list[RedeemLinePayload] = []
    for i, it in enumerate(items):
        try:
            line = _redemption_line(session, acceptor, it, known)
        except (LedgerValidationError, LedgerNotFoundError) as exc:
            invalid = type(exc)(f"items[{i}]: {exc.message}", code=exc.code, index=i,
                                **exc.details)
            invalid.__cause__ = exc
            return lines, invalid
        lines.append(line)
        if line.order_id in seen:
            # Reported after this line's signature check, as before.
            return lines, LedgerValidationError(f"items[{i}]: order_id {line.order_id} twice "
                                                "in one batch", index=i, field="order_id")
        seen.add(line.order_id)
    return lines, None


def queue_redemptions(alliance: Alliance, session: Session, checked: CheckedRedemptions
                      ) -> list[OperationView]:
    """Queue checked redemptions (:func:`check_redeem_batch`) in the caller's transaction: one
    operation per program, in the order the programs first appear; raise what the check
    found instead, if anything."""
    if checked.error is not None:
        raise checked.error
    acceptor = _merchant(session, checked.merchant_id)
    return [operation_view(outbox.enqueue(
        session, kind=kinds.REDEEM_BATCH, payload=payload, data=data,
        merchant_id=acceptor.id, signer=acceptor.account_address))
        for payload, data in checked.groups]


def request_redeem_batch(alliance: Alliance, session: Session, *, merchant_id: MerchantId,
                         items: Sequence[SignedRedemption]) -> list[OperationView]:
    """Queue many signed redemptions relayed by one merchant: one operation per program
    (each lands in one transaction, all or none), in the order the programs first appear."""
    return queue_redemptions(alliance, session, check_redeem_batch(
        alliance, merchant_id=merchant_id, items=items, session=session))


def request_convert(alliance: Alliance, session: Session, *, merchant_id: MerchantId, member: str,
                    from_merchant_id: MerchantId, points: int, min_out: int, order_id: str,
                    nonce: int, deadline: int, signature: str) -> OperationView:
    """Queue a conversion of ``points`` of ``from_merchant_id``'s program into the relaying
    merchant's points, as the member signed it (EIP-712 ``Convert``)."""
    target = _merchant(session, merchant_id)
    source = _merchant(session, _merchant_id(from_merchant_id, "from_merchant_id"))
    if source.id == target.id:
        raise LedgerValidationError("convert from another merchant's program",
                                    field="from_merchant_id")
    _nonce_deadline_signature(nonce, deadline, signature)
    limits.bounded_int(min_out, "min_out", low=0, high=limits.MAX_POINTS,
                       message="min_out must be a non-negative integer")
    pts = _redeem_points(points)
    account = _address(member)
    oid = _order_id(order_id)
    SignatureCheck(alliance).check(signing.convert_typed_data(
        chain_id=alliance.gateway.chain_id, program=program_of(source),
        registry=alliance.contracts.deployment.registry, member=account,
        amount=pts, to_merchant_id=target.id, min_out=min_out, order_ref=order_ref(oid),
        nonce=nonce, deadline=deadline), member=account, nonce=nonce, deadline=deadline,
        signature=signature)
    payload = ConvertPayload(program_of(source), account, pts, min_out, oid,
                             order_ref(order_id), nonce, deadline,
                             bytes.fromhex(signature[2:]), target.id, source.id)
    op = outbox.enqueue(session, kind=kinds.CONVERT, payload=payload, merchant_id=target.id,
                        signer=target.account_address)
    return operation_view(op)


def request_refund_redemption(alliance: Alliance, session: Session, *, merchant_id: MerchantId,
                              order_id: str, points: int,
                              program_merchant_id: MerchantId | None = None) -> OperationView:
    """Queue a refund of ``points`` of what a redemption took for the merchant's order
    ``order_id`` (points of ``program_merchant_id``'s program; default its own)."""
    acceptor = _merchant(session, merchant_id)
    program_merchant = _program_merchant(session, acceptor, program_merchant_id)
    payload = RefundRedemptionPayload(program_of(program_merchant), acceptor.id,
                                      program_merchant.id, _order_id(order_id),
                                      order_ref(order_id), _points(points))
    op = outbox.enqueue(session, kind=kinds.REFUND_REDEMPTION, payload=payload,
                        merchant_id=acceptor.id, signer=acceptor.account_address)
    return operation_view(op)


def request_cancel_signatures(alliance: Alliance, session: Session, *, merchant_id: MerchantId,
                              member: str, word_pos: int, mask: int, deadline: int,
                              signature: str, program_merchant_id: MerchantId | None = None
                              ) -> OperationView:
    """Queue a member's signed ``CancelNonces``: nonces ``word_pos * 256 + b`` for every bit
    ``b`` of ``mask`` can never be used in ``program_merchant_id``'s program (default: the
    relaying merchant's own). Refused at once if the signature is not the member's, or every
    one of those nonces is already used."""
    relayer = _merchant(session, merchant_id)
    program_merchant = _program_merchant(session, relayer, program_merchant_id)
    program = program_of(program_merchant)
    account = _address(member)
    limits.bounded_int(word_pos, "word_pos", low=0, high=limits.MAX_WORD_POS,
                       message="word_pos must be 0 to 2^248 - 1")
    limits.bounded_int(mask, "mask", low=1, high=limits.MAX_MASK,
                       message="mask must be 1 to 2^256 - 1")
    _nonce_deadline_signature(0, deadline, signature)
    SignatureCheck(alliance).check(signing.cancel_nonces_typed_data(
        chain_id=alliance.gateway.chain_id, program=program,
        registry=alliance.contracts.deployment.registry, member=account, word_pos=word_pos,
        mask=mask, deadline=deadline), member=account, nonce=None, deadline=deadline,
        signature=signature)
    used = alliance.contracts.program(program).nonce_bitmap(account, word_pos)
    if used & mask == mask:
        raise LedgerSignatureError("every nonce of that mask is already used or cancelled",
                                   code="nonce-used", field="mask")
    payload = CancelNoncesPayload(program, program_merchant.id, account, word_pos, mask,
                                  deadline, bytes.fromhex(signature[2:]))
    op = outbox.enqueue(session, kind=kinds.CANCEL_NONCES, payload=payload,
                        merchant_id=relayer.id, signer=relayer.account_address)
    return operation_view(op)
