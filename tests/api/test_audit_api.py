"""The audit over HTTP: an auditor key reads the chain audit (JSON and HTML) and nothing
else; the operator reads the drift report too; merchants read neither."""

from __future__ import annotations

from sqlalchemy import select, update

from api.client import AllianceClient
from ledger.audit.service import create_auditor_credential
from ledger.runtime import indexer
from ledger.store.models import PointEvent

from .conftest import ApiEnv


def test_an_auditor_reads_the_reports_and_nothing_else(env: ApiEnv) -> None:
    key_id, secret = create_auditor_credential(env.alliance)
    auditor = AllianceClient(env.http, key_id, secret)
    report = auditor.get("/v1/audit/report")
    assert report.status_code == 200, report.text
    doc = report.json()
    assert doc["clean"] is True and doc["kind"] == "alliance-audit"
    assert doc["registry"] == env.alliance.contracts.registry.address.lower()
    page = auditor.get("/v1/audit/report.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Alliance Ledger audit" in page.text and "uPlot" in page.text
    # Read-only, and only the reports: no admin route, no merchant route, no drift.
    for path in ("/v1/admin/audit/drift", "/v1/admin/merchants", "/v1/merchants/me",
                 "/v1/clearing/position"):
        refused = auditor.get(path)
        assert refused.status_code == 403, (path, refused.text)
    assert auditor.post("/v1/points/issue", {"member": "0x" + "11" * 20, "points": 1,
                                             "order_id": "x"}).status_code == 403


def test_merchants_cannot_read_the_audit_and_the_operator_sees_drift(env: ApiEnv) -> None:
    assert env.store.get("/v1/audit/report").status_code == 403
    assert env.store.get("/v1/admin/audit/drift").status_code == 403
    assert env.admin.get("/v1/audit/report").status_code == 200
    indexer(env.alliance).catch_up()
    clean = env.admin.get("/v1/admin/audit/drift")
    assert clean.status_code == 200 and clean.json()["clean"] is True, clean.text
    issued = env.store.post("/v1/points/issue", {"member": "0x" + "22" * 20, "points": 7,
                                                 "order_id": "drift-1"})
    assert issued.status_code == 202, issued.text
    assert env.store.wait_operation(issued.json()["id"])["status"] == "confirmed"
    # Past the confirmation depth, so the indexer takes the issue in.
    env.alliance.gateway.rpc("anvil_mine", [hex(env.alliance.settings.confirmations + 1)])
    indexer(env.alliance).catch_up()
    with env.alliance.store.session() as s:
        row = s.scalars(select(PointEvent).where(PointEvent.kind == "issued")).first()
        assert row is not None
        s.execute(update(PointEvent).where(PointEvent.id == row.id).values(amount=70))
    drifted = env.admin.get("/v1/admin/audit/drift").json()
    assert drifted["clean"] is False
    assert drifted["drifts"][0]["store"]["amount"] == 70
    assert drifted["drifts"][0]["chain"]["amount"] == 7
