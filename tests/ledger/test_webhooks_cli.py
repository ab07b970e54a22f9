"""``alliance webhooks add|list|disable|enable|deliveries|replay|delete`` on anvil + SQLite,
through the service the API calls: an endpoint added from the terminal receives the
merchant's events signed with the secret the command printed; disabled, it receives nothing
while its events queue; enabled, it gets them in order; its log lists them; a replay sends
again from an event. Another merchant's endpoint is not found; bad input is refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from eth_account import Account
from typer.testing import CliRunner

from api.auth import sign as request_signature
from ledger.alliance import Alliance
from ledger.cli import app
from ledger.merchants.service import AdmittedMerchant
from ledger.points.service import request_issue
from ledger.runtime import indexer, outbox_worker
from ledger.settings import Settings, get_settings
from ledger.webhooks.worker import WebhookWorker

from .test_webhooks_flow import Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_private": True})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def test_cli_adds_disables_enables_lists_and_replays_an_endpoint(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        settings: Settings, receiver: Receiver) -> None:
    env = {"ALLIANCE_DATA_DIR": str(settings.data_dir), "ALLIANCE_RPC_URL": settings.rpc_url,
           "ALLIANCE_CHAIN_ID": str(settings.chain_id),
           "ALLIANCE_ARTIFACTS_DIR": str(settings.artifacts_dir),
           "ALLIANCE_WEBHOOKS_ALLOW_PRIVATE": "true", "COLUMNS": "250"}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        get_settings.cache_clear()
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    mid = str(store_merchant.merchant_id)
    out = run("webhooks", "add", receiver.url, "--merchant", mid, "--event", "points.issued")
    hook = re.search(r"\b(wh_[0-9a-f]{16})\b", out)
    secret = re.search(r"(whsec_\S+)", out)
    assert hook and secret, out
    endpoint = hook.group(1)
    assert endpoint in run("webhooks", "list", "--merchant", mid)

    # Disabled: the merchant's issues queue, nothing is sent.
    assert "paused" in run("webhooks", "disable", endpoint, "--merchant", mid, "--reason",
                           "receiver moving")
    member = Account.create().address
    with alliance.store.session() as s:
        for order in ("CLI-1", "CLI-2"):
            request_issue(alliance, s, merchant_id=store_merchant.merchant_id, member=member,
                          points=5, order_id=order)
    outbox_worker(alliance).drain()
    indexer(alliance).catch_up()
    worker = WebhookWorker(alliance)
    worker.drain()
    assert receiver.requests == []
    listed = run("webhooks", "list", "--merchant", mid)
    assert "paused" in listed and "receiver moving" in listed and " 2 " in listed

    # Enabled: both, in order, signed with the secret the command printed.
    assert "active" in run("webhooks", "enable", endpoint, "--merchant", mid)
    worker.drain()
    ids = receiver.unique_ids()
    assert len(ids) == 2
    for path, headers, body in receiver.requests:
        assert headers["X-Alliance-Signature"] == request_signature(
            secret.group(1), headers["X-Alliance-Timestamp"], headers["X-Alliance-Event-Id"],
            "POST", path, body)
        assert json.loads(body)["type"] == "points.issued"
    log = run("webhooks", "deliveries", endpoint, "--merchant", mid)
    assert log.count("delivered") >= 2 and ids[0] in log and ids[1] in log
    assert log.index(ids[0]) < log.index(ids[1])
    page = run("webhooks", "deliveries", endpoint, "--merchant", mid, "--limit", "1")
    assert ids[1] not in page and f"--after {ids[0]}" in page

    assert "1 deliveries queued" in run("webhooks", "replay", endpoint, "--merchant", mid,
                                        "--from", ids[1])
    worker.drain()
    assert [h["X-Alliance-Event-Id"] for _, h, _ in receiver.requests] == ids + ids[1:]

    # Another merchant's endpoint is not found; bad input is refused; delete is for good.
    cafe = str(cafe_merchant.merchant_id)
    assert "no webhook" in run("webhooks", "disable", endpoint, "--merchant", cafe, code=1)
    assert "unknown event type" in run("webhooks", "add", receiver.url, "--merchant", mid,
                                       "--event", "points.minted", code=1)
    assert "deleted" in run("webhooks", "delete", endpoint, "--merchant", mid)
    assert endpoint not in run("webhooks", "list", "--merchant", mid)
