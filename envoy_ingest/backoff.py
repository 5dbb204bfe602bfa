"""Exponential backoff, the one rule for every retry: the gateway transport's
retries within a cycle, the spooled delivery to InfluxDB, and the Enlighten
token fetches.

The n-th failure in a row (n = 1, 2, ...) waits ``initial * 2**(n-1)``, capped
at ``maximum``; with jitter, that times U(0.5, 1), so that many clients failing
together do not retry together.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Counts failures in a row and says how long to wait after each."""

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 60.0,
        *,
        jitter: bool = True,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.rng = rng
        self.failures = 0

    def next(self) -> float:
        """Count one more failure; the seconds to wait before the next attempt."""
        self.failures += 1
        delay = min(self.maximum, self.initial * 2 ** min(self.failures - 1, 60))
        if self.jitter:
            delay *= 0.5 + 0.5 * self.rng()
        return float(delay)

    def reset(self) -> None:
        """A success: the next failure waits ``initial`` again."""
        self.failures = 0
