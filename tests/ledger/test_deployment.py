"""The deployment record survives the project growing: a deployment.json written before a
contract existed gets that contract on the next start, and the rest is kept as it was."""

from __future__ import annotations

import json

from ledger.alliance import Alliance
from ledger.deployment import ADDED_LATER, deployment_path
from ledger.settings import Settings


def test_an_older_deployment_gets_the_contracts_added_since_and_keeps_the_rest(
        settings: Settings) -> None:
    first = Alliance.open(settings)
    try:
        before = first.contracts.deployment
    finally:
        first.close()
    path = deployment_path(settings)
    record = json.loads(path.read_text())
    for field, _ in ADDED_LATER:
        del record[field]  # as written by a version without the contract
    path.write_text(json.dumps(record))

    again = Alliance.open(settings)
    try:
        after = again.contracts.deployment
        for field, _ in ADDED_LATER:
            address = getattr(after, field)
            assert address and address != getattr(before, field), field
            assert len(again.gateway.code(address)) > 0, field
        # Nothing else was redeployed: the registry, clearing and coupon book are the same.
        assert (after.registry, after.clearing, after.coupon_book, after.block) == (
            before.registry, before.clearing, before.coupon_book, before.block)
        assert json.loads(path.read_text())["memberships"] == after.memberships
    finally:
        again.close()
