"""Is this process ready to take work, and what state is it in: the answers of ``/ready`` and
the scrape-time gauges of ``/metrics``.

Ready means: the chain node answers, the store answers, every background worker this process
runs is alive, and no relaying key is waiting for gas money (an operation whose signer cannot
pay would otherwise wait unseen); in an API process of ``alliance serve --workers N``, also
that no stranger listens on the port beside the server (it would take a share of the
connections). Each check says why it failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from .alliance import Alliance
from .errors import LedgerError, SignerUnfundedError
from .indexer.follower import Follower
from .indexer.process import IndexerProcess
from .metrics import Sample
from .outbox.worker import OutboxWorker
from .runtime import Runtime
from .serving import port_stranger, supervised
from .store.models import Operation, OperationStatus

# Statuses an operation passes through before it is settled.
OPEN_STATUSES = (OperationStatus.QUEUED, OperationStatus.SENDING, OperationStatus.SUBMITTED)


@dataclass(frozen=True)
class Check:
    """One readiness check: passed or not, and what it saw."""

    ok: bool
    detail: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Readiness:
    """Every check of ``/ready``; ready only if all pass."""

    checks: dict[str, Check]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks.values())


def _chain(alliance: Alliance) -> Check:
    try:
        return Check(True, {"block": alliance.gateway.block_number()})
    except LedgerError as exc:
        # The RPC URL may carry a provider key: the code only, never the message.
        return Check(False, {"error": exc.code})


def _store(alliance: Alliance) -> Check:
    try:
        with alliance.store.read_session() as s:
            s.execute(text("SELECT 1"))
        return Check(True)
    except LedgerError as exc:
        return Check(False, {"error": exc.code})


def _outbox(runtime: Runtime | None) -> OutboxWorker | None:
    if runtime is None:
        return None
    return next((w for w in runtime.workers if isinstance(w, OutboxWorker)), None)


def readiness(alliance: Alliance, runtime: Runtime | None) -> Readiness:
    """Check this process: chain, store, its workers (``runtime`` None or not started: this
    process runs none, e.g. an API process beside a worker process) and its signers."""
    checks = {"chain": _chain(alliance), "store": _store(alliance)}
    started = runtime is not None and runtime.started
    if runtime is not None and started:
        dead = [w.name for w in runtime.workers if not w.running]
        checks["workers"] = Check(not dead, {"dead": dead} if dead else
                                  {"running": [w.name for w in runtime.workers]})
    else:
        checks["workers"] = Check(True, {"running": [], "note": "no workers in this process"})
    outbox = _outbox(runtime) if started else None
    unfunded: dict[str, dict[str, object]] = {}
    if checks["store"].ok:
        # What any process's outbox recorded: an API process beside an `alliance worker`
        # sees its keys' state too.
        try:
            with alliance.store.read_session() as s:
                for merchant_id, signer, reason in s.execute(
                        select(Operation.merchant_id, Operation.signer,
                               func.max(Operation.error_message))
                        .where(Operation.status == OperationStatus.QUEUED,
                               Operation.error_code == SignerUnfundedError.code)
                        .group_by(Operation.merchant_id, Operation.signer)):
                    unfunded[signer] = {"merchant_id": merchant_id, "address": signer,
                                        "reason": reason}
        except LedgerError:
            pass
    for u in [] if outbox is None else list(outbox.unfunded.values()):
        unfunded[u.address] = {"merchant_id": u.merchant_id, "address": u.address,
                               "reason": u.reason,
                               "since": datetime.fromtimestamp(u.since, UTC).isoformat()}
    gaps = {} if outbox is None else outbox.nonce_gaps
    details: dict[str, object] = {"unfunded": list(unfunded.values())} if unfunded else {}
    if gaps:  # keys whose transactions wait behind a nonce gap the worker cannot close
        details["nonce_gap"] = [{"address": a, "since": datetime.fromtimestamp(t, UTC)
                                 .isoformat()} for a, t in sorted(gaps.items())]
    checks["signers"] = Check(not unfunded and not gaps, details)
    if supervised():
        checks["port"] = port_check()
    return Readiness(checks)


def port_check() -> Check:
    """In an API process of ``alliance serve --workers N``: not ok while the supervisor sees
    a socket not ours listening on the port (memory it shares with the process: no I/O)."""
    stranger = port_stranger()
    return Check(stranger is None, {"stranger": stranger} if stranger else {})


def state_samples(alliance: Alliance, runtime: Runtime | None) -> list[Sample]:
    """The gauges of ``/metrics`` read now: outbox depth and age by status, chain head,
    indexer lag, workers alive, unfunded relaying keys."""
    out: list[Sample] = []
    now = datetime.now(UTC)
    with alliance.store.read_session() as s:
        rows = s.execute(select(Operation.status, func.count(), func.min(Operation.created_at))
                         .where(Operation.status.in_(OPEN_STATUSES))
                         .group_by(Operation.status)).all()
    seen = {OperationStatus(st): (n, oldest) for st, n, oldest in rows}
    for st in OPEN_STATUSES:
        n, oldest = seen.get(st, (0, None))
        labels = (("status", st.value),)
        out.append(Sample("alliance_outbox_operations", "Outbox operations not settled yet",
                          float(n), labels))
        age = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            age = max((now - oldest).total_seconds(), 0.0)
        out.append(Sample("alliance_outbox_oldest_age_seconds",
                          "Age of the oldest unsettled outbox operation", age, labels))
    head = alliance.gateway.block_number()
    out.append(Sample("alliance_chain_head_block", "The chain node's latest block",
                      float(head)))
    if runtime is not None:
        for w in runtime.workers:
            out.append(Sample("alliance_worker_up", "1 if the background worker's thread "
                              "runs", 1.0 if w.running else 0.0, (("worker", w.name),)))
            if isinstance(w, Follower | IndexerProcess):
                synced = w.synced_blocks()
                behind = head - min(synced.values(), default=head)
                out.append(Sample("alliance_indexer_blocks_behind",
                                  "Blocks between the chain head and the slowest read model",
                                  float(max(behind, 0))))
        outbox = _outbox(runtime)
        if outbox is not None:
            out.append(Sample("alliance_signers_unfunded",
                              "Relaying keys whose operations wait for gas money",
                              float(len(outbox.unfunded))))
    out.append(Sample("alliance_scrape_timestamp_seconds", "When these gauges were read",
                      time.time()))
    return out
