"""Rate limits: token buckets in memory (one process), 429 with Retry-After.

Used per key (every authenticated request) and per key id / client address (failed
authentications, see :mod:`api.guard`)."""

from __future__ import annotations

import math
import threading
import time

from .errors import ApiError

MAX_KEYS = 100_000


class RateLimiter:
    """``per_minute`` requests a minute per key, with bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise 429."""
        self.refuse_if_empty(key, "too many requests for this key", take=True)

    def refuse_if_empty(self, key: str, detail: str, *, take: bool = False) -> None:
        """Raise 429 if ``key`` has no token left; take one if ``take``."""
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > MAX_KEYS:
                self._buckets.clear()  # bounded memory under a flood of fresh names
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                retry = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise ApiError(429, "rate-limited", detail,
                               {"Retry-After": str(retry)}, retry_after=retry)
            self._buckets[key] = (tokens - 1.0 if take else tokens, now)

    def spend(self, key: str) -> None:
        """Take one token for ``key`` (down to none), without refusing anything."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            self._buckets[key] = (max(0.0, tokens - 1.0), now)
