"""The audit of who may do what: roles of the registry, the settlement token and the timelock,
the merchants' signing accounts, statuses, rates and payout addresses, and every admin change.

Other rules ask it who held a role, or signed for a merchant, at a point of the chain (a
block and log index), to check that each act came from an address allowed to make it.

A role granted after the deployment's wiring (the deployer renouncing the registry's admin
role to the timelock) is a violation unless the auditor expects that holder
(``--expect-holder``): the admin can grant roles, so the contracts allow it, and that is
exactly what an auditor must see.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak

from .model import Checks, Finding, Severity
from .source import Event, Kind

NAME = "governance"
ADMIN_ROLE = "0x" + "00" * 32
OPERATOR_ROLE = "0x" + keccak(text="OPERATOR_ROLE").hex()
ROLE_NAMES = {ADMIN_ROLE: "DEFAULT_ADMIN_ROLE"} | {
    "0x" + keccak(text=n).hex(): n
    for n in ("OPERATOR_ROLE", "MINTER_ROLE", "PROPOSER_ROLE", "EXECUTOR_ROLE",
              "CANCELLER_ROLE", "BRAND_ROLE")}
# Roles the admin (the timelock, after its announced delay) grants in the normal course of the
# alliance, as it admits merchants: a brand's account gets BRAND_ROLE to register products.
# Their grants are listed with the admin changes, not reported; any other role granted after
# the deployment is a violation unless the auditor expects its holder.
ROUTINE_ROLES = frozenset({"0x" + keccak(text="BRAND_ROLE").hex()})
STATUS = {1: "active", 2: "suspended"}
_ROLE_EVENTS = ("RoleGranted", "RoleRevoked", "RoleAdminChanged")
_REGISTRY_EVENTS = ("MerchantAdmitted", "MerchantSuspended", "MerchantReinstated",
                    "MerchantAccountChanged", "ProgramRegistered", "RateSet", "FactorySet",
                    "ClearingSet", "AcceptanceSet", "CapsSet", "RefundWindowSet", "PayoutChanged")
_TIMELOCK_EVENTS = ("CallScheduled", "CallExecuted", "Cancelled", "MinDelayChange")

Position = tuple[int, int]


def role_name(role: str) -> str:
    return ROLE_NAMES.get(role, role)


@dataclass
class _Timeline:
    """Values over chain positions (block, log index), last write wins."""

    at: list[Position] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def set(self, pos: Position, value: Any) -> None:
        self.at.append(pos)
        self.values.append(value)

    def get(self, pos: Position, default: Any = None) -> Any:
        i = bisect_right(self.at, pos)
        return self.values[i - 1] if i else default

    @property
    def last(self) -> Any:
        return self.values[-1] if self.values else None


@dataclass
class MerchantState:
    merchant_id: int
    account: _Timeline = field(default_factory=_Timeline)
    status: _Timeline = field(default_factory=_Timeline)
    rate: _Timeline = field(default_factory=_Timeline)
    payout: _Timeline = field(default_factory=_Timeline)
    program: str | None = None
    admitted_block: int = 0


class GovernanceRule:
    """Roles, merchants and admin changes, rebuilt from the registry's, the token's and the
    timelock's logs."""

    name = NAME
    events = frozenset(
        {(k, e) for k in (Kind.REGISTRY, Kind.TOKEN, Kind.TIMELOCK) for e in _ROLE_EVENTS}
        | {(Kind.REGISTRY, e) for e in _REGISTRY_EVENTS}
        | {(Kind.TIMELOCK, e) for e in _TIMELOCK_EVENTS}
        | {(Kind.FACTORY, "ProgramCreated")})

    def __init__(self, *, expected_holders: frozenset[str] = frozenset()) -> None:
        self.expected = {a.lower() for a in expected_holders}
        # (contract, role) -> account -> timeline of held (bool)
        self.roles: dict[tuple[str, str], dict[str, _Timeline]] = {}
        self.grants: list[dict[str, Any]] = []
        self.changes: list[dict[str, Any]] = []
        self.merchants: dict[int, MerchantState] = {}
        self.wired_block: int | None = None
        self.findings: list[Finding] = []
        self._contract_kind: dict[str, str] = {}

    # ------------------------------------------------------------------ what others ask

    def holds(self, contract: str, role: str, account: str, pos: Position) -> bool:
        line = self.roles.get((contract, role), {}).get(account)
        return bool(line.get(pos, False)) if line else False

    def account_of(self, merchant_id: int, pos: Position) -> str | None:
        m = self.merchants.get(merchant_id)
        return m.account.get(pos) if m else None

    def payout_of(self, merchant_id: int, pos: Position) -> str | None:
        m = self.merchants.get(merchant_id)
        return m.payout.get(pos) if m else None

    def rate_of(self, merchant_id: int, pos: Position) -> int:
        m = self.merchants.get(merchant_id)
        return int(m.rate.get(pos, 0)) if m else 0

    def is_baseline(self, block: int) -> bool:
        """Whether ``block`` is part of the deployment's wiring (grants there are expected)."""
        return self.wired_block is None or block <= self.wired_block

    def granted_after_wiring(self, contract: str, role: str, account: str, pos: Position
                             ) -> bool:
        """Whether ``account`` held ``role`` at ``pos`` by a grant made after the wiring and
        not expected by the auditor."""
        if account in self.expected:
            return False
        line = self.roles.get((contract, role), {}).get(account)
        if line is None:
            return False
        i = bisect_right(line.at, pos)
        return i > 0 and bool(line.values[i - 1]) and not self.is_baseline(line.at[i - 1][0])

    # ------------------------------------------------------------------ rebuild

    def apply(self, ev: Event) -> None:
        a = ev.args
        pos = ev.position
        self._contract_kind[ev.address] = ev.kind
        if ev.name in ("RoleGranted", "RoleRevoked"):
            granted = ev.name == "RoleGranted"
            role, account = str(a["role"]), str(a["account"])
            self.roles.setdefault((ev.address, role), {}).setdefault(
                account, _Timeline()).set(pos, granted)
            if (not granted and ev.kind == Kind.REGISTRY and role == ADMIN_ROLE
                    and self.wired_block is None and a["sender"] == account):
                self.wired_block = ev.block  # the deployer hands the admin role over
            row = {"block": ev.block, "tx": ev.tx, "contract": ev.kind, "address": ev.address,
                   "role": role_name(role), "account": account, "by": str(a["sender"]),
                   "granted": granted}
            self.grants.append(row)
            if granted and not self.is_baseline(ev.block) and account not in self.expected \
                    and role not in ROUTINE_ROLES:
                self.findings.append(Finding(
                    NAME, "RoleGrantedAfterDeployment", Severity.VIOLATION,
                    f"{role_name(role)} of the {ev.kind} granted to {account} after the "
                    f"deployment (by {a['sender']})", contract=ev.address, block=ev.block,
                    tx=ev.tx, details={"role": role_name(role), "account": account}))
            return
        if ev.name == "MerchantAdmitted":
            m = self.merchants.setdefault(int(a["merchantId"]), MerchantState(int(a["merchantId"])))
            m.account.set(pos, str(a["account"]))
            m.status.set(pos, 1)
            m.admitted_block = ev.block
        elif ev.name == "MerchantSuspended":
            self._merchant(a).status.set(pos, 2)
        elif ev.name == "MerchantReinstated":
            self._merchant(a).status.set(pos, 1)
        elif ev.name == "MerchantAccountChanged":
            self._merchant(a).account.set(pos, str(a["account"]))
        elif ev.name == "ProgramRegistered":
            self._merchant(a).program = str(a["program"])
        elif ev.name == "RateSet":
            self._merchant(a).rate.set(pos, int(a["rate"]))
        elif ev.name == "PayoutChanged":
            self._merchant(a).payout.set(pos, str(a["payout"]))
        self.changes.append({"block": ev.block, "tx": ev.tx, "contract": ev.kind,
                             "event": ev.name, "args": _shown(a)})

    def _merchant(self, a: dict[str, Any]) -> MerchantState:
        mid = int(a["merchantId"])
        return self.merchants.setdefault(mid, MerchantState(mid))

    # ------------------------------------------------------------------ check

    def check(self, checks: Checks) -> list[Finding]:
        out = list(self.findings)
        kinds = checks.addresses.kinds()
        calls: list[tuple[str, str, str, tuple[Any, ...]]] = []
        expect: list[tuple[str, Any, str]] = []
        for (contract, role), accounts in self.roles.items():
            kind = kinds.get(contract, self._contract_kind.get(contract, Kind.REGISTRY))
            for account, line in accounts.items():
                calls.append((kind, contract, "hasRole", (bytes.fromhex(role[2:]), account)))
                expect.append((f"hasRole({role_name(role)}, {account}) of the {kind}",
                               bool(line.last), contract))
        reg = checks.addresses.registry
        for mid, m in sorted(self.merchants.items()):
            calls.append((Kind.REGISTRY, reg, "merchant", (mid,)))
            expect.append((f"merchant({mid})", (m.account.last, m.status.last,
                                                m.program or "0x" + "0" * 40), reg))
            calls.append((Kind.REGISTRY, reg, "rateOf", (mid,)))
            expect.append((f"rateOf({mid})", int(m.rate.last or 0), reg))
            if m.payout.last is not None:
                calls.append((Kind.REGISTRY, reg, "payoutOf", (mid,)))
                expect.append((f"payoutOf({mid})", m.payout.last, reg))
        calls.append((Kind.REGISTRY, reg, "merchantCount", ()))
        expect.append(("merchantCount()", len(self.merchants), reg))
        for (what, want, contract), got in zip(expect, checks.views(calls), strict=True):
            value = got if not isinstance(got, tuple) else (got[0] if len(got) == 1 else got)
            if what.startswith("merchant(") and isinstance(value, tuple):
                value = (value[0], int(value[1]), value[2])
            if value != want:
                out.append(Finding(NAME, "ViewMismatch", Severity.VIOLATION,
                                   f"{what}: the logs give {want}, the contract says {value}",
                                   contract=contract, details={"view": what}))
        return out

    def section(self) -> dict[str, Any]:
        holders = []
        for (contract, role), accounts in sorted(self.roles.items()):
            for account, line in sorted(accounts.items()):
                if line.last:
                    holders.append({"contract": self._contract_kind.get(contract, contract),
                                    "address": contract, "role": role_name(role),
                                    "account": account, "since_block": line.at[-1][0],
                                    "after_deployment": not self.is_baseline(line.at[-1][0])})
        merchants = [{"merchant_id": mid, "account": m.account.last,
                      "status": STATUS.get(m.status.last, "none"), "program": m.program,
                      "rate": m.rate.last, "payout": m.payout.last,
                      "admitted_block": m.admitted_block}
                     for mid, m in sorted(self.merchants.items())]
        return {"wired_block": self.wired_block, "role_holders": holders,
                "role_changes": self.grants, "admin_changes": self.changes,
                "merchants": merchants}


def _shown(args: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, int | str | bool) else str(v)) for k, v in args.items()}
