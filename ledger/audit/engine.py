"""Run an audit: find the alliance from its registry, rebuild every rule's state from the logs,
check it against the contracts' views and the invariants, and give the report.

The rules are a list built in :func:`rules`: one module per kind of contract (governance,
points, clearing, coupons, items). Each says which (contract kind, event) pairs it wants;
the engine reads each chunk of logs once and hands every event to the rules that want it, in
chain order.

A new contract plugs in as coupons and items did: a :class:`~ledger.audit.source.Kind` and
its artifact in ``ARTIFACT_OF``, its address in :meth:`ChainSource.discover` (asked of the
registry or the clearing, as the coupon book is, or named by the auditor, as the item registry
is: never read from the store), and a rule module of its own (``events``, ``apply``, ``check``,
``section``) added to :func:`rules`; the HTML report shows its section's tables once
``report.py`` names them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..chain.gateway import ChainGateway
from ..contracts.compiler import Artifact
from .clearing import ClearingRule
from .coupons import CouponsRule
from .governance import GovernanceRule
from .items import ItemsRule
from .model import Checks, Finding, Rule, Severity
from .points import PointsRule
from .source import AllianceAddresses, ChainSource, Event

# Progress: (blocks done, blocks in all, events so far).
Progress = Callable[[int, int, int], None]


@dataclass
class AuditReport:
    """Everything an audit found, as the JSON and HTML reports show it."""

    chain_id: int
    registry: str
    addresses: dict[str, Any]
    from_block: int
    head: int
    head_time: int
    events: int
    logs_read: int
    event_counts: dict[str, int]
    findings: list[Finding]
    sections: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    views_asked: int = 0
    generated_at: int = 0

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.VIOLATION]

    @property
    def clean(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "alliance-audit", "version": 1, "clean": self.clean,
            "chain_id": self.chain_id, "registry": self.registry,
            "contracts": self.addresses, "from_block": self.from_block, "head": self.head,
            "head_time": self.head_time, "generated_at": self.generated_at,
            "events": self.events, "logs_read": self.logs_read,
            "event_counts": self.event_counts, "views_asked": self.views_asked,
            "timings_s": self.timings,
            "summary": {"violations": len(self.violations),
                        "notices": len(self.findings) - len(self.violations)},
            "findings": [f.as_dict() for f in self.findings],
            "sections": self.sections,
        }


def rules(addresses: AllianceAddresses, *, expected_holders: frozenset[str] = frozenset()
          ) -> list[Rule]:
    """Every rule of the audit, governance first (the others ask it who held what)."""
    governance = GovernanceRule(expected_holders=expected_holders)
    merchant_of = addresses.merchant_of()
    return [governance, PointsRule(governance, merchant_of),
            ClearingRule(governance, merchant_of, addresses.registry),
            CouponsRule(governance), ItemsRule(governance, addresses.registry)]


def run_audit(gateway: ChainGateway, artifacts: Mapping[str, Artifact], *, registry: str,
              from_block: int = 0, head: int | None = None,
              expected_holders: Sequence[str] = (), progress: Progress | None = None,
              check_views: bool = True, items: str | None = None) -> AuditReport:
    """Audit the alliance of ``registry`` from ``from_block`` to ``head`` (default: now);
    ``items``: the item registry's address, to audit it too (the chain does not name it)."""
    started = time.perf_counter()
    source = ChainSource(gateway, artifacts, registry=registry, head=head)
    addresses = source.discover(from_block=from_block, items=items)
    all_rules = rules(addresses, expected_holders=frozenset(expected_holders))
    by_event: dict[tuple[str, str], list[Callable[[Event], None]]] = {}
    for rule in all_rules:
        for key in rule.events:
            by_event.setdefault(key, []).append(rule.apply)
    kinds = addresses.kinds()
    counts: Counter[str] = Counter()
    total = max(1, source.head - from_block + 1)
    events = 0
    discovered = time.perf_counter()

    def on_chunk(to_block: int, _logs: int) -> None:
        if progress is not None:
            progress(to_block - from_block + 1, total, events)

    for chunk in source.events(kinds, from_block=from_block, on_chunk=on_chunk):
        for ev in chunk:
            handlers = by_event.get((ev.kind, ev.name))
            counts[ev.name] += 1
            if handlers:
                for h in handlers:
                    h(ev)
        events += len(chunk)
    rebuilt = time.perf_counter()
    checks = Checks(source, addresses)
    findings: list[Finding] = []
    if check_views:
        for rule in all_rules:
            findings += rule.check(checks)
    else:
        for rule in all_rules:
            findings += list(getattr(rule, "findings", []))
    checked = time.perf_counter()
    head_time = source.block_times([source.head]).get(source.head, 0)
    return AuditReport(
        chain_id=gateway.chain_id, registry=addresses.registry,
        addresses={"registry": addresses.registry, "factory": addresses.factory,
                   "clearing": addresses.clearing,
                   "settlement_token": addresses.settlement_token,
                   "timelock": addresses.timelock, "coupon_book": addresses.coupon_book,
                   "items": addresses.items,
                   "programs": {str(m): a for m, a in sorted(addresses.programs.items())}},
        from_block=from_block, head=source.head, head_time=head_time, events=events,
        logs_read=source.logs_read, event_counts=dict(sorted(counts.items())),
        findings=findings, sections={r.name: r.section() for r in all_rules},
        timings={"discover": round(discovered - started, 4),
                 "rebuild": round(rebuilt - discovered, 4),
                 "check": round(checked - rebuilt, 4)},
        views_asked=checks.views_asked, generated_at=int(time.time()))
