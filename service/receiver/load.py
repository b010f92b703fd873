"""How busy the callback receiver is, so that an in-process worker can give way to it.

Kling documents no retry policy for callbacks (kling-api.md §5): a notification that is not
acknowledged in time may never come again. When ``omnihook serve`` runs its worker in the same
process, the two share one interpreter (one core, one GIL), and applying a notification costs
more than receiving it; during a burst of callbacks a worker at full concurrency would slow
every acknowledgement down. So while callbacks are arriving, that worker takes one job at a time
(never none: the backlog keeps moving), and it goes back to full concurrency once the receiver
has been quiet for :data:`QUIET_AFTER` seconds. Everything received is stored before it is
acknowledged, so what waits is durable. A standalone ``omnihook worker`` is not slowed down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

QUIET_AFTER = 0.2  # seconds without a callback before the receiver counts as idle


class ReceiverLoad:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._in_flight = 0
        self._last_ended = -QUIET_AFTER

    @contextmanager
    def receiving(self) -> Iterator[None]:
        """Around the handling of one callback."""
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._last_ended = self._clock()

    @property
    def busy(self) -> bool:
        """A callback is being handled, or one ended less than :data:`QUIET_AFTER` ago (the
        gaps of a burst are not quiet)."""
        return self._in_flight > 0 or self._clock() - self._last_ended < QUIET_AFTER

    def quiet_in(self) -> float:
        """Seconds until the receiver counts as idle if nothing more arrives (0 when idle)."""
        if self._in_flight:
            return QUIET_AFTER
        return max(0.0, self._last_ended + QUIET_AFTER - self._clock())
