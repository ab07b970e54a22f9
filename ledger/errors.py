"""Every error a caller of the ledger can meet.

The whole tree, in one place (callers catch the most specific class they handle)::

    LedgerError
    ├── LedgerValidationError (ValueError)      bad input, rejected before anything is written
    │   ├── LedgerSignatureError                a member's signature that cannot land: another
    │   │                                       signer or domain, deadline out of range, nonce
    │   │                                       already used (``code`` says which)
    │   ├── LedgerExpiredError                  something that was valid for a while no longer
    │   │                                       is (a payment request; ``code`` says which)
    │   └── ItemCodeError                       a scanned or given item code that cannot be one:
    │                                           bad GTIN check digit, serial, secret, URI
    ├── LedgerNotFoundError (LookupError)       unknown merchant, member, operation, order …
    ├── LedgerPermissionError (PermissionError) acting on another merchant's program or orders
    │   └── ConsentRequiredError                reading a member's data the member has not
    │                                           granted this merchant (``consent-required``)
    ├── LedgerConflictError                     idempotency key reused with another body, …
    ├── LedgerConfigError                       settings that cannot work (no key, bad URL …)
    ├── LedgerIntegrityError                    a broken invariant of the ledger's own records
    │                                           (a merchant without the program it must have …):
    │                                           a defect or a damaged store, never the caller's
    ├── StoreUnavailableError                   the database cannot answer now (outage, lock
    │                                           timeout): retry later
    ├── ChainError                              the node could not be reached or misbehaved
    │   ├── ChainUnavailableError               the node cannot be reached (connection refused,
    │   │   (ConnectionError)                   reset, DNS …): retry later
    │   ├── SignerUnfundedError                 a signing key holds too little ether for the
    │   │                                       gas of what it must send: fund it, retry later
    │   └── ChainTimeoutError (TimeoutError)    a receipt did not arrive in time
    ├── ContractRevertError                     a contract reverted; ``name`` is the Solidity
    │                                           custom error (``PointsOrderRefUsed`` …)
    └── CompilerError                           solc rejected a source or could not run

Lower-level errors (web3, RPC, SQLAlchemy) are mapped to these once, at the boundary that
meets them, with ``raise … from exc``: web3's in ``ledger/chain/gateway.py``, SQLAlchemy's
operational errors in ``ledger/store/db.py``; nothing above those boundaries sees a web3 or a
SQLAlchemy exception, and nothing the ledger raises on purpose is a bare ``ValueError``.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose.

    ``code`` is a stable machine-readable identifier, used as the problem type's last
    path segment over HTTP.
    """

    code: str = "ledger-error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details
        if code is not None:  # a more specific code than the class's, for any class
            self.code = code


class LedgerValidationError(LedgerError, ValueError):
    """The input was malformed or out of range; nothing was written."""

    code = "validation-error"


class LedgerSignatureError(LedgerValidationError):
    """A member's signed message that would fail on chain, refused before it is queued.

    ``code`` is ``signature-mismatch`` (not the member's signature over this message in this
    program's domain), ``deadline-passed``, ``deadline-too-far`` or ``nonce-used``."""

    code = "signature-mismatch"


class LedgerExpiredError(LedgerValidationError):
    """A time-limited thing (a payment request, a sign-in nonce) is past its expiry; nothing
    was written. ``code`` says which (``payment-request-expired`` ...)."""

    code = "expired"


class ItemCodeError(LedgerValidationError):
    """An item code (GS1 Digital Link URI, GTIN, serial, label secret) that is malformed:
    ``code`` is ``invalid-gtin``, ``invalid-serial``, ``invalid-secret`` or
    ``invalid-item-code``."""

    code = "invalid-item-code"


class LedgerNotFoundError(LedgerError, LookupError):
    """The named thing does not exist (``code`` may name it: ``offers-gift-unknown`` ...)."""

    code = "not-found"


class LedgerPermissionError(LedgerError, PermissionError):
    """The caller may not act on this thing (another merchant's program or order)."""

    code = "forbidden"


class ConsentRequiredError(LedgerPermissionError):
    """A merchant asked for a member's data (profile fields, history at other merchants)
    that the member has not granted it on chain, or has revoked."""

    code = "consent-required"


class LedgerConflictError(LedgerError):
    """The request conflicts with what is recorded (reused idempotency key, …)."""

    code = "conflict"


class LedgerGoneError(LedgerError):
    """The named thing existed but is no more usable (an expired one-time link code);
    nothing was written. ``code`` says which (``link-code-expired`` ...)."""

    code = "gone"


class LedgerRateLimitedError(LedgerError):
    """Too many of these requests for the same thing in a short time (link codes for one
    member id); nothing was written. Worth retrying later."""

    code = "rate-limited"


class LedgerConfigError(LedgerError):
    """The settings cannot work as given."""

    code = "config-error"


class LedgerIntegrityError(LedgerError):
    """An invariant of the ledger's own records does not hold (a merchant row without the
    point program every admitted merchant has, …): a defect or a damaged store. Never the
    caller's fault, never "not found"; the message is for the log, not for the caller."""

    code = "integrity-error"


class StoreUnavailableError(LedgerError):
    """The database could not answer now (it is down, or a lock was not granted in time);
    nothing was written. Worth retrying later."""

    code = "store-unavailable"


class ReadModelNotReadyError(StoreUnavailableError):
    """The indexed read model a read needs has not been built yet (the indexer has not run
    its first round since the store was created). Worth retrying shortly."""

    code = "read-model-not-ready"


class ChainError(LedgerError):
    """The chain node could not be reached, or answered in a way we cannot use."""

    code = "chain-error"


class SignerUnfundedError(ChainError):
    """A signing key cannot pay the gas of its transaction (the node refused it for
    insufficient funds, or its balance is below the upfront cost). Nothing was sent; the
    operation waits until the key is funded (``alliance merchant fund``, or a funder key)."""

    code = "signer-unfunded"


class ChainUnavailableError(ChainError, ConnectionError):
    """The chain node cannot be reached at all (connection refused or reset, no route):
    nothing was sent. Worth retrying later."""

    code = "chain-unavailable"


class ChainTimeoutError(ChainError, TimeoutError):
    """A transaction receipt or the node itself did not answer in time."""

    code = "chain-timeout"


class CompilerError(LedgerError):
    """The Solidity compiler failed or rejected a source."""

    code = "compiler-error"


class ContractRevertError(LedgerError):
    """A contract call reverted.

    ``name`` is the Solidity custom error's name (``PointsOrderRefUsed``) and ``args`` its
    decoded arguments, or ``name == "Unknown"`` with the raw revert data in ``details``.
    """

    code = "contract-revert"

    def __init__(self, name: str, args: tuple[Any, ...] = (), message: str | None = None,
                 **details: Any) -> None:
        super().__init__(message or f"contract reverted with {name}{args!r}", **details)
        self.name = name
        self.args_ = args
