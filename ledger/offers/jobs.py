"""The scheduled job of offers: birthday rules, run every hour by the service's workers (a
run in a month fires each member once per rule per year; running it again grants nothing)."""

from __future__ import annotations

from ..alliance import Alliance
from ..worker import Worker
from .service import run_birthday_offers

# Seconds between two runs (a birthday coupon arrives within this of the month's start).
INTERVAL_S = 3600.0


class BirthdayJob(Worker):
    """Fires the alliance's birthday rules for the chain's current month."""

    name = "offers-birthdays"

    def __init__(self, alliance: Alliance, *, interval_s: float = INTERVAL_S) -> None:
        super().__init__(idle_sleep_s=interval_s, busy_sleep_s=interval_s)
        self.alliance = alliance

    def process_once(self) -> int:
        return run_birthday_offers(self.alliance)
