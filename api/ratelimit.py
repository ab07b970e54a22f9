"""Per-key rate limit: a token bucket in memory (one process), 429 with Retry-After."""

from __future__ import annotations

import math
import threading
import time

from .errors import ApiError


class RateLimiter:
    """``per_minute`` requests a minute per key, with bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise 429."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                retry = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise ApiError(429, "rate-limited", "too many requests for this key",
                               {"Retry-After": str(retry)}, retry_after=retry)
            self._buckets[key] = (tokens - 1.0, now)
