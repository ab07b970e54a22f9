"""Settings of the ledger service, read once from the environment (prefix ``ALLIANCE_``).

Nothing reads settings at import time: call :func:`get_settings` (cached) where they are
needed, or build a :class:`Settings` directly in tests.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import limits

# anvil's well-known development accounts #0-#2: public knowledge, fine for a local chain only.
# Each role has its own key by default, so the dev chain runs the same trust model.
ANVIL_OPERATOR_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_ADMIN_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ANVIL_MINTER_KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"
ANVIL_KEYS = frozenset({ANVIL_OPERATOR_KEY, ANVIL_ADMIN_KEY, ANVIL_MINTER_KEY})

# Where the service runs its indexer (see Settings.indexer_mode).
IndexerMode = Literal["process", "thread", "off"]


class Settings(BaseSettings):
    """All knobs of the service; each field documents itself."""

    model_config = SettingsConfigDict(env_prefix="ALLIANCE_", env_file=None, extra="ignore")

    data_dir: Path = Field(default=Path(".alliance"))
    """Where the local chain state, the SQLite store, artifacts and keys live."""

    rpc_url: str | None = None
    """JSON-RPC URL of an existing EVM node. Unset: start (or reuse) a local anvil."""

    chain_id: int | None = None
    """Expected chain id of ``rpc_url``; the service refuses to run against another chain."""

    anvil_port: int | None = None
    """Loopback port for the local anvil; unset picks a free one and remembers it."""

    anvil_block_time: float | None = None
    """Seconds between anvil blocks; unset mines one block per transaction (automine)."""

    operator_key: SecretStr = SecretStr(ANVIL_OPERATOR_KEY)
    """Private key of the alliance operator (OPERATOR_ROLE: suspends in an emergency, closes
    periods, anchors statements, settles, sweeps stray settlement tokens)."""

    admin_key: SecretStr = SecretStr(ANVIL_ADMIN_KEY)
    """Private key of the alliance admin: deploys, then proposes and executes through the
    timelock (admissions, rates, caps, acceptance, refund window, accounts, payouts,
    reinstatement)."""

    minter_key: SecretStr = SecretStr(ANVIL_MINTER_KEY)
    """Private key of the settlement minter (SettlementToken MINTER_ROLE)."""

    funder_key: SecretStr | None = None
    """Private key whose ether pays merchant relaying keys' gas: each new key is funded, and
    topped up when low, by a plain transfer from it. Unset: the operator key funds them. Not
    needed on a chain whose gas costs nothing (``priority_fee_wei`` 0 and a zero base fee)."""

    relayer_funding_wei: int = Field(default=10 * 10**18, ge=0)
    """Balance a relaying key is topped up to (wei); 0: the service funds no key (fund them
    by hand, e.g. ``alliance merchant fund ID``)."""

    relayer_min_balance_wei: int = Field(default=1 * 10**18, ge=0)
    """Balance below which a relaying key is topped up (wei)."""

    priority_fee_wei: int | None = Field(default=None, ge=0)
    """Priority fee (tip) per gas of every transaction. Unset: the node's suggestion
    (``eth_maxPriorityFeePerGas``). 0 on a zero-gas-price chain (Besu ``zeroBaseFee`` and
    ``--min-gas-price=0``), so no key needs ether."""

    timelock_delay_s: int = Field(default=0, ge=0, le=30 * 86400)
    """Seconds between scheduling an admin action and executing it. 0 (execute at once) is
    allowed only on a local dev chain."""

    database_url: str | None = None
    """SQLAlchemy URL of the store; unset uses SQLite in ``data_dir``."""

    store_busy_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """How long a SQLite writer waits for another process's lock before the request fails
    as ``store-unavailable`` (503, Retry-After)."""

    master_key: SecretStr | None = None
    """Key (urlsafe base64, 32 bytes) encrypting secrets at rest; unset: kept in data_dir."""

    solc_binary: Path | None = None
    """A native solc to use instead of solc-js (must be the pinned version)."""

    artifacts_dir: Path | None = None
    """Where compiled artifacts are cached; unset: ``data_dir/artifacts``."""

    confirmations: int = 0
    """Blocks on top of a receipt before an operation counts as confirmed."""

    batch_max: int = 200
    """Most operations the sender packs into one batch transaction."""

    batch_window_ms: int = 20
    """How long the sender waits to fill a batch before sending what it has."""

    receipt_timeout_s: float = 60.0
    """How long to wait for a receipt before rebroadcasting with a fee bump."""

    block_time_s: float = 0.0
    """Seconds between the chain's blocks when it mines on a timer (QBFT's block period,
    ``anvil --block-time``): the outbox sizes batches to fill blocks from its first
    transaction. 0: it finds out (two of its transactions mined in one block)."""

    indexer_mode: IndexerMode = "process"
    """Where ``alliance worker`` (and ``alliance up|serve`` without ``--workers``) runs the
    indexer: ``process``, a child process of its own, restarted if it dies and stopped with
    its parent (its rounds then wait for no other thread's GIL); ``thread``, a thread beside
    the outbox; ``off``, none (run ``alliance indexer`` yourself). An app or runtime built in
    code runs it in a thread unless told otherwise."""

    log_format: Literal["text", "json"] = "text"
    """Log lines of ``alliance up|serve|worker``: text, or one JSON object a line; both carry
    the ids of the outbox operations a line is about."""

    api_host: str = "127.0.0.1"
    """Interface the API binds to."""

    api_port: int = 8000
    """Port the API listens on."""

    rate_limit_per_minute: int = 6000
    """Requests per minute one merchant may make before 429."""

    expiry_sweep_interval_s: float = 60.0
    """How often the expiry sweeper looks for lots expired at a period boundary."""

    public_rate_limit_per_minute: int = 120
    """Requests per minute one client IP may make to the public (unauthenticated) routes."""

    idempotency_ttl_hours: int = 24
    """How long idempotency records are kept (at least 24 h)."""

    request_max_age_s: int = 300
    """Oldest request timestamp the API accepts in a signed request."""

    max_batch_items: int = limits.MAX_BATCH_ITEMS
    """Largest batch a single request may carry (the API's schemas allow
    :data:`ledger.limits.MAX_BATCH_ITEMS`)."""

    webhooks_allow_private: bool = False
    """Whether webhook URLs may point at private or loopback addresses (a receiver inside
    the alliance's network, or a test's); never at this service's own API port."""

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "alliance.db"

    @property
    def effective_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.data_dir / "artifacts"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Give the process-wide settings, read from the environment on first use."""
    return Settings()
