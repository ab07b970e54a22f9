"""The operator's CLI for memberships: issue a card, renew it, list a wallet's cards and read a
member's tier, on the same alliance the service uses."""

from __future__ import annotations

from eth_account import Account
from typer.testing import CliRunner

from ledger.alliance import Alliance
from ledger.cli import app
from ledger.memberships import service
from ledger.memberships.service import TierDef
from ledger.merchants.service import AdmittedMerchant
from ledger.settings import Settings, get_settings


def test_cli_issues_renews_and_lists_a_card_and_reads_a_tier(
        alliance: Alliance, cafe_merchant: AdmittedMerchant, settings: Settings,
        chain_snapshot: None) -> None:
    wallet = Account.create().address
    mid = str(cafe_merchant.merchant_id)
    with alliance.store.session() as s:
        service.set_tiers(s, merchant_id=cafe_merchant.merchant_id,
                          tiers=[TierDef(1, "silver", 0, 365, 11_000)])
    env = {"ALLIANCE_DATA_DIR": str(settings.data_dir), "ALLIANCE_RPC_URL": settings.rpc_url,
           "ALLIANCE_CHAIN_ID": str(settings.chain_id),
           "ALLIANCE_ARTIFACTS_DIR": str(settings.artifacts_dir), "COLUMNS": "200"}
    runner = CliRunner()

    def run(*args: str) -> str:
        get_settings.cache_clear()
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert "operation" in run("memberships", "issue", wallet, "--merchant", mid, "--payment",
                              "till-9/1", "--tier", "2", "--days", "30")
    assert "renewed" in run("memberships", "renew", wallet, "--merchant", mid, "--payment",
                            "till-9/2", "--days", "30")
    out = run("memberships", "cards", wallet)
    assert "valid" in out and mid in out
    with alliance.store.read_session() as s:
        (card,) = service.member_cards(alliance, s, member=wallet)
    assert card.tier == 2
    assert "tier 1 (silver)" in run("memberships", "tier", wallet, "--merchant", mid)
