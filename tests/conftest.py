"""Fixtures shared by every layer: one anvil per test session, compiled artifacts, and
snapshots that isolate a test's chain changes cheaply."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.chain import anvil
from ledger.chain.gateway import ChainGateway
from ledger.contracts.compiler import Artifact, compile_contracts
from ledger.settings import Settings
from tests import templates

ROOT = Path(__file__).resolve().parents[1]
# Artifacts are cached across sessions here (gitignored), keyed by the sources' hash.
ARTIFACT_CACHE = ROOT / ".alliance-test-cache" / "artifacts"


@pytest.fixture(scope="session")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh anvil for this test session, stopped at the end."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("anvil"))
    url = anvil.start(settings)
    try:
        yield url
    finally:
        anvil.stop(settings)


@pytest.fixture(scope="session")
def artifacts() -> dict[str, Artifact]:
    return compile_contracts(Settings(data_dir=ROOT / ".alliance-test-cache",
                                      artifacts_dir=ARTIFACT_CACHE))


@pytest.fixture(scope="session")
def gateway(anvil_url: str) -> ChainGateway:
    return ChainGateway(anvil_url, expected_chain_id=31337)


@pytest.fixture
def chain_snapshot(gateway: ChainGateway) -> Iterator[None]:
    """Undo every chain change the test makes (evm_snapshot / evm_revert)."""
    snap = gateway.rpc("evm_snapshot")
    try:
        yield
    finally:
        gateway.rpc("evm_revert", [snap])


@pytest.fixture(scope="session")
def set_up_templates(anvil_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Let fixtures start from a once-per-session template (tests/templates.py)."""
    templates.configure(tmp_path_factory.mktemp("templates"), anvil_url)


@pytest.fixture
def settings(anvil_url: str, tmp_path: Path, set_up_templates: None) -> Settings:
    """Settings of a fresh service (own data dir and SQLite store) on the session's anvil."""
    return Settings(data_dir=tmp_path, rpc_url=anvil_url, chain_id=31337,
                    artifacts_dir=ARTIFACT_CACHE)
