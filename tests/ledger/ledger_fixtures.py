"""Fixtures of the ledger-layer tests: a fresh alliance (deployment + SQLite store) per test on
the session's anvil, and admitted merchants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.alliance import Alliance
from ledger.contracts.clients import ProgramConfig
from ledger.merchants import AdmittedMerchant, admit_merchant
from ledger.settings import Settings


def _alliance(anvil_url: str, data_dir: Path, **overrides: object) -> Iterator[Alliance]:
    settings = Settings(data_dir=data_dir, rpc_url=anvil_url, chain_id=31337,
                        **overrides)  # type: ignore[arg-type]
    alliance = Alliance.open(settings)
    try:
        yield alliance
    finally:
        alliance.close()


@pytest.fixture
def alliance(anvil_url: str, tmp_path: Path) -> Iterator[Alliance]:
    yield from _alliance(anvil_url, tmp_path)


@pytest.fixture
def alliance_unbatched(anvil_url: str, tmp_path: Path) -> Iterator[Alliance]:
    """An alliance whose sender puts each operation in its own transaction."""
    yield from _alliance(anvil_url, tmp_path, batch_max=1)


def _store(alliance: Alliance) -> AdmittedMerchant:
    return admit_merchant(alliance, name="Grand Plaza Department Store", symbol="GPDS", rate=1,
                          config=ProgramConfig(30 * 86400, 12, 7))


@pytest.fixture
def store_merchant(alliance: Alliance) -> AdmittedMerchant:
    return _store(alliance)


@pytest.fixture
def store_merchant_unbatched(alliance_unbatched: Alliance) -> AdmittedMerchant:
    return _store(alliance_unbatched)


@pytest.fixture
def cafe_merchant(alliance: Alliance) -> AdmittedMerchant:
    return admit_merchant(alliance, name="Corner Cafe", symbol="CAFE", rate=2)
