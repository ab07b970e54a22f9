"""The audit's vocabulary: findings, the rule protocol each contract's audit module speaks,
and what a rule may ask of the chain when it checks (views at the head, senders, times)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ..errors import ChainError
from .source import AllianceAddresses, ChainSource, Event


class Severity(StrEnum):
    """How bad a finding is: any ``violation`` makes ``alliance audit`` exit non-zero."""

    VIOLATION = "violation"
    NOTICE = "notice"


@dataclass(frozen=True)
class Finding:
    """One thing the auditor must look at: a broken invariant, a rebuilt number the contract
    disagrees with, an act by an address that should not have been able to do it."""

    rule: str
    code: str
    severity: Severity
    message: str
    contract: str | None = None
    block: int | None = None
    tx: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "code": self.code, "severity": str(self.severity),
                "message": self.message, "contract": self.contract, "block": self.block,
                "tx": self.tx, "details": dict(self.details)}


class Checks:
    """What a rule may ask the chain when it checks its rebuilt state (all at the head)."""

    def __init__(self, source: ChainSource, addresses: AllianceAddresses) -> None:
        self.source = source
        self.addresses = addresses
        self.views_asked = 0
        self._senders: dict[str, str] = {}

    def views(self, calls: Sequence[tuple[str, str, str, tuple[Any, ...]]]
              ) -> list[tuple[Any, ...] | ChainError]:
        self.views_asked += len(calls)
        return self.source.views(calls)

    def senders(self, tx_hashes: Sequence[str]) -> dict[str, str]:
        missing = [h for h in set(tx_hashes) if h not in self._senders]
        self._senders.update(self.source.senders(missing))
        return {h: self._senders[h] for h in tx_hashes if h in self._senders}

    def block_times(self, blocks: Sequence[int]) -> dict[int, int]:
        return self.source.block_times(blocks)


class Rule(Protocol):
    """The audit of one kind of contract (points, clearing, governance; coupons and items add
    theirs): it rebuilds its state from the events it subscribes to, then checks it.

    ``events`` are the (contract kind, event name) pairs it is handed, in chain order, by
    :meth:`apply`; :meth:`check` compares the rebuilt state with the contracts' views and its
    invariants; :meth:`section` gives its part of the report (tables, series)."""

    name: str
    events: frozenset[tuple[str, str]]

    def apply(self, event: Event) -> None: ...

    def check(self, checks: Checks) -> list[Finding]: ...

    def section(self) -> dict[str, Any]: ...
