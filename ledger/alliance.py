"""The running alliance: chain connection, contracts, store and one sender per signing key.

``Alliance.open(settings)`` is the one way in for the API, the CLI, scripts and tests: it
reaches (or starts) the chain, migrates the store, finds (or makes) the deployment, and hands
out the per-key transaction senders and the outbox workers. Three alliance keys, one role
each: ``admin`` (proposes and executes through the timelock), ``operator`` (day-to-day) and
``minter`` (settlement tokens).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from eth_account import Account
from sqlalchemy.orm import Session

from .chain import anvil
from .chain.gateway import ChainGateway
from .chain.sender import TransactionSender
from .contracts.deploy import Contracts, load_or_deploy
from .crypto import MasterKey
from .errors import LedgerConfigError
from .settings import ANVIL_KEYS, Settings
from .store import repos
from .store.db import Store, migrate, private_dir

log = logging.getLogger(__name__)


class StoreNonces:
    """The nonce manager of one signer, persisted in the store so restarts and several
    processes never hand out the same nonce twice."""

    def __init__(self, store: Store, gateway: ChainGateway, address: str) -> None:
        self.store = store
        self.gateway = gateway
        self.address = address

    def reserve(self, count: int) -> int:
        with self.store.session() as s:
            return self.reserve_in(s, count)

    def reserve_in(self, session: Session, count: int) -> int:
        """Reserve ``count`` nonces inside the caller's write transaction (the outbox claims
        operations and reserves their nonces in one)."""
        return repos.reserve_nonces(
            session, chain_id=self.gateway.chain_id, address=self.address, count=count,
            chain_nonce=lambda: self.gateway.nonce(self.address, "pending"))

    def resync(self) -> None:
        """Align the counter with the node after a restart (drops gaps left by a crash)."""
        with self.store.session() as s:
            repos.reset_nonce(s, chain_id=self.gateway.chain_id, address=self.address,
                              next_nonce=self.gateway.nonce(self.address, "pending"))


@dataclass
class Alliance:
    """Everything the service needs, opened once per process."""

    settings: Settings
    gateway: ChainGateway
    store: Store
    contracts: Contracts
    master_key: MasterKey
    operator: TransactionSender
    admin: TransactionSender
    minter: TransactionSender
    _senders: dict[str, TransactionSender] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[object] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings) -> Alliance:
        """Connect to the chain (starting a local anvil if no RPC URL is set), migrate the
        store, and load or create the deployment."""
        private_dir(settings.data_dir)  # keys, credentials and the store: owner-only (0700)
        url = settings.rpc_url or anvil.ensure_running(settings)
        gateway = ChainGateway(url, expected_chain_id=settings.chain_id)
        migrate(settings.effective_database_url)
        store = Store(settings.effective_database_url)
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
            TransactionSender(gateway, k, StoreNonces(store, gateway, Account.from_key(k).address),
                              receipt_timeout_s=settings.receipt_timeout_s) for k in keys)
        contracts = load_or_deploy(settings, gateway, admin, operator=operator.address,
                                   minter=minter.address)
        return cls(settings, gateway, store, contracts, master, operator, admin, minter)

    def sender_for_key(self, private_key: bytes) -> TransactionSender:
        """The one sender of this key in this process."""
        address = Account.from_key(private_key).address
        with self._lock:
            sender = self._senders.get(address)
            if sender is None:
                sender = TransactionSender(
                    self.gateway, private_key, StoreNonces(self.store, self.gateway, address),
                    receipt_timeout_s=self.settings.receipt_timeout_s)
                self._senders[address] = sender
            return sender

    def start_workers(self) -> None:
        """Start the outbox workers that send queued operations."""
        from .expiry import ExpirySweeper
        from .outbox import OutboxWorker

        if not self._workers:
            worker = OutboxWorker(self)
            worker.start()
            self._workers.append(worker)
            sweeper = ExpirySweeper(self)
            sweeper.start()
            self._workers.append(sweeper)

    def stop_workers(self) -> None:
        from .expiry import ExpirySweeper
        from .outbox import OutboxWorker

        for w in self._workers:
            assert isinstance(w, OutboxWorker | ExpirySweeper)
            w.stop()
        self._workers.clear()

    def close(self) -> None:
        self.stop_workers()
        self.store.dispose()
