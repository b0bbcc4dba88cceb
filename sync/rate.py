"""A token bucket: the outbox's bound on messages and bytes per second."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """`rate` units per second with bursts of `burst`; one item larger than the burst may pass
    when the bucket is full (it then runs into debt), so a big snapshot can never stall the queue."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` may be taken (0.0: now)."""
        self._refill()
        if self._tokens >= amount or self._tokens >= self.burst:
            return 0.0
        return (min(amount, self.burst) - self._tokens) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self._tokens -= amount
