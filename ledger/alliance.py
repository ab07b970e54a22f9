"""The running alliance: chain connection, contracts, store and one sender per signing key.

``Alliance.open(settings)`` is the one way in for the API, the CLI, scripts and tests: it
reaches (or starts) the chain, migrates the store, finds (or makes) the deployment, and hands
out the per-key transaction senders. It runs nothing in the background: the workers are
started and stopped by :mod:`ledger.runtime`. Three alliance keys, one role
each: ``admin`` (proposes and executes through the timelock), ``operator`` (day-to-day) and
``minter`` (settlement tokens).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from eth_account import Account

from .chain import anvil
from .chain.funding import Funder
from .chain.gateway import ChainGateway
from .chain.sender import StoreSender
from .crypto import MasterKey
from .deployment import Contracts, load_or_deploy
from .errors import LedgerConfigError
from .settings import ANVIL_KEYS, Settings
from .store.db import Store, migrate, private_dir

log = logging.getLogger(__name__)


@dataclass
class Alliance:
    """Everything the service needs, opened once per process."""

    settings: Settings
    gateway: ChainGateway
    store: Store
    contracts: Contracts
    master_key: MasterKey
    operator: StoreSender
    admin: StoreSender
    minter: StoreSender
    _senders: dict[str, StoreSender] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _funder: Funder | None = None

    @classmethod
    def open(cls, settings: Settings) -> Alliance:
        """Connect to the chain (starting a local anvil if no RPC URL is set), migrate the
        store, and load or create the deployment."""
        private_dir(settings.data_dir)  # keys, credentials and the store: owner-only (0700)
        url = settings.rpc_url or anvil.ensure_running(settings)
        gateway = ChainGateway(url, expected_chain_id=settings.chain_id,
                               priority_fee=settings.priority_fee_wei)
        migrate(settings.effective_database_url)
        store = Store(settings.effective_database_url,
                      busy_timeout_s=settings.store_busy_timeout_s)
        master = MasterKey.load(settings)
        keys = [settings.operator_key.get_secret_value(), settings.admin_key.get_secret_value(),
                settings.minter_key.get_secret_value()]
        if not gateway.is_dev_chain:
            if any(k in ANVIL_KEYS for k in keys):
                raise LedgerConfigError("the anvil development keys are for a local dev chain "
                                        "only: set ALLIANCE_ADMIN_KEY, ALLIANCE_OPERATOR_KEY "
                                        "and ALLIANCE_MINTER_KEY")
            if len(set(keys)) != len(keys):
                raise LedgerConfigError("admin, operator and minter must be distinct keys")
        operator, admin, minter = (
            StoreSender(gateway, k, store, receipt_timeout_s=settings.receipt_timeout_s)
            for k in keys)
        contracts = load_or_deploy(settings, gateway, admin, operator=operator.address,
                                   minter=minter.address)
        return cls(settings, gateway, store, contracts, master, operator, admin, minter)

    def sender_for_key(self, private_key: bytes) -> StoreSender:
        """The one sender of this key in this process."""
        with self._lock:
            return self.sender_for_key_locked(private_key)

    def sender_for_key_locked(self, private_key: bytes | str) -> StoreSender:
        address = Account.from_key(private_key).address
        sender = self._senders.get(address)
        if sender is None:
            sender = StoreSender(self.gateway, private_key, self.store,
                                 receipt_timeout_s=self.settings.receipt_timeout_s)
            self._senders[address] = sender
        return sender

    @property
    def funder(self) -> Funder:
        """Tops up relaying keys from the funder key (the operator's unless one is set)."""
        with self._lock:
            if self._funder is None:
                key = self.settings.funder_key
                sender = (self.operator if key is None
                          else self.sender_for_key_locked(key.get_secret_value()))
                self._funder = Funder(self.gateway, sender,
                                      target_wei=self.settings.relayer_funding_wei,
                                      low_wei=self.settings.relayer_min_balance_wei)
            return self._funder

    def close(self) -> None:
        self.store.dispose()
