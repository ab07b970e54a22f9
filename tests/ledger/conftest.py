"""Fixtures of the ledger-layer tests."""

from .ledger_fixtures import (  # noqa: F401 - re-exported fixtures
    alliance,
    alliance_unbatched,
    cafe_merchant,
    store_merchant,
    store_merchant_unbatched,
)
