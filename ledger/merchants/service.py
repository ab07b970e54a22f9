"""Actions on merchants: admit (with program, rate, payout address and credentials), rates,
payout addresses and reinstatement (admin actions, through the timelock), suspension (the
operator's immediate emergency brake), listing; and executing pending admin actions."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address
from eth_utils.crypto import keccak
from sqlalchemy.orm import Session

from .. import crypto, governance, limits
from ..alliance import Alliance
from ..errors import (
    ChainError,
    LedgerConflictError,
    LedgerIntegrityError,
    LedgerNotFoundError,
    LedgerValidationError,
)
from ..limits import MAX_EXPIRY_PERIODS, MAX_PENDING_DAYS, MIN_EXPIRY_PERIOD_S
from ..store import repos
from ..types import Address, MerchantId
from . import repos as merchant_repos
from .clients import ProgramConfig
from .repos import MerchantRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdmittedMerchant:
    """A newly admitted merchant; ``secret`` is shown this once and never again."""

    merchant_id: MerchantId
    name: str
    account: Address
    program: Address
    rate: int
    key_id: str
    secret: str
    payout: Address = Address("")


@dataclass(frozen=True)
class MerchantView:
    """A merchant as the operator sees it."""

    merchant_id: MerchantId
    name: str
    status: str
    account: Address
    program: Address | None
    rate: int
    payout: Address | None = None


@dataclass(frozen=True)
class PendingAdmission:
    """An admission scheduled in the timelock, not yet executed (``alliance admin execute``)."""

    action_id: str
    name: str
    account: str
    payout: str
    ready_at: int


_check_rate = limits.rate


def _check_config(config: ProgramConfig) -> ProgramConfig:
    # The program's initialize rules (PointsInvalidConfig), checked before anything is sent.
    if config.expiry_periods < 0 or config.expiry_periods > MAX_EXPIRY_PERIODS:
        raise LedgerValidationError(f"expiry periods must be 0-{MAX_EXPIRY_PERIODS}",
                                    field="expiry_periods")
    if config.expiry_periods and config.period_length < MIN_EXPIRY_PERIOD_S:
        raise LedgerValidationError("an expiry period is at least one hour",
                                    field="period_days")
    if not 0 < config.period_length < 2**32:
        raise LedgerValidationError("the period length is out of range", field="period_days")
    if not 0 <= config.max_pending_days <= MAX_PENDING_DAYS:
        raise LedgerValidationError(f"max pending days must be 0-{MAX_PENDING_DAYS}",
                                    field="max_pending_days")
    return config


def _check_payout(payout: str | None) -> str | None:
    if payout is None:
        return None
    if not is_checksum_address(payout) and not is_hex_address(payout):
        raise LedgerValidationError("payout must be an address", field="payout")
    return to_checksum_address(payout)


def propose_admission(alliance: Alliance, *, name: str, symbol: str, rate: int,
                      config: ProgramConfig | None = None, payout: str | None = None
                      ) -> AdmittedMerchant | PendingAdmission:
    """Admit a merchant with its point program, rate and payout address in one timelock
    operation (one transaction on chain: all or nothing), and issue its API credentials.

    Every bound is checked (and the call simulated as the timelock) before anything is sent.
    The merchant's relaying key is generated here and recorded, encrypted, with the pending
    action before the first transaction, so a crash at any point leaves nothing on chain the
    store cannot finish (``alliance admin execute``). ``payout`` unset: a new address whose
    key is kept encrypted by the service (a dev default; real merchants give their own).
    With a zero timelock delay the admission completes at once; else it is pending.
    """
    name = name.strip()
    if not name or len(name) > limits.MAX_NAME_LENGTH:
        raise LedgerValidationError(f"merchant name must be 1-{limits.MAX_NAME_LENGTH} "
                                    "characters", field="name")
    if not symbol.isalnum() or not 1 <= len(symbol) <= 11:
        raise LedgerValidationError("symbol must be 1-11 letters or digits", field="symbol")
    rate = _check_rate(rate)
    config = _check_config(config or ProgramConfig())
    payout_address = _check_payout(payout)
    key = crypto.new_signing_key()
    account = Account.from_key(key).address
    payout_key = b""
    if payout_address is None:
        payout_key = crypto.new_signing_key()
        payout_address = Account.from_key(payout_key).address
    reg = alliance.contracts.registry
    # Only a hash of the off-chain record goes on chain; the name stays in the store.
    record_hash = keccak(text=json.dumps({"name": name, "symbol": symbol}, sort_keys=True))
    data = reg.encode("admitMerchantWithProgram", (
        account, payout_address, record_hash, rate, f"{name} Points", symbol,
        config.as_tuple()))
    details = {"name": name, "symbol": symbol, "rate": rate, "account": account,
               "payout": payout_address, "key": key.hex(), "payout_key": payout_key.hex()}
    action = governance.schedule(alliance, kind="admit", target=reg.address, data=data,
                               summary=f"admit {name} ({symbol}) at {rate} units/point",
                               details=details)
    done = execute_action(alliance, action.id) if _due_now(alliance, action) else None
    if isinstance(done, AdmittedMerchant):
        return done
    return PendingAdmission(action.id, name, account, payout_address, action.ready_at)


def admit_merchant(alliance: Alliance, *, name: str, symbol: str, rate: int,
                   config: ProgramConfig | None = None, payout: str | None = None
                   ) -> AdmittedMerchant:
    """Admit a merchant at once (a zero timelock delay: dev chains, tests, the demo)."""
    out = propose_admission(alliance, name=name, symbol=symbol, rate=rate, config=config,
                            payout=payout)
    if isinstance(out, PendingAdmission):
        raise LedgerConflictError(f"the admission is scheduled as admin action {out.action_id}"
                                  f"; execute it once ready (at {out.ready_at})")
    return out


def _complete_admission(alliance: Alliance, action: governance.AdminAction) -> AdmittedMerchant:
    """Record an admission the chain executed: the merchant, its key and its credentials."""
    d = action.details
    reg = alliance.contracts.registry
    merchant_id = reg.merchant_id_of(d["account"])
    if merchant_id == 0:
        raise LedgerNotFoundError(f"admission {action.id} is not on chain")
    program = reg.merchant(merchant_id).program
    if program is None:
        raise LedgerIntegrityError(f"admission {action.id} put merchant {merchant_id} on chain "
                                   "without its point program")
    fund_relaying_key(alliance, d["account"])
    with alliance.store.session() as s:
        if merchant_repos.get_merchant(s, merchant_id) is None:
            merchant_repos.add_merchant(s, merchant_id=merchant_id, name=d["name"],
                               account=d["account"], program=program,
                               signing_key=alliance.master_key.encrypt(bytes.fromhex(d["key"])))
            if d.get("payout_key"):
                repos.get_or_create_secret(s, alliance.master_key, f"payout:{merchant_id}",
                                           lambda: bytes.fromhex(d["payout_key"]))
        key_id, secret = repos.create_credential(s, alliance.master_key,
                                                 merchant_id=merchant_id, role="merchant")
    log.info("admitted merchant %d (%s) with program %s", merchant_id, d["name"], program)
    return AdmittedMerchant(MerchantId(merchant_id), d["name"], Address(d["account"]),
                            Address(program), int(d["rate"]), key_id, secret,
                            Address(d["payout"]))


def fund_relaying_key(alliance: Alliance, account: str) -> int | None:
    """Give a merchant's relaying key gas money from the funder key, by a plain transfer
    (nothing on a chain whose gas is free); give its balance, or None if it could not be
    funded: the admission stands, and its operations wait, visibly, until it is."""
    try:
        return alliance.funder.ensure(account)
    except ChainError as exc:
        log.warning("relaying key %s is not funded: %s", account, exc.message)
        return None


def fund_merchant(alliance: Alliance, *, merchant_id: int, wei: int | None = None) -> int:
    """Send a merchant's relaying key ``wei`` from the funder key now (unset: what tops it up
    to ``relayer_funding_wei``); give its balance afterwards."""
    if wei is not None and not 0 < wei < 2**128:
        raise LedgerValidationError("the amount must be a positive number of wei", field="wei")
    with alliance.store.read_session() as s:
        account = require_merchant(s, merchant_id).account_address
    if wei is None:
        wei = max(alliance.settings.relayer_funding_wei - alliance.gateway.balance(account), 0)
        if wei == 0:
            return alliance.gateway.balance(account)
    return alliance.funder.send(account, wei)


def execute_action(alliance: Alliance, action_id: str) -> AdmittedMerchant | MerchantView | None:
    """Execute a pending admin action once ready and finish what it needs off chain (an
    admission: the store's record and credentials, shown once; a reinstatement: the store's
    status). A retry after a crash completes what the chain already did."""
    action = governance.find(alliance, action_id)
    governance.execute(alliance, action)
    out: AdmittedMerchant | MerchantView | None = None
    if action.kind == "admit":
        out = _complete_admission(alliance, action)
    elif action.kind == "reinstate":
        mid = MerchantId(int(action.details["merchant_id"]))
        with alliance.store.session() as s:
            merchant_repos.set_merchant_status(s, mid, "active")
        out = get_merchant(alliance, merchant_id=mid)
    elif "merchant_id" in action.details:
        mid = MerchantId(int(action.details["merchant_id"]))
        with alliance.store.session() as s:
            known = merchant_repos.get_merchant(s, mid) is not None
        out = get_merchant(alliance, merchant_id=mid) if known else None
    governance.finish(alliance, action)
    return out


def govern(alliance: Alliance, *, kind: str, target: str, data: bytes, summary: str,
           details: dict[str, Any] | None = None) -> governance.AdminAction | None:
    """Schedule an admin action; execute it at once when the delay is zero. Gives the pending
    action, or None once executed."""
    action = governance.schedule(alliance, kind=kind, target=target, data=data, summary=summary,
                               details=details)
    if _due_now(alliance, action):
        execute_action(alliance, action.id)
        return None
    return action


def _due_now(alliance: Alliance, action: governance.AdminAction) -> bool:
    """A zero delay: the action can run in the next block."""
    return alliance.contracts.timelock.min_delay() == 0


def create_admin_credential(alliance: Alliance) -> tuple[str, str]:
    """New operator credentials: (key id, secret), the secret shown once."""
    with alliance.store.session() as s:
        return repos.create_credential(s, alliance.master_key, merchant_id=None, role="admin")


def suspend_merchant(alliance: Alliance, *, merchant_id: MerchantId) -> MerchantView:
    """Stop a merchant from issuing, reversing and redeeming (on chain, at once: the
    operator's emergency brake)."""
    _known(alliance, merchant_id)
    reg = alliance.contracts.registry
    alliance.operator.transact(to=reg.address, data=reg.encode("suspendMerchant", merchant_id))
    with alliance.store.session() as s:
        merchant_repos.set_merchant_status(s, merchant_id, "suspended")
    return get_merchant(alliance, merchant_id=merchant_id)


def reinstate_merchant(alliance: Alliance, *, merchant_id: MerchantId) -> MerchantView:
    """Let a suspended merchant act again: an admin action through the governance. Gives the
    merchant (still suspended while the reinstatement is pending)."""
    return _govern_registry(alliance, merchant_id, "reinstate", "reinstateMerchant", (),
                            f"reinstate merchant {merchant_id}")


def set_rate(alliance: Alliance, *, merchant_id: MerchantId, rate: int) -> MerchantView:
    """Set a program's value in settlement units per point (through the timelock)."""
    rate = _check_rate(rate)
    return _govern_registry(alliance, merchant_id, "set_rate", "setRate", (rate,),
                            f"set merchant {merchant_id}'s rate to {rate}")


def set_payout(alliance: Alliance, *, merchant_id: MerchantId, payout: str) -> MerchantView:
    """Change where the clearing pays a merchant (through the timelock)."""
    address = _check_payout(payout)
    return _govern_registry(alliance, merchant_id, "set_payout", "setPayout", (address,),
                            f"pay merchant {merchant_id} at {address}")


def _govern_registry(alliance: Alliance, merchant_id: MerchantId, kind: str, fn: str,
                     args: tuple[Any, ...], summary: str) -> MerchantView:
    """Schedule (and, with no delay, execute) the registry call ``fn(merchant_id, *args)``
    as an admin action through the timelock; gives the merchant as it is now."""
    _known(alliance, merchant_id)
    reg = alliance.contracts.registry
    govern(alliance, kind=kind, target=reg.address, data=reg.encode(fn, merchant_id, *args),
           summary=summary, details={"merchant_id": merchant_id})
    return get_merchant(alliance, merchant_id=merchant_id)


def get_merchant(alliance: Alliance, *, merchant_id: MerchantId) -> MerchantView:
    """The merchant's record: name from the store, status, program and rate from the chain."""
    with alliance.store.session() as s:
        name = require_merchant(s, merchant_id).name
    reg = alliance.contracts.registry
    rec = reg.merchant(merchant_id)
    return MerchantView(MerchantId(merchant_id), name, rec.status, Address(rec.account),
                        None if rec.program is None else Address(rec.program),
                        reg.rate_of(merchant_id), Address(reg.payout_of(merchant_id)))


def list_merchants(alliance: Alliance) -> list[MerchantView]:
    """Every merchant of the alliance."""
    with alliance.store.session() as s:
        ids = [m.id for m in merchant_repos.list_merchants(s)]
    return [get_merchant(alliance, merchant_id=MerchantId(i)) for i in ids]


def merchant_signing_key(alliance: Alliance, merchant_id: MerchantId) -> bytes:
    with alliance.store.read_session() as s:
        return alliance.master_key.decrypt(require_merchant(s, merchant_id).signing_key_enc)


def _known(alliance: Alliance, merchant_id: MerchantId) -> None:
    with alliance.store.read_session() as s:
        require_merchant(s, merchant_id)


# ---------------------------------------------------------------------- the one lookup


def require_merchant(session: Session, merchant_id: MerchantId | int, *,
                     program: bool = False) -> MerchantRow:
    """The store's record of a merchant, or LedgerNotFoundError if there is none.

    ``program``: the caller needs its point program. Every admitted merchant has one (the
    registry admits a merchant and creates its program in one transaction), so a record
    without it is a broken invariant, LedgerIntegrityError, not "not found".

    Suspension is not checked here: the chain refuses a suspended merchant's actions
    (``MerchantSuspended``, at the gas estimate), and the store's status can lag the chain
    (a reinstatement executed by the timelock)."""
    row = merchant_repos.get_merchant(session, merchant_id)
    if row is None:
        raise LedgerNotFoundError(f"no merchant {merchant_id}", merchant_id=merchant_id)
    if program:
        program_of(row)
    return row


def program_of(merchant: MerchantRow) -> Address:
    """The address of a merchant's point program (LedgerIntegrityError if its record has
    none: see :func:`require_merchant`)."""
    if merchant.program_address is None:
        raise LedgerIntegrityError(f"merchant {merchant.id} is recorded without the point "
                                   "program every admitted merchant has",
                                   merchant_id=merchant.id)
    return Address(merchant.program_address)


