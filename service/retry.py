"""Retry strategy: answers "when next, or give up" for a failed attempt.

A schedule is a list of delays in seconds; its length is the number of retries. Jitter spreads
retries of many jobs that failed together (a provider outage) so they do not return in a burst.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...]
    jitter: float = 0.1  # each delay is stretched or shrunk by up to this fraction

    @classmethod
    def parse(cls, text: str, *, jitter: float = 0.1) -> RetrySchedule:
        """From ``"5,300,1800"``; raises ValueError with a readable message."""
        parts = [part.strip() for part in text.split(",") if part.strip()]
        delays: list[float] = []
        for part in parts:
            try:
                delay = float(part)
            except ValueError:
                raise ValueError(f"{part!r} is not a number of seconds") from None
            if delay < 0:
                raise ValueError(f"{part!r}: a delay cannot be negative")
            delays.append(delay)
        return cls(tuple(delays), jitter)

    @classmethod
    def of(cls, delays: Sequence[float], *, jitter: float = 0.1) -> RetrySchedule:
        return cls(tuple(float(d) for d in delays), jitter)

    @property
    def max_attempts(self) -> int:
        """The first attempt plus one per retry."""
        return len(self.delays) + 1

    def delay_after(
        self, failed_attempts: int, *, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait after the ``failed_attempts``-th failure (1-based), None to give up."""
        if failed_attempts < 1 or failed_attempts > len(self.delays):
            return None
        base = self.delays[failed_attempts - 1]
        if not self.jitter:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1 + spread))
