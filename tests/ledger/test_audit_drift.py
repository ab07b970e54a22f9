"""The drift report compares the service's store with the chain: a store someone altered is
drift, while the chain audit (which never reads the store) stays clean."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from ledger.alliance import Alliance
from ledger.audit.drift import drift_report
from ledger.audit.engine import run_audit
from ledger.contracts.compiler import Artifact
from ledger.demo import seed_demo
from ledger.runtime import indexer
from ledger.store.models import ClearedAct, PointEvent


def test_an_indexed_demo_store_has_no_drift(alliance: Alliance) -> None:
    seed_demo(alliance)
    indexer(alliance).catch_up()
    report = drift_report(alliance)
    assert report.as_dict()["drifts"] == []
    # The demo's cleared acts: a redemption, a conversion and a coupon used at the cafe.
    assert report.compared["point_events"] > 10 and report.compared["cleared_acts"] == 3
    assert report.compared["merchants"] == 3


def test_a_corrupted_store_is_drift_while_the_chain_audit_stays_clean(
        alliance: Alliance, artifacts: dict[str, Artifact]) -> None:
    seed_demo(alliance)
    indexer(alliance).catch_up()
    with alliance.store.session() as s:
        issued = s.scalars(select(PointEvent).where(PointEvent.kind == "issued")
                           .order_by(PointEvent.id)).first()
        assert issued is not None
        s.execute(update(PointEvent).where(PointEvent.id == issued.id)
                  .values(amount=issued.amount + 1000))
        act = s.scalars(select(ClearedAct).order_by(ClearedAct.id)).first()
        assert act is not None
        s.execute(delete(ClearedAct).where(ClearedAct.id == act.id))
        s.add(PointEvent(chain_id=alliance.gateway.chain_id, program=issued.program,
                         merchant_id=issued.merchant_id, member=issued.member, kind="issued",
                         amount=5, order_ref="0x" + "ab" * 32, tx_hash="0x" + "cd" * 32,
                         block_number=issued.block_number, log_index=999,
                         block_time=issued.block_time))
    report = drift_report(alliance)
    found = sorted((d.table, d.message) for d in report.drifts)
    assert found == [
        ("cleared_acts", "a chain event the store does not have"),
        ("point_events", "a stored row no chain event gives"),
        ("point_events", "the stored row differs from the chain's event"),
    ]
    changed = next(d for d in report.drifts if d.message.startswith("the stored row"))
    assert changed.store["amount"] == changed.chain["amount"] + 1000
    audit = run_audit(alliance.gateway, artifacts, registry=alliance.contracts.registry.address)
    assert audit.clean, [f.as_dict() for f in audit.findings]
