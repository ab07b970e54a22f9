"""The audit's HTML report in a real browser with no network: it renders its summary,
findings, tables and both charts from the file alone (the chart library is inlined)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_account import Account
from playwright.sync_api import Browser, Route

from ledger.alliance import Alliance
from ledger.audit.engine import run_audit
from ledger.audit.report import write_html
from ledger.contracts.compiler import Artifact
from tests.ledger.ledger_fixtures import alliance  # noqa: F401 - the fixture
from tests.ledger.test_audit import MINTER_ROLE, _demo_with_settlement, _send_as

pytestmark = pytest.mark.e2e


def test_the_html_report_renders_findings_tables_and_charts_offline(
        alliance: Alliance, artifacts: dict[str, Artifact], browser: Browser,  # noqa: F811
        tmp_path: Path) -> None:
    _demo_with_settlement(alliance)
    outsider = Account.create().address
    token = alliance.contracts.settlement_token
    _send_as(alliance, alliance.contracts.deployment.timelock, token.address,
             token.encode("grantRole", MINTER_ROLE, outsider))
    _send_as(alliance, outsider, token.address, token.encode("mint", outsider, 7))
    report = run_audit(alliance.gateway, artifacts,
                       registry=alliance.contracts.registry.address)
    path = tmp_path / "audit.html"
    write_html(report, path)

    outside: list[str] = []

    def file_only(route: Route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", file_only)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-rendered=yes]", timeout=10_000)
    assert errors == [] and outside == []
    assert "2 VIOLATION(S) FOUND" in page.inner_text("#verdict")
    findings = page.locator("table.findings tbody tr").all_inner_texts()
    assert any("MintByNewMinter" in f for f in findings)
    assert any("RoleGrantedAfterDeployment" in f for f in findings)
    # Both charts drew (uPlot puts a canvas in each).
    assert page.locator("#daily canvas").count() == 1
    assert page.locator("#positions canvas").count() == 1
    shot = Path(os.environ.get("AUDIT_SCREENSHOT_DIR", tmp_path)) / "audit-report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.screenshot(path=str(shot.with_name("audit-report-top.png")))
    for chart in ("daily", "positions"):
        page.locator(f"#{chart}").screenshot(path=str(shot.with_name(f"audit-{chart}.png")))
