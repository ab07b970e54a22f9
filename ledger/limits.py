"""Every bound the ledger enforces, in one place: the pydantic schemas (``api/schemas``) and
the ledger's own checks read the same constants, so the HTTP layer and a direct caller (CLI,
worker, tests) refuse exactly the same input.

Most bounds are the contracts' storage widths (a value the chain would truncate or refuse is
refused here, before anything is queued); each says where it comes from.

The checkers at the end raise :class:`~ledger.errors.LedgerValidationError` with ``field``
set, and give the value back typed, so a call site reads ``pts = points(value)``.
"""

from __future__ import annotations

import re
from typing import Final

from eth_utils.address import is_hex_address

from .chain.encoding import checksum_address
from .errors import LedgerValidationError
from .types import Address, MerchantId, Points

# ---------------------------------------------------------------------- amounts

MAX_POINTS: Final = 2**48 - 1
"""Points of one issue, reversal or refund (PointProgram keeps amounts in 48 bits)."""

MAX_REDEEM_POINTS: Final = 2**24 - 1
"""Points of one redemption or conversion (PointProgram.RedemptionRecord keeps 24 bits)."""

MAX_VALUE: Final = 2**100
"""An amount of settlement units in a clearing action (deposit, payment, mint)."""

MAX_CAP: Final = 2**112 - 1
"""A merchant's liability or foreign cap in settlement units (AllianceRegistry packs 112)."""

# ---------------------------------------------------------------------- merchants and programs

MAX_ID: Final = 2**48 - 1
"""A merchant id or a clearing period (sequential on chain; bounded so nothing unbounded
reaches SQLite's 64-bit integers or the ABI encoder)."""

MAX_RATE: Final = 2**24 - 1
"""Settlement units per point (AllianceRegistry.setRate refuses more)."""

MAX_EXPIRY_PERIODS: Final = 600
"""Earn periods after which points expire (PointProgram's initialize refuses more)."""

MAX_PERIOD_DAYS: Final = 3660
"""Length of an earn period, in days, as an admission request gives it."""

MAX_PENDING_DAYS: Final = 366
"""Longest refund window (pending points) a program allows, in days."""

MIN_EXPIRY_PERIOD_S: Final = 3600
"""Shortest earn period of a program whose points expire."""

MAX_NAME_LENGTH: Final = 120
"""A merchant's name, in characters (kept in the store, never on chain)."""

SYMBOL_PATTERN: Final = r"^[A-Za-z0-9]{1,11}$"
"""A program's ERC-20 symbol."""

# ---------------------------------------------------------------------- orders, members, time

ORDER_ID_PATTERN: Final = r"^[A-Za-z0-9._:/#-]{1,64}$"
"""A merchant's order id; on chain only its keccak-256 (``order_ref``) is kept."""

ORDER_ID_RE: Final = re.compile(ORDER_ID_PATTERN)

MAX_MEMBER_ID_LENGTH: Final = 128
"""An alliance member id, in characters (a keyed pseudonym goes on chain, never the id)."""

MEMBER_ID_PATTERN: Final = rf"^[^\x00-\x1f\x7f-\x9f]{{1,{MAX_MEMBER_ID_LENGTH}}}$"
"""Printable text only: no control characters (they end up in logs and in exports)."""

MEMBER_ID_RE: Final = re.compile(MEMBER_ID_PATTERN)

ADDRESS_PATTERN: Final = r"^0x[0-9a-fA-F]{40}$"
"""A 0x-prefixed EVM address (any case; a mixed-case one must be a valid EIP-55 checksum)."""

MAX_UNIX_TIME: Final = 2**40 - 1
"""A unix time in seconds (release times and signature deadlines: 40 bits on chain)."""

# ---------------------------------------------------------------------- member signatures

MAX_NONCE: Final = 2**64 - 1
"""A member's signature nonce (unordered, as Permit2: a bit of a 256-bit word)."""

MAX_WORD_POS: Final = 2**248 - 1
"""A word of a member's nonce bitmap (``CancelNonces``): nonce ``word_pos * 256 + bit``."""

MAX_MASK: Final = 2**256 - 1
"""The bits of a ``CancelNonces`` word."""

SIGNATURE_PATTERN: Final = r"^0x([0-9a-fA-F]{2}){65,2048}$"
"""65 bytes for a wallet's ECDSA signature; longer ones (a contract wallet's ERC-1271) up to
2 KiB."""

SIGNATURE_RE: Final = re.compile(SIGNATURE_PATTERN)

MASK_PATTERN: Final = r"^0x[0-9a-fA-F]{1,64}$"
"""A ``CancelNonces`` mask as 0x-hex, as the API takes it."""

# ---------------------------------------------------------------------- batches and pages

MAX_BATCH_ITEMS: Final = 1000
"""Most lines one batch request may carry over HTTP (and the default of the ledger's own
bound, ``Settings.max_batch_items``)."""

MAX_HISTORY_LIMIT: Final = 500
"""Most events one page of a member's history gives."""

MAX_CURSOR: Final = 2**63 - 1
"""A history page cursor (an event row id: SQLite's signed 64 bits)."""

# ---------------------------------------------------------------------- checkers


def bounded_int(value: object, field: str, *, low: int, high: int,
                message: str | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``low..high``; else a validation error on
    ``field`` (``message``, or one that names the bounds)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise LedgerValidationError(message or f"{field} must be an integer", field=field)
    if not low <= value <= high:
        raise LedgerValidationError(message or f"{field} must be between {low} and {high}",
                                    field=field)
    return value


def points(value: object, field: str = "points") -> Points:
    """Points of an issue, reversal or refund: 1 to :data:`MAX_POINTS`."""
    return Points(bounded_int(value, field, low=1, high=MAX_POINTS))


def redeem_points(value: object, field: str = "points") -> Points:
    """Points of one redemption or conversion: 1 to :data:`MAX_REDEEM_POINTS`."""
    return Points(bounded_int(value, field, low=1, high=MAX_REDEEM_POINTS))


def merchant_id(value: object, field: str = "merchant_id") -> MerchantId:
    """A merchant id: 1 to :data:`MAX_ID`."""
    return MerchantId(bounded_int(value, field, low=1, high=MAX_ID,
                                  message=f"{field} must be a merchant id"))


def rate(value: object) -> int:
    """Settlement units per point: 1 to :data:`MAX_RATE`."""
    return bounded_int(value, "rate", low=1, high=MAX_RATE, message=(
        f"rate must be an integer from 1 to {MAX_RATE} (settlement units/point)"))


def value(amount: object, field: str, *, low: int = 0, high: int = MAX_VALUE) -> int:
    """An amount (or a period, a counterparty) of a clearing action: ``low`` to ``high``."""
    return bounded_int(amount, field, low=low, high=high,
                       message=f"{field} must be an integer from {low} to {high}")


def nonce(value: object, field: str = "nonce") -> int:
    """A member's signature nonce: 0 to :data:`MAX_NONCE`."""
    return bounded_int(value, field, low=0, high=MAX_NONCE,
                       message=f"{field} must be 0 to 2^64 - 1")


def unix_time(value: object, field: str, *, low: int = 0) -> int:
    """A unix time in seconds, ``low`` to :data:`MAX_UNIX_TIME`."""
    return bounded_int(value, field, low=low, high=MAX_UNIX_TIME,
                       message=f"{field} must be a unix time in seconds")


def order_id(value: object) -> str:
    """A merchant's order id (:data:`ORDER_ID_PATTERN`). Matched whole: Python's ``$`` also
    matches before a trailing newline, which the schema's regex engine does not."""
    if not isinstance(value, str) or not ORDER_ID_RE.fullmatch(value):
        raise LedgerValidationError(
            "order_id must be 1-64 characters of letters, digits and . _ : / # -",
            field="order_id")
    return value


def signature(value: object) -> str:
    """A member's signature as 0x-hex (:data:`SIGNATURE_PATTERN`)."""
    if not isinstance(value, str) or not SIGNATURE_RE.fullmatch(value):
        raise LedgerValidationError(
            "signature must be 0x-prefixed hex of 65 to 2048 bytes", field="signature")
    return value


def member_id(value: object) -> str:
    """An alliance member id: 1 to :data:`MAX_MEMBER_ID_LENGTH` printable characters (no
    control characters: :data:`MEMBER_ID_PATTERN`), not blank."""
    if not isinstance(value, str) or not value.strip() or not MEMBER_ID_RE.fullmatch(value):
        raise LedgerValidationError(f"member_id must be 1-{MAX_MEMBER_ID_LENGTH} printable "
                                    "characters", field="member_id")
    return value


def address(value: object, field: str = "member") -> Address:
    """A checksummed address; a mixed-case one must be a valid EIP-55 checksum, and the zero
    address is refused."""
    if not isinstance(value, str) or not is_hex_address(value):
        raise LedgerValidationError(f"{field} is not an address", field=field)
    checksummed = checksum_address(value)
    mixed = value[2:] != value[2:].lower() and value[2:] != value[2:].upper()
    if mixed and value != checksummed:
        raise LedgerValidationError(f"{field} has a wrong checksum", field=field)
    if int(value, 16) == 0:
        raise LedgerValidationError(f"{field} cannot be the zero address", field=field)
    return Address(checksummed)


# An order's spend (minor units of the settlement currency) as a points issue request may
# carry it for spend-based offers: the coupon book's order amounts and minimum spends are
# uint64 too (offers2).
MAX_SPEND: Final = 2**64 - 1


def spend(value: object, field: str = "spend") -> int:
    return bounded_int(value, field, low=0, high=MAX_SPEND)
