"""Admin actions through the alliance's timelock: schedule, list what is pending, execute.

Every change of terms (admissions, rates, caps, acceptance, refund window, signing accounts,
payout addresses, reinstatement) is an OpenZeppelin ``TimelockController`` operation: the
admin key schedules it, and it can be executed once ``ALLIANCE_TIMELOCK_DELAY_S`` has passed
(0 on a dev chain: scheduled and executed at once). Everyone watching the chain sees it
announced before it takes effect.

A scheduled action is recorded in the store (encrypted, as a named secret ``tl:<id>``) before
its first transaction is sent, with whatever the service needs to finish it (for an
admission: the new merchant's relaying key), so ``alliance admin execute ID`` completes it
later, and a retry after a crash finishes what the chain already did.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from .alliance import Alliance
from .errors import (
    ContractRevertError,
    LedgerConflictError,
    LedgerNotFoundError,
    LedgerValidationError,
)
from .store.models import Secret

PREFIX = "tl:"
ZERO = b"\0" * 32


@dataclass(frozen=True)
class AdminAction:
    """One timelock operation the service scheduled (``id``: the timelock's operation id)."""

    id: str
    kind: str
    summary: str
    target: str
    data: str
    salt: str
    ready_at: int
    scheduled_at: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def id_bytes(self) -> bytes:
        return bytes.fromhex(self.id[2:])


def _name(action_id: str) -> str:
    # The secrets table names are at most 64 characters: 60 hex digits are unique enough.
    return PREFIX + action_id.removeprefix("0x")[:60]


def _save(alliance: Alliance, action: AdminAction) -> None:
    blob = alliance.master_key.encrypt(json.dumps(asdict(action)).encode())
    with alliance.store.session() as s:
        row = s.get(Secret, _name(action.id))
        if row is None:
            s.add(Secret(name=_name(action.id), value_enc=blob))
        else:
            row.value_enc = blob


def _forget(alliance: Alliance, action_id: str) -> None:
    with alliance.store.session() as s:
        row = s.get(Secret, _name(action_id))
        if row is not None:
            s.delete(row)


def pending(alliance: Alliance) -> list[AdminAction]:
    """The actions scheduled and not yet executed (oldest first)."""
    with alliance.store.read_session() as s:
        rows = list(s.scalars(select(Secret).where(Secret.name.like(PREFIX + "%"))))
        blobs = [r.value_enc for r in rows]
    actions = [AdminAction(**json.loads(alliance.master_key.decrypt(b))) for b in blobs]
    return sorted(actions, key=lambda a: (a.scheduled_at, a.id))


def find(alliance: Alliance, action_id: str) -> AdminAction:
    """The pending action whose id is (or starts with) ``action_id``."""
    want = action_id.lower().removeprefix("0x")
    if len(want) < 6 or any(c not in "0123456789abcdef" for c in want):
        raise LedgerValidationError("an action id is at least 6 hex digits", field="id")
    matches = [a for a in pending(alliance) if a.id[2:].startswith(want)]
    if not matches:
        raise LedgerNotFoundError(f"no pending admin action {action_id}")
    if len(matches) > 1:
        raise LedgerValidationError(f"{action_id} names several pending actions; give more "
                                    "digits", field="id")
    return matches[0]


def schedule(alliance: Alliance, *, kind: str, target: str, data: bytes, summary: str,
             details: dict[str, Any] | None = None) -> AdminAction:
    """Check the call would succeed as the timelock, record it, and schedule it.

    Nothing is sent if the call would revert now (its custom error is raised instead).
    """
    timelock = alliance.contracts.timelock
    # Simulate the call as the timelock makes it: a bad rate, an unknown merchant or a taken
    # account fails here, before any transaction.
    alliance.gateway.estimate_gas(sender=timelock.address, to=target, data=data)
    salt = os.urandom(32)
    op_id = timelock.operation_id(target, data, salt)
    delay = timelock.min_delay()
    action = AdminAction(id="0x" + op_id.hex(), kind=kind, summary=summary, target=target,
                         data="0x" + data.hex(), salt="0x" + salt.hex(), ready_at=0,
                         scheduled_at=time.time_ns(), details=details or {})
    _save(alliance, action)
    alliance.admin.transact(to=timelock.address, data=timelock.encode(
        "schedule", target, 0, data, ZERO, salt, delay))
    action = AdminAction(**{**asdict(action), "ready_at": timelock.ready_at(op_id)})
    _save(alliance, action)
    return action


def execute(alliance: Alliance, action: AdminAction) -> dict[str, Any] | None:
    """Execute a scheduled action once its delay has passed; give the receipt (None when the
    chain had already executed it: a retry after a crash)."""
    timelock = alliance.contracts.timelock
    if timelock.is_done(action.id_bytes):
        return None
    ready_at = timelock.ready_at(action.id_bytes)
    if ready_at == 0:
        raise LedgerNotFoundError(f"admin action {action.id} is not scheduled on chain "
                                  "(cancelled?)")
    if alliance.gateway.is_dev_chain:
        # An automining dev chain makes blocks only for transactions: mine one so the
        # chain's clock (what the timelock reads) has caught up with the wall clock.
        alliance.gateway.rpc("evm_mine")
    try:
        # Simulated first: too early fails here (TimelockUnexpectedOperationState), unsent.
        return alliance.admin.transact(to=timelock.address, data=timelock.encode(
            "execute", action.target, 0, bytes.fromhex(action.data[2:]), ZERO,
            bytes.fromhex(action.salt[2:])))
    except ContractRevertError as exc:
        if exc.name != "TimelockUnexpectedOperationState":
            raise
        now = int(alliance.gateway.block("latest")["timestamp"])
        raise LedgerConflictError(f"admin action {action.id} is not ready until {ready_at} "
                                  f"(about {max(ready_at - now, 0)} s from now)") from exc


def cancel(alliance: Alliance, action: AdminAction) -> None:
    """Cancel a scheduled action that was not executed (the admin key is its canceller) and
    forget it; one the chain already executed cannot be cancelled."""
    timelock = alliance.contracts.timelock
    if timelock.is_done(action.id_bytes):
        raise LedgerConflictError(f"admin action {action.id} was executed; run execute to "
                                  "finish it")
    if timelock.ready_at(action.id_bytes) != 0:
        alliance.admin.transact(to=timelock.address,
                                data=timelock.encode("cancel", action.id_bytes))
    _forget(alliance, action.id)


def finish(alliance: Alliance, action: AdminAction) -> None:
    """Forget a completed action."""
    _forget(alliance, action.id)
