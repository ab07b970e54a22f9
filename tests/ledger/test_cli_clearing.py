"""The operator's clearing commands, run as the CLI runs them, on a real alliance."""

from __future__ import annotations

import json
import time

import pytest
from eth_account import Account
from typer.testing import CliRunner

from ledger.alliance import Alliance
from ledger.cli import app
from ledger.merchants.service import admit_merchant
from ledger.points.service import request_issue, request_redeem
from ledger.runtime import outbox_worker
from ledger.settings import Settings, get_settings

from .helpers import sign_redemption


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {"ALLIANCE_DATA_DIR": str(settings.data_dir), "ALLIANCE_RPC_URL": settings.rpc_url,
            "ALLIANCE_CHAIN_ID": str(settings.chain_id),
            "ALLIANCE_ARTIFACTS_DIR": str(settings.artifacts_dir)}


def test_operator_closes_settles_and_prints_statements_from_the_cli(
        alliance: Alliance, env: dict[str, str]) -> None:
    store = admit_merchant(alliance, name="Store", symbol="ST", rate=3)
    cafe = admit_merchant(alliance, name="Cafe", symbol="CF", rate=2)
    member = Account.create()
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 600
    sig = sign_redemption(member, program=store.program, chain_id=alliance.gateway.chain_id,
                          registry=alliance.contracts.registry.address,
                          amount=7, merchant_id=cafe.merchant_id, order_id="c-1", nonce=0,
                          deadline=deadline)
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store.merchant_id, member=member.address,
                      points=10, order_id="s-1")
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=cafe.merchant_id, member=member.address,
                       points=7, order_id="c-1", nonce=0, deadline=deadline, signature=sig,
                       program_merchant_id=store.merchant_id)
    outbox_worker(alliance).drain()
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert "21" in run("clearing", "positions")
    assert "closed" in run("clearing", "close")
    out = run("clearing", "statement", "1", str(cafe.merchant_id))
    doc = json.loads(out)
    assert doc["statement"]["totals"]["net"] == 21 and doc["anchored_hash"] is None
    assert doc["hash"] in run("clearing", "anchor", "1")
    csv_text = run("clearing", "statement", "1", str(cafe.merchant_id), "--csv")
    assert csv_text.splitlines()[1].endswith(doc["hash"])
    run("clearing", "mint", str(store.merchant_id), "21")
    assert alliance.contracts.settlement_token.balance_of(store.account) == 21
    failed = runner.invoke(app, ["clearing", "settle", "1"], env=env)
    assert failed.exit_code == 1 and "ClearingNothingToClaim" in failed.output
    run("merchant", "suspend", str(cafe.merchant_id))
    run("clearing", "refund", str(store.merchant_id), str(cafe.merchant_id), "c-1", "7")
    assert alliance.contracts.program(store.program).balance_of(member.address) == 10
    run("merchant", "reinstate", str(cafe.merchant_id))
    run("clearing", "caps", str(cafe.merchant_id), "0", "500")
    assert alliance.contracts.registry.terms_of(cafe.merchant_id).foreign_cap == 500
    run("clearing", "accept", str(cafe.merchant_id), str(store.merchant_id), "--refuse")
    assert not alliance.contracts.registry.accepts(cafe.merchant_id, store.merchant_id)


def test_admin_actions_wait_in_the_timelock_and_execute_from_the_cli(
        settings: Settings, env: dict[str, str]) -> None:
    env = {**env, "ALLIANCE_TIMELOCK_DELAY_S": "3"}
    runner = CliRunner()
    get_settings.cache_clear()  # the CLI reads settings once per process: read these

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("merchant", "add", "Cafe", "--symbol", "CAFE", "--rate", "2")
    assert "scheduled as admin action" in out
    listed = run("admin", "pending")
    assert "admit Cafe" in listed
    action = out.split("admin action ")[1].split(",")[0].strip()
    # Wait in real seconds (too early is tested in test_admin_actions): the shared chain's
    # clock must stay with the wall clock.
    time.sleep(4)
    done = run("admin", "execute", action[:12])
    assert "merchant 1" in done and "secret" in done
    assert "admit Cafe" not in run("admin", "pending")
    refused = runner.invoke(app, ["merchant", "add", "Dear", "--symbol", "DEAR", "--rate",
                                  str(2**24)], env=env)
    assert refused.exit_code == 1 and "rate must be" in refused.output
    get_settings.cache_clear()
