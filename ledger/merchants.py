"""Operator actions on merchants: admit (with program, rate and credentials), suspend,
reinstate, rates, listing."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak

from . import crypto
from .alliance import Alliance
from .contracts.clients import ProgramConfig
from .errors import LedgerNotFoundError, LedgerValidationError
from .store import repos

log = logging.getLogger(__name__)

# Gas money a new merchant's relaying key gets on a local dev chain (anvil_setBalance).
DEV_FUNDING_WEI = 10_000 * 10**18


@dataclass(frozen=True)
class AdmittedMerchant:
    """A newly admitted merchant; ``secret`` is shown this once and never again."""

    merchant_id: int
    name: str
    account: str
    program: str
    rate: int
    key_id: str
    secret: str


@dataclass(frozen=True)
class MerchantView:
    """A merchant as the operator sees it."""

    merchant_id: int
    name: str
    status: str
    account: str
    program: str | None
    rate: int


def admit_merchant(alliance: Alliance, *, name: str, symbol: str, rate: int,
                   config: ProgramConfig | None = None) -> AdmittedMerchant:
    """Admit a merchant on chain, create its point program and rate, and issue its API
    credentials. The merchant's relaying key is generated here and kept encrypted."""
    name = name.strip()
    if not name or len(name) > 120:
        raise LedgerValidationError("merchant name must be 1-120 characters")
    if not symbol.isalnum() or not 1 <= len(symbol) <= 11:
        raise LedgerValidationError("symbol must be 1-11 letters or digits")
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise LedgerValidationError("rate must be a positive integer (settlement units/point)")
    config = config or ProgramConfig()
    key = crypto.new_signing_key()
    account = Account.from_key(key).address
    contracts = alliance.contracts
    reg = contracts.registry
    op = alliance.operator
    # Only a hash of the off-chain record goes on chain; the name stays in the store.
    record_hash = keccak(text=json.dumps({"name": name, "symbol": symbol}, sort_keys=True))
    receipt = op.transact(to=reg.address, data=reg.encode("admitMerchant", account, record_hash))
    merchant_id = _event_arg(reg.decode_logs(receipt["logs"]), "MerchantAdmitted", "merchantId")
    fac = contracts.factory
    op.transact(to=fac.address, data=fac.encode("createProgram", merchant_id, f"{name} Points",
                                                symbol, config.as_tuple()))
    op.transact(to=reg.address, data=reg.encode("setRate", merchant_id, rate))
    program = reg.merchant(merchant_id).program
    assert program is not None
    if alliance.gateway.is_dev_chain:
        alliance.gateway.rpc("anvil_setBalance", [account, hex(DEV_FUNDING_WEI)])
    with alliance.store.session() as s:
        repos.add_merchant(s, merchant_id=merchant_id, name=name, account=account,
                           program=program, signing_key=alliance.master_key.encrypt(key))
        key_id, secret = repos.create_credential(s, alliance.master_key,
                                                 merchant_id=merchant_id, role="merchant")
    log.info("admitted merchant %d (%s) with program %s", merchant_id, name, program)
    return AdmittedMerchant(merchant_id, name, account, program, rate, key_id, secret)


def create_admin_credential(alliance: Alliance) -> tuple[str, str]:
    """New operator credentials: (key id, secret), the secret shown once."""
    with alliance.store.session() as s:
        return repos.create_credential(s, alliance.master_key, merchant_id=None, role="admin")


def suspend_merchant(alliance: Alliance, *, merchant_id: int) -> MerchantView:
    """Stop a merchant from issuing, reversing and redeeming (on chain)."""
    return _change_status(alliance, merchant_id, "suspendMerchant", "suspended")


def reinstate_merchant(alliance: Alliance, *, merchant_id: int) -> MerchantView:
    """Let a suspended merchant act again (on chain)."""
    return _change_status(alliance, merchant_id, "reinstateMerchant", "active")


def _change_status(alliance: Alliance, merchant_id: int, fn: str, status: str) -> MerchantView:
    _known(alliance, merchant_id)
    reg = alliance.contracts.registry
    alliance.operator.transact(to=reg.address, data=reg.encode(fn, merchant_id))
    with alliance.store.session() as s:
        repos.set_merchant_status(s, merchant_id, status)
    return get_merchant(alliance, merchant_id=merchant_id)


def set_rate(alliance: Alliance, *, merchant_id: int, rate: int) -> MerchantView:
    """Set a program's value in settlement units per point (on chain)."""
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise LedgerValidationError("rate must be a positive integer")
    _known(alliance, merchant_id)
    reg = alliance.contracts.registry
    alliance.operator.transact(to=reg.address, data=reg.encode("setRate", merchant_id, rate))
    return get_merchant(alliance, merchant_id=merchant_id)


def get_merchant(alliance: Alliance, *, merchant_id: int) -> MerchantView:
    """The merchant's record: name from the store, status, program and rate from the chain."""
    with alliance.store.session() as s:
        row = repos.get_merchant(s, merchant_id)
        if row is None:
            raise LedgerNotFoundError(f"no merchant {merchant_id}", merchant_id=merchant_id)
        name = row.name
    rec = alliance.contracts.registry.merchant(merchant_id)
    return MerchantView(merchant_id, name, rec.status, rec.account, rec.program,
                        alliance.contracts.registry.rate_of(merchant_id))


def list_merchants(alliance: Alliance) -> list[MerchantView]:
    """Every merchant of the alliance."""
    with alliance.store.session() as s:
        ids = [m.id for m in repos.list_merchants(s)]
    return [get_merchant(alliance, merchant_id=i) for i in ids]


def merchant_signing_key(alliance: Alliance, merchant_id: int) -> bytes:
    with alliance.store.read_session() as s:
        row = repos.get_merchant(s, merchant_id)
        if row is None:
            raise LedgerNotFoundError(f"no merchant {merchant_id}", merchant_id=merchant_id)
        return alliance.master_key.decrypt(row.signing_key_enc)


def _known(alliance: Alliance, merchant_id: int) -> None:
    with alliance.store.session() as s:
        if repos.get_merchant(s, merchant_id) is None:
            raise LedgerNotFoundError(f"no merchant {merchant_id}", merchant_id=merchant_id)


def _event_arg(events: list[tuple[str, dict[str, Any], Any]], name: str, arg: str) -> int:
    for ev_name, args, _ in events:
        if ev_name == name:
            return int(args[arg])
    raise LedgerNotFoundError(f"{name} not emitted")
