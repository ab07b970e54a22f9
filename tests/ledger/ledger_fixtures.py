"""Fixtures of the ledger-layer tests: a fresh alliance (deployment + SQLite store) per test on
the session's anvil (copied from the session's template: tests/templates.py), and admitted
merchants."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.alliance import Alliance
from ledger.merchants.clients import ProgramConfig
from ledger.merchants.service import AdmittedMerchant, admit_merchant
from ledger.settings import Settings
from tests import templates


def _alliance(settings: Settings, **overrides: object) -> Iterator[Alliance]:
    settings = settings.model_copy(update=overrides)
    if templates.usable(settings):
        alliance, _ = templates.open_from_template(settings, "alliance", lambda a: None)
    else:
        alliance = Alliance.open(settings)
    try:
        yield alliance
    finally:
        alliance.close()


@pytest.fixture
def alliance(settings: Settings) -> Iterator[Alliance]:
    yield from _alliance(settings)


@pytest.fixture
def alliance_unbatched(settings: Settings) -> Iterator[Alliance]:
    """An alliance whose sender puts each operation in its own transaction."""
    yield from _alliance(settings, batch_max=1)


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
