"""Set-up templates: deploy once per session what most tests start from, then give every test
an identical fresh copy of it.

A template is a data dir (SQLite store migrated to head, master key, deployment record, the
merchants' keys) built by the very calls a test's fixture would make (``Alliance.open`` on an
empty data dir, then the fixture's own ``build`` step, e.g. admitting merchants), plus an
``evm_snapshot`` of the session's anvil right after. A test that starts from the template gets
the chain reverted to that snapshot (a new snapshot is taken for the next test, as anvil
consumes the one reverted to), the chain's clock put back on the wall clock (a revert also
rewinds time), and a copy of the data dir in its own (empty) data dir: the same state a fresh
set-up would give it, without the migrations and the contract deployments.

Only one template lives at a time (anvil's snapshots nest: reverting to one drops the later
ones); asking for another (other settings, another build step) or finding the snapshot gone
(a test reverted below it) builds it anew, the way a test without a template would."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.alliance import Alliance
from ledger.chain.gateway import ChainGateway
from ledger.settings import Settings

_KEY_DIR = Path("/template-key")


@dataclass
class _Template:
    key: tuple[Settings, str]
    data_dir: Path
    snapshot: str
    built: Any


_current: _Template | None = None
_root: Path | None = None
_chain: str | None = None


def configure(root: Path, anvil_url: str) -> None:
    """Templates of this session: their data dirs under ``root``, on the anvil of
    ``anvil_url`` (the session's)."""
    global _root, _current, _chain
    _root, _chain, _current = root, anvil_url, None


def usable(settings: Settings) -> bool:
    """A template fits a test whose data dir is still empty and whose store is the SQLite
    file of that data dir, on the session's dev chain (anvil: snapshots, settable time)."""
    return (_root is not None and settings.database_url is None
            and settings.rpc_url is not None and str(settings.rpc_url) == _chain
            and (not settings.data_dir.exists() or not any(settings.data_dir.iterdir())))


def _revert(gateway: ChainGateway, snapshot: str) -> str | None:
    """Revert to ``snapshot``; give a new snapshot of the same state, or None if it is gone."""
    if not gateway.rpc("evm_revert", [snapshot]):
        return None
    fresh = str(gateway.rpc("evm_snapshot"))
    # The revert rewound the chain's clock to the snapshot's: set it back on the wall clock
    # (never behind the last block), as a test without a template would find it.
    latest = gateway.rpc("eth_getBlockByNumber", ["latest", False])
    gateway.rpc("evm_setTime", [max(int(time.time()), int(latest["timestamp"], 16) + 1)])
    return fresh


def open_from_template(settings: Settings, name: str,
                       build: Callable[[Alliance], Any]) -> tuple[Alliance, Any]:
    """``Alliance.open(settings)`` followed by ``build(alliance)``, from the session's
    template of (settings, name) when there is one: gives the alliance and what ``build``
    returned (the same values every test of that template gets)."""
    global _current
    assert _root is not None and usable(settings)
    key = (settings.model_copy(update={"data_dir": _KEY_DIR}), name)
    gateway = ChainGateway(str(settings.rpc_url), expected_chain_id=settings.chain_id)
    template = _current if _current is not None and _current.key == key else None
    if template is not None:
        fresh = _revert(gateway, template.snapshot)
        if fresh is None:
            template = None
        else:
            template.snapshot = fresh
    if template is None:
        data_dir = Path(tempfile.mkdtemp(prefix="template-", dir=_root))
        alliance = Alliance.open(settings.model_copy(update={"data_dir": data_dir}))
        try:
            built = build(alliance)
        finally:
            alliance.close()
        template = _Template(key, data_dir, str(gateway.rpc("evm_snapshot")), built)
        old, _current = _current, template
        if old is not None:
            shutil.rmtree(old.data_dir, ignore_errors=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template.data_dir, settings.data_dir, dirs_exist_ok=True)
    shutil.copystat(template.data_dir, settings.data_dir)
    return Alliance.open(settings), template.built
