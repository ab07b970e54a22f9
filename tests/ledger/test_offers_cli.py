"""``alliance offers``: an operator adds, lists and disables a merchant's rule, lists its
gifts and runs the birthday job, against the alliance's own data dir."""

from __future__ import annotations

from typer.testing import CliRunner

from ledger.alliance import Alliance
from ledger.cli import app
from ledger.merchants.service import AdmittedMerchant
from ledger.offers import service as offers
from ledger.settings import Settings, get_settings

from .test_offers_ledger import campaign


def test_operator_adds_lists_and_disables_a_rule_and_runs_the_birthday_job(
        alliance: Alliance, store_merchant: AdmittedMerchant, settings: Settings) -> None:
    mid = store_merchant.merchant_id
    cid = campaign(alliance, store_merchant)
    gift_campaign = campaign(alliance, store_merchant, kind="gift", value=100)
    with alliance.store.session() as s:
        offers.create_gift(alliance, s, merchant_id=mid, name="Tote bag", points=100,
                           campaign_id=gift_campaign, stock=7)
    env = {"ALLIANCE_DATA_DIR": str(settings.data_dir), "ALLIANCE_RPC_URL": settings.rpc_url,
           "ALLIANCE_CHAIN_ID": str(settings.chain_id),
           "ALLIANCE_ARTIFACTS_DIR": str(settings.artifacts_dir), "COLUMNS": "200"}
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        get_settings.cache_clear()
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    assert "rule 1 (purchase, campaign" in run("offers", "add-rule", "purchase", str(cid),
                                               "--merchant", str(mid), "--min-points", "300")
    out = run("offers", "rules", "--merchant", str(mid))
    assert "purchase" in out and "300" in out and "yes" in out
    run("offers", "disable-rule", "1", "--merchant", str(mid))
    assert "no" in run("offers", "rules", "--merchant", str(mid)).split("purchase")[1]
    assert run("offers", "disable-rule", "1", "--merchant", str(mid), code=1)
    assert "rule 2 (purchase" in run("offers", "add-rule", "purchase", str(cid), "--merchant",
                                     str(mid), "--min-spend", "20000")
    assert "spend 20000" in run("offers", "rules", "--merchant", str(mid))
    assert "Tote bag" in run("offers", "gifts", "--merchant", str(mid))
    assert "0 birthday offer(s) fired" in run("offers", "birthdays")
