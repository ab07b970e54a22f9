"""The auditor's kit on a real anvil: an alliance that followed the rules audits clean from
the chain alone; writes the contracts allow but the alliance did not intend are findings."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils.crypto import keccak
from typer.testing import CliRunner

from ledger.alliance import Alliance
from ledger.audit.engine import AuditReport, run_audit
from ledger.audit.report import write_html, write_json
from ledger.clearing import service as clearing
from ledger.cli import app
from ledger.contracts.compiler import Artifact
from ledger.demo import seed_demo
from ledger.merchants.clients import ProgramConfig
from ledger.merchants.service import admit_merchant
from ledger.points.service import (
    request_convert,
    request_issue,
    request_redeem,
    request_refund_redemption,
    request_reverse,
)
from ledger.runtime import outbox_worker
from tests.conftest import ARTIFACT_CACHE

from .helpers import sign_conversion, sign_redemption

MINTER_ROLE = keccak(text="MINTER_ROLE")
# The command compiles (its own Settings()) unless pointed at the session's artifact cache.
CACHED = {"ALLIANCE_ARTIFACTS_DIR": str(ARTIFACT_CACHE)}


def _audit(alliance: Alliance, artifacts: dict[str, Artifact], **kw: Any) -> AuditReport:
    return run_audit(alliance.gateway, artifacts, registry=alliance.contracts.registry.address,
                     from_block=0, **kw)


def _demo_with_settlement(alliance: Alliance) -> None:
    """The demo alliance, then its period closed, statements anchored, the debtor paying in
    settlement tokens and the creditors paid out: every kind of clearing event."""
    seed_demo(alliance)
    closed = clearing.close_period(alliance)
    debtors = [p for p in closed.positions if p.net < 0]
    assert debtors, "the demo leaves a debtor"
    with alliance.store.session() as s:
        for p in debtors:
            clearing.mint_settlement_tokens(alliance, merchant_id=p.merchant_id, amount=-p.net)
            clearing.request_deposit(alliance, s, merchant_id=p.merchant_id,
                                     period=closed.period, amount=-p.net)
    outbox_worker(alliance).drain()
    clearing.settle(alliance, period=closed.period)


def _send_as(alliance: Alliance, sender: str, to: str, data: bytes) -> None:
    """A transaction from any address (anvil impersonation): what a holder of that key could
    send."""
    gw = alliance.gateway
    gw.rpc("anvil_setBalance", [sender, hex(10**18)])
    gw.rpc("anvil_impersonateAccount", [sender])
    try:
        tx = gw.rpc("eth_sendTransaction", [{"from": sender, "to": to, "data": "0x" + data.hex()}])
        receipt = gw.receipt(tx)
        deadline = time.monotonic() + 10
        while receipt is None and time.monotonic() < deadline:
            time.sleep(0.05)
            receipt = gw.receipt(tx)
        assert receipt is not None and receipt["status"] == 1
    finally:
        gw.rpc("anvil_stopImpersonatingAccount", [sender])


def test_a_demo_alliance_with_a_settled_period_audits_clean(
        alliance: Alliance, artifacts: dict[str, Artifact], tmp_path: Path) -> None:
    _demo_with_settlement(alliance)
    report = _audit(alliance, artifacts)
    assert [f.as_dict() for f in report.findings] == []
    assert report.clean
    doc = report.as_dict()
    # It did compare: every holder's balance, every order, position and settlement.
    assert report.views_asked > 100 and report.events > 60
    assert {"PointsIssued", "PointsRedeemed", "PointsConverted", "Cleared", "PeriodClosed",
            "Deposited", "PaidOut", "RoleGranted"} <= set(doc["event_counts"])
    programs = doc["sections"]["points"]["programs"]
    assert len(programs) == 3 and all(p["issued"] > 0 for p in programs)
    periods = doc["sections"]["clearing"]["periods"]
    assert periods[0]["closed"] and periods[0]["paid"] == periods[0]["total_owed"] > 0
    assert sum(periods[0]["positions"].values()) == 0
    assert doc["contracts"]["timelock"] == alliance.contracts.deployment.timelock.lower()
    # Both reports are written; the JSON one is the same document.
    write_json(report, tmp_path / "audit.json")
    assert json.loads((tmp_path / "audit.json").read_text())["clean"] is True
    write_html(report, tmp_path / "audit.html")
    html = (tmp_path / "audit.html").read_text()
    assert "uPlot" in html and "src=" not in html and "href=" not in html


def test_a_minter_role_granted_to_an_outside_key_that_then_mints_is_a_violation(
        alliance: Alliance, artifacts: dict[str, Artifact]) -> None:
    seed_demo(alliance)
    outsider = Account.create().address
    token = alliance.contracts.settlement_token
    # The timelock (the token's admin) grants the role: the contracts allow it.
    _send_as(alliance, alliance.contracts.deployment.timelock, token.address,
             token.encode("grantRole", MINTER_ROLE, outsider))
    _send_as(alliance, outsider, token.address, token.encode("mint", outsider, 1_000_000))
    report = _audit(alliance, artifacts)
    codes = sorted(f.code for f in report.violations)
    assert codes == ["MintByNewMinter", "RoleGrantedAfterDeployment"]
    minted = next(f for f in report.violations if f.code == "MintByNewMinter")
    assert minted.details["minter"] == outsider.lower()
    # An auditor who was told of the new minter can expect it.
    assert _audit(alliance, artifacts, expected_holders=[outsider]).clean


def test_a_merchant_account_changed_by_the_admin_is_listed_and_its_issues_audit_clean(
        alliance: Alliance, artifacts: dict[str, Artifact]) -> None:
    seed_demo(alliance)
    registry = alliance.contracts.registry
    new_account = Account.create().address
    _send_as(alliance, alliance.contracts.deployment.timelock, registry.address,
             registry.encode("setMerchantAccount", 1, new_account))
    program = alliance.contracts.program(registry.merchant(1).program or "")
    _send_as(alliance, new_account, program.address,
             program.encode("issue", Account.create().address, 5, b"\x01" * 32))
    report = _audit(alliance, artifacts)
    assert report.clean, [f.as_dict() for f in report.findings]
    changes = report.as_dict()["sections"]["governance"]["admin_changes"]
    assert any(c["event"] == "MerchantAccountChanged" for c in changes)


def test_an_audit_from_a_later_block_misses_history_and_says_so(
        alliance: Alliance, artifacts: dict[str, Artifact]) -> None:
    seed_demo(alliance)
    head = alliance.gateway.block_number()
    report = run_audit(alliance.gateway, artifacts,
                       registry=alliance.contracts.registry.address, from_block=head)
    # Balances built from no logs cannot match the programs: the audit is not clean.
    assert not report.clean
    assert any(f.code == "ViewMismatch" for f in report.violations)


def test_the_audit_command_exits_zero_when_clean_and_one_on_a_violation(
        alliance: Alliance, tmp_path: Path) -> None:
    seed_demo(alliance)
    runner = CliRunner()
    args = ["audit", "--rpc-url", alliance.gateway.url,
            "--registry", alliance.contracts.registry.address,
            "--json", str(tmp_path / "a.json"), "--html", str(tmp_path / "a.html")]
    clean = runner.invoke(app, args, env=CACHED)
    assert clean.exit_code == 0, clean.output
    assert json.loads((tmp_path / "a.json").read_text())["clean"] is True
    outsider = Account.create().address
    token = alliance.contracts.settlement_token
    _send_as(alliance, alliance.contracts.deployment.timelock, token.address,
             token.encode("grantRole", MINTER_ROLE, outsider))
    _send_as(alliance, outsider, token.address, token.encode("mint", outsider, 5))
    rogue = runner.invoke(app, args, env=CACHED)
    assert rogue.exit_code == 1
    assert "MintByNewMinter" in rogue.output
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["clean"] is False and doc["summary"]["violations"] == 2
    unreachable = runner.invoke(app, [*args[:1], "--rpc-url", "http://127.0.0.1:9",
                                      *args[3:]], env=CACHED)
    assert unreachable.exit_code == 2


def test_reversals_refunds_pending_points_and_expiry_all_audit_clean(
        alliance: Alliance, artifacts: dict[str, Artifact], chain_snapshot: None) -> None:
    """Every kind of point event the programs emit, the way the service sends them: the audit
    finds nothing to say (no false alarm on the paths the demo does not take)."""
    store = admit_merchant(alliance, name="Store", symbol="ST", rate=10,
                           config=ProgramConfig(30 * 86400, 1, 7))
    cinema = admit_merchant(alliance, name="Cinema", symbol="CI", rate=25,
                            config=ProgramConfig(30 * 86400, 1, 7))
    member = Account.create()
    gw = alliance.gateway
    now = int(gw.block("latest")["timestamp"])
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store.merchant_id, member=member.address,
                      points=500, order_id="o-1")
        request_issue(alliance, s, merchant_id=store.merchant_id, member=member.address,
                      points=80, order_id="o-pending", release_at=now + 3 * 86400)
    outbox_worker(alliance).drain()
    deadline = now + 3600
    spend = sign_redemption(member, program=store.program, registry=alliance.contracts.registry
                            .address, chain_id=gw.chain_id, amount=60,
                            merchant_id=cinema.merchant_id, order_id="ticket-1", nonce=0,
                            deadline=deadline)
    conv = sign_conversion(member, program=store.program,
                           registry=alliance.contracts.registry.address, chain_id=gw.chain_id,
                           amount=26, to_merchant_id=cinema.merchant_id, min_out=1,
                           order_id="conv-1", nonce=1, deadline=deadline)
    with alliance.store.session() as s:
        request_reverse(alliance, s, merchant_id=store.merchant_id, order_id="o-1", points=40)
        request_reverse(alliance, s, merchant_id=store.merchant_id, order_id="o-pending",
                        points=30)
        request_redeem(alliance, s, merchant_id=cinema.merchant_id, member=member.address,
                       points=60, order_id="ticket-1", nonce=0, deadline=deadline,
                       signature=spend, program_merchant_id=store.merchant_id)
        request_convert(alliance, s, merchant_id=cinema.merchant_id, member=member.address,
                        from_merchant_id=store.merchant_id, points=26, min_out=1,
                        order_id="conv-1", nonce=1, deadline=deadline, signature=conv)
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_refund_redemption(alliance, s, merchant_id=cinema.merchant_id,
                                  order_id="ticket-1", points=20,
                                  program_merchant_id=store.merchant_id)
    outbox_worker(alliance).drain()
    first = _audit(alliance, artifacts)
    assert first.clean, [f.as_dict() for f in first.findings]
    counts = first.event_counts
    assert {"PointsReversed", "RedemptionRefunded", "PointsConvertedIn"} <= set(counts)
    assert first.as_dict()["sections"]["points"]["programs"][-2]["reversed"] == 70
    # Two periods later every lot has expired: the sweep burns them, orders read 0 left.
    gw.rpc("evm_increaseTime", [61 * 86400])
    gw.rpc("evm_mine", [])
    program = alliance.contracts.program(store.program)
    _send_as(alliance, Account.create().address, program.address,
             program.encode("sweepExpired", [member.address]))
    later = _audit(alliance, artifacts)
    assert later.clean, [f.as_dict() for f in later.findings]
    assert "PointsExpired" in later.event_counts
