"""The drift report, for operators: does the service's store say what the chain says?

Unlike the chain audit (everything else in ``ledger.audit``, which never touches the store),
this module reads both: the store's merchants and its indexed read model (``point_events``,
``cleared_acts``, up to the block each projection's cursor reached) against the registry's
views and the same contracts' logs, read from the chain through the audit's own source.
A row the chain does not have, a chain event the store misses, or a field that differs is
drift: the store was corrupted, or its indexer is wrong. The chain audit can be clean while
the store drifts, and that is the point of having both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ..alliance import Alliance
from ..clearing.projection import CURSOR as CLEARING_CURSOR
from ..indexer import repos as cursors
from ..points.projection import CURSOR as POINTS_CURSOR
from ..points.projection import KINDS as POINT_KINDS
from ..store.models import ClearedAct, Merchant, PointEvent
from .clearing import KINDS as CLEARED_KINDS
from .source import ZERO_ADDRESS, ChainSource, Kind

# Rows the points projection makes without a log of their own.
SYNTHETIC_KINDS = frozenset({"released"})


@dataclass(frozen=True)
class Drift:
    """One difference between the store and the chain."""

    table: str
    key: str
    message: str
    store: Any = None
    chain: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "message": self.message,
                "store": _plain(self.store), "chain": _plain(self.chain)}


@dataclass(frozen=True)
class StoredMerchant:
    id: int
    account: str
    program: str
    status: str


@dataclass
class DriftReport:
    """What the store holds that the chain does not say, and the other way round."""

    chain_id: int
    head: int
    cursors: dict[str, int]
    compared: dict[str, int]
    drifts: list[Drift] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drifts

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "alliance-drift", "clean": self.clean, "chain_id": self.chain_id,
                "head": self.head, "cursors": self.cursors, "compared": self.compared,
                "drifts": [d.as_dict() for d in self.drifts]}


def drift_report(alliance: Alliance) -> DriftReport:
    """Compare the store's merchants and read model with the chain, up to each cursor."""
    gw = alliance.gateway
    contracts = alliance.contracts
    source = ChainSource(gw, contracts.artifacts, registry=contracts.registry.address)
    with alliance.store.read_session() as s:
        merchants = [StoredMerchant(m.id, m.account_address.lower(),
                                    (m.program_address or ZERO_ADDRESS).lower(), m.status)
                     for m in s.scalars(select(Merchant).order_by(Merchant.id))]
        upto = {name: (c[0] if c else -1) for name, c in (
            (POINTS_CURSOR, cursors.get_cursor(s, POINTS_CURSOR)),
            (CLEARING_CURSOR, cursors.get_cursor(s, CLEARING_CURSOR)))}
        points = {(r.tx_hash.lower(), r.log_index): {
            "kind": r.kind, "member": r.member.lower(), "amount": int(r.amount),
            "merchant_id": r.merchant_id, "program": r.program.lower()}
            for r in s.scalars(select(PointEvent)
                               .where(PointEvent.block_number <= upto[POINTS_CURSOR]))
            if r.kind not in SYNTHETIC_KINDS}
        acts = {(r.tx_hash.lower(), r.log_index): {
            "period": r.period, "kind": r.kind, "debtor": r.debtor, "creditor": r.creditor,
            "value": int(r.value), "rate": int(r.rate)}
            for r in s.scalars(select(ClearedAct)
                               .where(ClearedAct.block_number <= upto[CLEARING_CURSOR]))}
    report = DriftReport(chain_id=gw.chain_id, head=source.head, cursors=upto,
                         compared={"merchants": len(merchants), "point_events": len(points),
                                   "cleared_acts": len(acts)})
    addresses = source.discover(from_block=contracts.deployment.block)
    report.drifts += _merchants(source, merchants, addresses.programs)
    kinds = dict.fromkeys(addresses.programs.values(), Kind.PROGRAM)
    kinds[addresses.clearing] = Kind.CLEARING
    chain_points: dict[tuple[str, int], dict[str, Any]] = {}
    chain_acts: dict[tuple[str, int], dict[str, Any]] = {}
    merchant_of = addresses.merchant_of()
    for chunk in source.events(kinds, from_block=contracts.deployment.block):
        for ev in chunk:
            key = (ev.tx.lower(), ev.log_index)
            if ev.kind == Kind.PROGRAM and ev.name in POINT_KINDS \
                    and ev.block <= upto[POINTS_CURSOR]:
                a = ev.args
                other = a.get("merchantId", a.get("toMerchantId", a.get("fromMerchantId")))
                chain_points[key] = {
                    "kind": POINT_KINDS[ev.name], "member": str(a["member"]).lower(),
                    "amount": int(a["amount"] if "amount" in a else a["spent"]),
                    "merchant_id": int(other) if other is not None
                    else merchant_of.get(ev.address),
                    "program": ev.address}
            elif ev.kind == Kind.CLEARING and ev.name == "Cleared" \
                    and ev.block <= upto[CLEARING_CURSOR]:
                a = ev.args
                chain_acts[key] = {"period": a["period"], "kind": CLEARED_KINDS[a["kind"]],
                                   "debtor": a["debtor"], "creditor": a["creditor"],
                                   "value": a["value"], "rate": a["rate"]}
    report.drifts += _compare("point_events", points, chain_points)
    report.drifts += _compare("cleared_acts", acts, chain_acts)
    return report


def _merchants(source: ChainSource, merchants: list[StoredMerchant],
               programs: Mapping[int, str]) -> list[Drift]:
    out: list[Drift] = []
    answers = source.views([(Kind.REGISTRY, source.registry, "merchant", (m.id,))
                            for m in merchants])
    for m, ans in zip(merchants, answers, strict=True):
        if not isinstance(ans, tuple):
            out.append(Drift("merchants", str(m.id), "the registry cannot say", m.id, str(ans)))
            continue
        account, status, program = ans[0]
        store = {"account": m.account, "program": m.program, "status": m.status}
        chain = {"account": account, "program": program,
                 "status": {1: "active", 2: "suspended"}.get(int(status), "none")}
        if store != chain:
            out.append(Drift("merchants", str(m.id), "the store's merchant differs from the "
                             "registry's", store, chain))
    known = {m.id for m in merchants}
    out += [Drift("merchants", str(mid), "a merchant of the registry the store does not know",
                  None, {"program": p}) for mid, p in sorted(programs.items()) if mid not in known]
    return out


def _compare(table: str, store: Mapping[tuple[str, int], dict[str, Any]],
             chain: Mapping[tuple[str, int], dict[str, Any]]) -> list[Drift]:
    out = []
    for key in sorted(set(store) | set(chain)):
        label = f"{key[0]}#{key[1]}"
        s, c = store.get(key), chain.get(key)
        if s is None:
            out.append(Drift(table, label, "a chain event the store does not have", None, c))
        elif c is None:
            out.append(Drift(table, label, "a stored row no chain event gives", s, None))
        elif s != c:
            out.append(Drift(table, label, "the stored row differs from the chain's event", s,
                             c))
    return out


def _plain(v: Any) -> Any:
    return {k: _plain(x) for k, x in v.items()} if isinstance(v, dict) else v
