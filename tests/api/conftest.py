"""API fixtures: the real app on a real alliance (session anvil, SQLite), with merchants."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.client import AllianceClient
from ledger.alliance import Alliance
from ledger.merchants import AdmittedMerchant, admit_merchant, create_admin_credential
from ledger.settings import Settings


@dataclass
class ApiEnv:
    alliance: Alliance
    http: TestClient
    store: AllianceClient
    cafe: AllianceClient
    admin: AllianceClient
    store_merchant: AdmittedMerchant
    cafe_merchant: AdmittedMerchant


def make_env(settings: Settings) -> Iterator[ApiEnv]:
    alliance = Alliance.open(settings)
    store = admit_merchant(alliance, name="Grand Plaza Department Store", symbol="GPDS", rate=1)
    cafe = admit_merchant(alliance, name="Corner Cafe", symbol="CAFE", rate=2)
    admin_id, admin_secret = create_admin_credential(alliance)
    app = create_app(alliance)
    with TestClient(app) as http:
        yield ApiEnv(alliance, http, AllianceClient(http, store.key_id, store.secret),
                     AllianceClient(http, cafe.key_id, cafe.secret),
                     AllianceClient(http, admin_id, admin_secret), store, cafe)
    alliance.close()


@pytest.fixture
def env(settings: Settings) -> Iterator[ApiEnv]:
    yield from make_env(settings)
