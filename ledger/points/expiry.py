"""The expiry sweep: at each period boundary, expired lots leave the ledger with their events.

A point program's ``balanceOf`` is what its Transfer logs say (spendable + pending + expired
not yet swept). When a period turns, lots earned ``expiryPeriods`` periods earlier expire;
until ``sweepExpired(members)`` burns them (a ``PointsExpired`` and a ``Transfer(member, 0)``
per lot), an outside reader of the logs still counts them. This worker closes that gap within
one round after the boundary:

1. the read model, kept by the indexer (a worker of its own), knows every lot credited up to
   its block (a lot expires periods after the last credit into it, so a lag of seconds
   misses none);
2. per program with expiry, the earn periods that expired since the last sweep are found from
   the chain's clock (``currentPeriod``, ``expiryOf``), and the members that were credited
   into them (PointsIssued / PointsConvertedIn, from the read model: no scan of every member
   on chain) whose ``expiredOf`` is not zero;
3. they are queued as ``sweep_expired`` outbox operations of at most :data:`SWEEP_BATCH`
   members, sent with the program merchant's relaying key, in the same write transaction that
   moves the program's sweep cursor (so a crash neither loses nor repeats a boundary).
"""

from __future__ import annotations

import logging

from ..alliance import Alliance
from ..indexer import repos as cursors
from ..merchants import repos as merchant_repos
from ..outbox import repos as outbox
from ..worker import Worker
from . import repos as point_repos
from .kinds import SWEEP_EXPIRED, SweepPayload

log = logging.getLogger(__name__)

# Members per sweepExpired transaction: each swept member costs ~GAS_PER_SWEPT_MEMBER (see
# ledger/points/kinds.py); 200 members of one lot each stay far below a 30M-gas block.
SWEEP_BATCH = 200
CURSOR_PREFIX = "sweep:"  # + merchant id; the cursor's block column holds a period
NEVER = 2**256 - 1


class ExpirySweeper(Worker):
    """Queues the sweep of expired lots of every program; :meth:`run_once` is one round."""

    name = "expiry-sweep"

    def __init__(self, alliance: Alliance, *, interval_s: float | None = None) -> None:
        super().__init__(idle_sleep_s=interval_s if interval_s is not None
                         else alliance.settings.expiry_sweep_interval_s)
        self.alliance = alliance

    def process_once(self) -> int:
        """One round on the sweep's interval: it never runs back to back."""
        self.run_once()
        return 0

    def run_once(self) -> int:
        """Queue sweeps of the lots expired since the last round (candidates from the read
        model the indexer keeps); give how many members were queued."""
        with self.alliance.store.read_session() as s:
            programs = [(m.id, m.program_address, m.account_address)
                        for m in merchant_repos.list_merchants(s) if m.program_address]
        queued = 0
        for merchant_id, program, signer in programs:
            assert program is not None
            queued += self._sweep_program(merchant_id, program, signer)
        return queued

    def _sweep_program(self, merchant_id: int, program: str, signer: str) -> int:
        client = self.alliance.contracts.program(program)
        config = client.config()
        if config.expiry_periods == 0:
            return 0
        # Lots of periods <= last_expired have expired by the chain's clock.
        last_expired = int(client.view1("currentPeriod")) - config.expiry_periods - 1
        cursor_name = f"{CURSOR_PREFIX}{merchant_id}"
        with self.alliance.store.read_session() as s:
            cursor = cursors.get_cursor(s, cursor_name)
        swept_through = cursor[0] if cursor is not None else -1
        if last_expired <= swept_through:
            return 0
        periods = list(range(swept_through + 1, last_expired + 1))
        with self.alliance.store.read_session() as s:
            candidates = point_repos.members_with_lots(s, program=program, earn_periods=periods)
        # Only members with something to sweep: one already spent (or swept by its own
        # redemption) costs a view here rather than gas in the batch.
        members = [m for m in candidates if expired_of(self.alliance, program, m) > 0]
        with self.alliance.store.session() as s:
            for start in range(0, len(members), SWEEP_BATCH):
                outbox.enqueue(
                    s, kind=SWEEP_EXPIRED, payload=SweepPayload(
                        program, tuple(members[start:start + SWEEP_BATCH]),
                        (periods[0], periods[-1])), merchant_id=merchant_id, signer=signer)
            cursors.set_cursor(s, cursor_name, last_expired, "")
        if members:
            log.info("queued the sweep of %d members' lots of periods %d-%d of %s",
                     len(members), periods[0], periods[-1], program)
        return len(members)


def expired_of(alliance: Alliance, program: str, member: str) -> int:
    """Points of a member's lots that expired and are not swept yet."""
    return int(alliance.contracts.program(program).view1("expiredOf", member))
